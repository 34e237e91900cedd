//! Token counting before a call: for `/v1/messages/count_tokens` and the context-window check.
//! Uses OpenAI's `o200k_base` encoding (tiktoken-rs) for every model: exact for current OpenAI
//! models, and a close estimate for other families, whose tokenizers are not public.

use std::sync::OnceLock;
use switchboard_types::{ChatRequest, ContentPart, Message};
use tiktoken_rs::CoreBPE;

/// Tokens added per message for the role and separators (OpenAI's documented chat overhead).
const PER_MESSAGE: u64 = 3;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMER: u64 = 3;
/// Rough cost of one image; providers charge by size, which is unknown before the call.
const PER_IMAGE: u64 = 765;

fn encoder() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn count_text(text: &str) -> u64 {
    match encoder() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        // The encoder's data ships inside the crate, so this only happens if it is corrupt:
        // fall back to the usual four characters per token.
        None => (text.chars().count() as u64).div_ceil(4),
    }
}

fn count_parts(parts: &[ContentPart]) -> u64 {
    parts
        .iter()
        .map(|part| match part {
            ContentPart::Text { text } => count_text(text),
            ContentPart::Thinking { text, .. } => count_text(text),
            ContentPart::Image { .. } => PER_IMAGE,
        })
        .sum()
}

fn count_message(message: &Message) -> u64 {
    let calls: u64 = message
        .tool_calls
        .iter()
        .map(|c| count_text(&c.name) + count_text(&c.arguments))
        .sum();
    PER_MESSAGE + count_parts(&message.content) + calls
}

/// Input tokens of a chat request: system, messages and tool definitions.
pub fn count_input(req: &ChatRequest) -> u64 {
    let system = if req.system.is_empty() {
        0
    } else {
        PER_MESSAGE + count_parts(&req.system)
    };
    let tools: u64 = req
        .tools
        .iter()
        .map(|t| {
            count_text(&t.name)
                + t.description.as_deref().map_or(0, count_text)
                + count_text(&t.parameters.to_string())
        })
        .sum();
    system + req.messages.iter().map(count_message).sum::<u64>() + tools + REPLY_PRIMER
}

/// An upper bound on the input tokens that costs no tokenizing: no tokenizer makes more tokens
/// than bytes, plus the fixed overheads. Lets the context-window check skip counting for the
/// common short request.
pub fn upper_bound(req: &ChatRequest) -> u64 {
    fn bytes(parts: &[ContentPart]) -> u64 {
        parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } | ContentPart::Thinking { text, .. } => {
                    text.len() as u64
                }
                ContentPart::Image { .. } => PER_IMAGE,
            })
            .sum()
    }
    let messages: u64 = req
        .messages
        .iter()
        .map(|m| {
            PER_MESSAGE
                + bytes(&m.content)
                + m.tool_calls
                    .iter()
                    .map(|c| (c.name.len() + c.arguments.len()) as u64)
                    .sum::<u64>()
        })
        .sum();
    let tools: u64 = req
        .tools
        .iter()
        .map(|t| {
            (t.name.len() + t.description.as_deref().map_or(0, str::len)) as u64
                + t.parameters.to_string().len() as u64
        })
        .sum();
    PER_MESSAGE + bytes(&req.system) + messages + tools + REPLY_PRIMER
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_types::Role;

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![Message::new(Role::User, vec![ContentPart::text(text)])],
            ..ChatRequest::default()
        }
    }

    #[test]
    fn counts_with_tiktoken() {
        // "Hello world" is two tokens in o200k_base; plus message overhead and reply primer.
        assert_eq!(
            count_input(&request("Hello world")),
            2 + PER_MESSAGE + REPLY_PRIMER
        );
    }

    #[test]
    fn upper_bound_is_never_below_the_count() {
        for text in [
            "",
            "a",
            "Hello world",
            "ünïcödé 漢字 text with emoji 🎉",
            &"word ".repeat(500),
        ] {
            let req = request(text);
            assert!(upper_bound(&req) >= count_input(&req), "{text}");
        }
    }
}
