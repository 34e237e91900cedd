//! Provider-neutral pieces the per-provider modules share: what a routed request is, what an
//! answer contains, the abstract stream events each provider renders into its own framing, and
//! small deterministic helpers (text splitting, argument fragments, embedding values).

use serde_json::Value;

use crate::{MockKind, MockToolCall, MockUsage};

/// A fixed `created` timestamp keeps mock bodies deterministic (snapshot-friendly).
pub(crate) const CREATED: u64 = 1_700_000_000;

/// Which operation a request addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat {
        stream: bool,
    },
    Embed,
    /// Anthropic `/v1/messages/count_tokens`.
    CountTokens,
}

/// What a provider module learned from a request, for rendering the answer.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub(crate) kind: MockKind,
    /// The model (or Azure deployment / Gemini path model) to echo back.
    pub(crate) model: String,
    /// 0-based request number, used to make ids unique and deterministic.
    pub(crate) seq: usize,
    /// OpenAI `stream_options.include_usage`.
    pub(crate) include_usage: bool,
    /// Gemini `alt=sse` (otherwise a streamed JSON array).
    pub(crate) sse: bool,
    pub(crate) body: Value,
}

/// A request rejected before any scripted reply is consumed (auth, routing, validation).
#[derive(Clone, Debug)]
pub(crate) struct ErrorReply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) retry_after: Option<u64>,
}

impl ErrorReply {
    pub(crate) fn new(status: u16, body: Value) -> Self {
        ErrorReply {
            status,
            body,
            retry_after: None,
        }
    }
}

/// The content of a successful chat answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Answer {
    pub(crate) text: Option<String>,
    pub(crate) calls: Vec<MockToolCall>,
    pub(crate) usage: MockUsage,
}

/// How a stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The provider's normal terminal events.
    Done,
    /// The provider's in-stream error event.
    Error,
    /// The connection is cut with no terminal event.
    Drop,
}

/// A stream to render: the answer, its text already cut into deltas, and how it ends.
#[derive(Clone, Debug)]
pub(crate) struct StreamPlan {
    pub(crate) answer: Answer,
    pub(crate) pieces: Vec<String>,
    pub(crate) ending: Ending,
    pub(crate) unknown_event: bool,
}

/// One abstract stream step; `server` turns them into bytes in the provider's framing.
#[derive(Clone, Debug)]
pub(crate) enum Ev {
    /// An event with a JSON payload (`event:` line only where the provider uses them).
    Json {
        event: Option<&'static str>,
        data: Value,
    },
    /// A `data:` line with a non-JSON payload (OpenAI's `[DONE]`).
    Data(&'static str),
    /// An SSE comment line.
    Comment(&'static str),
    /// Where a slow stream waits (placed before each text delta).
    Tick,
    /// Cut the connection here.
    Abort,
}

impl Ev {
    pub(crate) fn json(data: Value) -> Ev {
        Ev::Json { event: None, data }
    }

    pub(crate) fn named(event: &'static str, data: Value) -> Ev {
        Ev::Json {
            event: Some(event),
            data,
        }
    }
}

/// Splits text into `n` (at most, non-empty) pieces on char boundaries.
pub(crate) fn split_text(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let n = n.clamp(1, chars.len());
    let size = chars.len().div_ceil(n);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Tool-call arguments in three fragments (fewer when the text is very short).
pub(crate) fn fragments(arguments: &str) -> Vec<String> {
    let parts = split_text(arguments, 3);
    if parts.is_empty() {
        vec![String::new()]
    } else {
        parts
    }
}

/// The arguments as a JSON object (Anthropic `input`, Gemini `args`); `{}` when not JSON.
pub(crate) fn parse_args(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| serde_json::json!({}))
}

/// The deltas of `StreamThenError` / `StreamThenDrop`.
pub(crate) fn numbered_pieces(chunks: usize) -> Vec<String> {
    (0..chunks).map(|i| format!("tok{i} ")).collect()
}

/// Deterministic embedding values in [-1, 1): a hash of the input text mixed with the index.
pub(crate) fn embedding_values(text: &str, dims: usize) -> Vec<f32> {
    // FNV-1a: stable across runs and platforms, unlike std's RandomState.
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        seed ^= u64::from(*b);
        seed = seed.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (0..dims)
        .map(|j| {
            let mut x = seed ^ (j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 33;
            // Multiples of 1/1024 are exact in f32 and print without noise.
            ((x % 2048) as f32 - 1024.0) / 1024.0
        })
        .collect()
}

/// A rough, deterministic token count for embedding usage: one token per 4 chars, at least 1.
pub(crate) fn rough_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// Concatenated `text` of JSON parts/blocks (`[{"type":"text","text":..}]` or `[{"text":..}]`).
pub(crate) fn text_of_parts(parts: &Value) -> String {
    parts
        .as_array()
        .map(|arr| {
            arr.iter()
                .filter(|p| p.get("type").is_none_or(|t| t == "text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

/// The default echo answer for a request whose last user text is `text`.
pub(crate) fn echo_answer(text: &str) -> Answer {
    Answer {
        text: Some(format!("echo: {text}")),
        calls: Vec::new(),
        usage: MockUsage {
            input: 10,
            output: 5,
            cached: 0,
            reasoning: 0,
        },
    }
}

#[cfg(test)]
mod tests;

/// Text of the last user message of an OpenAI or Anthropic body (both keep turns under
/// `messages`): a string, or the `text` parts of a content array.
pub(crate) fn last_user_text(body: &Value) -> String {
    let last_user = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"));
    match last_user.map(|m| &m["content"]) {
        Some(Value::String(s)) => s.clone(),
        Some(parts @ Value::Array(_)) => text_of_parts(parts),
        _ => String::new(),
    }
}
