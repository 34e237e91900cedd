//! The OpenAI Chat Completions and Embeddings wire format, both sides: parsing a client's
//! request and rendering responses, streams and errors for it; building requests for OpenAI,
//! Azure OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp, Groq, DeepSeek...)
//! and decoding their responses and streams. Wire structs live in `wire` and never leave this
//! module; everything public speaks the canonical types.

mod chat_body;
mod chat_request;
mod chat_response;
mod decode;
mod embeddings;
mod encode;
mod error;
mod wire;

#[cfg(test)]
mod response_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

pub use chat_body::chat_request_body;
pub use chat_request::parse_chat_request;
pub use chat_response::{
    parse_chat_response, parse_chat_response_passthrough, render_chat_response,
};
pub use decode::ChatStreamDecoder;
pub use embeddings::{
    embed_request_body, parse_embed_request, parse_embed_response, render_embed_response,
};
pub use encode::ChatStreamEncoder;
pub use error::{render_error, upstream_error_message};

use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_types::{FinishReason, Usage};

/// Serialises a wire struct. Our wire structs have string keys and no fallible `Serialize`
/// impls, so this cannot fail in practice; the fallback keeps the no-panic rule without an
/// error type nobody could act on.
fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// A fresh `chatcmpl-...` id for responses that come from providers without one (or from no
/// `Start` at all). Unique within the process (counter) and very likely across processes (clock).
fn new_completion_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("chatcmpl-sb{nanos:x}{n:x}")
}

fn finish_from_wire(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        // `function_call` is the legacy name of the same thing.
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

fn finish_to_wire(reason: &FinishReason) -> &str {
    match reason {
        // OpenAI does not say which stop sequence matched.
        FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(s) => s,
    }
}

/// OpenAI usage -> canonical. `prompt_tokens` already includes cached tokens and
/// `completion_tokens` already includes reasoning tokens, as the canonical invariants want; the
/// detail counts are clamped so that a confused server cannot break `cached <= input`.
fn usage_from_wire(u: &wire::InUsage) -> Usage {
    let input = u.prompt_tokens.unwrap_or(0);
    let output = u.completion_tokens.unwrap_or(0);
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .or(u.prompt_cache_hit_tokens)
        .unwrap_or(0);
    let reasoning = u
        .completion_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0);
    Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached.min(input),
        cache_write_tokens: 0,
        reasoning_tokens: reasoning.min(output),
    }
}

/// Canonical usage -> OpenAI. Cache writes have no OpenAI field; they are part of
/// `prompt_tokens` already (canonical `input_tokens` includes them).
fn usage_to_wire(u: &Usage) -> wire::OutUsage {
    wire::OutUsage {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: u.total_tokens(),
        prompt_tokens_details: wire::OutPromptDetails {
            cached_tokens: u.cached_input_tokens,
        },
        completion_tokens_details: wire::OutCompletionDetails {
            reasoning_tokens: u.reasoning_tokens,
        },
    }
}
