//! Wire formats and pure conversions. One folder per API family (`openai/`, `anthropic/`,
//! `gemini/`), each serving both sides: the client-facing side (parse a client's request,
//! render a response, stream and error in that format) and the provider side (build an upstream
//! request, decode its response and stream). Everything here is synchronous and does no IO, so
//! that it can be tested against recorded fixtures and every byte-split of them.

pub mod anthropic;
pub mod codec;
pub mod error;
pub mod gemini;
mod json_scan;
pub mod openai;
pub mod sse;

pub use codec::{ResponseMode, StreamDecoder, StreamEncoder, UpstreamBody};
pub use error::{ClientError, ConvertError, DecodeError, ErrorKind};
pub use sse::{SseEvent, SseParser};

/// Seconds since the Unix epoch, for `created` when the source had none (Anthropic and Gemini
/// bodies carry no timestamp).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Parses a client's request body (any family), which must be one JSON object.
pub(crate) fn parse_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, crate::ConvertError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        Ok(_) => Err(crate::ConvertError::invalid(
            None,
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(crate::ConvertError::invalid(
            None,
            format!("The request body is not valid JSON: {e}."),
        )),
    }
}
