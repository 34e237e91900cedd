//! Google Gemini (`generativelanguage` v1beta), provider side only: clients never speak Gemini
//! to Switchboard, so there is no request parser, renderer or stream encoder here.
//!
//! - [`generate_content_body`] builds the body of `models/{model}:generateContent` and
//!   `:streamGenerateContent?alt=sse` (the model and the streaming choice live in the URL).
//! - [`parse_generate_response`] and [`GenerateStreamDecoder`] read the answers back.
//! - [`embed_request_body`] / [`parse_embed_response_for`] serve `:batchEmbedContents`.
//! - [`upstream_error_message`] extracts the message of an error body for logs.
//!
//! Each submodule's doc lists the decisions made where Gemini and the canonical types differ.

mod embed;
mod request;
mod response;
mod schema;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use embed::{embed_request_body, parse_embed_response, parse_embed_response_for};
pub use request::generate_content_body;
pub use response::parse_generate_response;
pub use stream::GenerateStreamDecoder;

/// Longest message kept from an upstream error body (for logs; never shown to clients raw).
const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// The `error.message` of a Gemini error body, truncated to 300 characters. Gemini answers
/// `{"error": {"code", "message", "status"}}`, and some endpoints wrap it in a one-element
/// array; both are accepted.
pub fn upstream_error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = match &value {
        serde_json::Value::Array(items) => items.first()?,
        other => other,
    };
    let message = object.get("error")?.get("message")?.as_str()?;
    Some(message.chars().take(MAX_ERROR_MESSAGE_CHARS).collect())
}
