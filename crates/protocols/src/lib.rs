//! Wire formats and pure conversions. One folder per API family (`openai/`, `anthropic/`,
//! `gemini/`), each serving both sides: the client-facing side (parse a client's request,
//! render a response, stream and error in that format) and the provider side (build an upstream
//! request, decode its response and stream). Everything here is synchronous and does no IO, so
//! that it can be tested against recorded fixtures and every byte-split of them.

pub mod anthropic;
pub mod codec;
pub mod error;
pub mod gemini;
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

/// Deserialises JSON from bytes, with exactly `serde_json::from_slice`'s verdicts. Bytes that
/// are valid UTF-8 (every well-formed body) are read as text: serde then skips its UTF-8 check
/// of each string, about a thousand instructions on a chat completion, more than the one check
/// of the whole body costs. Other bytes go through `from_slice`, for its own answer (it accepts
/// invalid UTF-8 in strings it skips).
pub(crate) fn from_json<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Parses a client's request body (any family), which must be one JSON object.
pub(crate) fn parse_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, crate::ConvertError> {
    match from_json::<serde_json::Value>(body) {
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

#[cfg(test)]
mod tests {
    use super::from_json;
    use serde::de::IgnoredAny;
    use std::collections::BTreeMap;

    /// Same verdicts as `from_slice`, UTF-8 or not.
    #[test]
    fn from_json_agrees_with_from_slice() {
        let bodies: &[&[u8]] = &[
            br#"{"a":"x","b":[1,2]}"#,
            b"{\"a\":\"\xff\",\"b\":1}",
            b"{\"a\":\"x\",\"b\":\"\xff\"}",
            b"{\"\xff\":1}",
            br#"{"a":"\u00e9"}"#,
            b"{\"a\":",
        ];
        type Skip = BTreeMap<String, IgnoredAny>;
        type Keep = BTreeMap<String, serde_json::Value>;
        for body in bodies {
            assert_eq!(
                from_json::<Skip>(body).is_ok(),
                serde_json::from_slice::<Skip>(body).is_ok(),
                "{body:?}"
            );
            assert_eq!(
                from_json::<Keep>(body).ok(),
                serde_json::from_slice::<Keep>(body).ok(),
                "{body:?}"
            );
        }
        // Invalid UTF-8 in a skipped string is fine for serde; in a kept one it is not.
        assert!(from_json::<Skip>(b"{\"a\":\"\xff\"}").is_ok());
        assert!(from_json::<Keep>(b"{\"a\":\"\xff\"}").is_err());
    }
}
