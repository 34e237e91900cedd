//! The Anthropic Messages API, both sides: clients of `POST /v1/messages` (parse the request,
//! render the response, stream and errors in Anthropic's shape) and Anthropic as an upstream
//! (build the request body, decode the response and the stream).
//!
//! Files: `request` parses client requests, `build` writes upstream requests, `response`
//! handles whole responses, `stream` decodes upstream streams, `encoder` writes client streams,
//! `wire` holds the mappings they share (stop reasons, usage, error types).

mod build;
mod encoder;
mod request;
mod response;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{json, Value};

pub use build::messages_request_body;
pub use encoder::MessagesStreamEncoder;
pub use request::{
    parse_count_tokens_request, parse_messages_request, unconvertible, UNCONVERTIBLE_KEY,
};
pub use response::{
    parse_messages_response, parse_messages_response_passthrough, render_messages_response,
};
pub use stream::MessagesStreamDecoder;

use crate::error::ClientError;

/// Longest upstream error message passed on, in characters: enough to say what went wrong,
/// short enough for a log line.
const MAX_UPSTREAM_MESSAGE: usize = 300;

/// An error body in Anthropic's shape: `{"type":"error","error":{"type","message"}}`.
pub fn render_error(err: &ClientError) -> Vec<u8> {
    json!({
        "type": "error",
        "error": {"type": wire::error_type(err.kind), "message": err.message},
    })
    .to_string()
    .into_bytes()
}

/// The answer of `POST /v1/messages/count_tokens`.
pub fn render_count_tokens(input_tokens: u64) -> Vec<u8> {
    json!({ "input_tokens": input_tokens })
        .to_string()
        .into_bytes()
}

/// `error.message` of an Anthropic error body, cut to 300 characters.
pub fn upstream_error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    Some(message.chars().take(MAX_UPSTREAM_MESSAGE).collect())
}
