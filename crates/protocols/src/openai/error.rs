//! Errors in the OpenAI shape: rendering a [`ClientError`] for an OpenAI client, reading the
//! message out of an upstream's error body, and classifying an in-band `{"error":{...}}` object
//! (in a 200 body or a stream) as a [`DecodeError::Upstream`].

use super::wire::{OutError, OutErrorBody};
use crate::error::{ClientError, DecodeError, ErrorKind};
use serde_json::Value;

/// Longest upstream message kept, in characters: enough to diagnose, short enough for a log
/// line and for a summarised 502.
const MAX_MESSAGE_CHARS: usize = 300;

/// `{"error":{"message","type","code","param"}}`.
///
/// `type` per kind. OpenAI itself answers an unknown model with 404 and `invalid_request_error`
/// (the `code` says `model_not_found`); we do the same for `NotFound`, since SDKs map the status
/// to an exception class and tools that match on `type` expect OpenAI's values. 503
/// (`Overloaded`) has no documented OpenAI type; `service_unavailable_error` says what it is.
pub fn render_error(err: &ClientError) -> Vec<u8> {
    let kind = match err.kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::RequestTooLarge => {
            "invalid_request_error"
        }
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Upstream => "api_error",
        ErrorKind::Overloaded => "service_unavailable_error",
        ErrorKind::Timeout => "timeout_error",
        ErrorKind::Internal => "server_error",
    };
    super::to_json(&OutErrorBody {
        error: OutError {
            message: &err.message,
            kind,
            code: err.code,
            param: err.param.as_deref(),
        },
    })
}

/// The message of an OpenAI-style error body: `{"error":{"message":..}}`, also the shapes some
/// compatible servers use (`{"message":..}`, `{"error":"text"}`, `{"detail":..}`, and a one-element
/// array around any of them). Truncated to 300 characters. `None` when the body says nothing
/// usable (not JSON, or no message).
pub fn upstream_error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let value = match value {
        Value::Array(mut items) if !items.is_empty() => items.swap_remove(0),
        other => other,
    };
    let message = match value.get("error") {
        Some(Value::Object(e)) => e.get("message").and_then(Value::as_str),
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
    .or_else(|| value.get("message").and_then(Value::as_str))
    .or_else(|| value.get("detail").and_then(Value::as_str))?;
    let message = message.trim();
    if message.is_empty() {
        return None;
    }
    Some(truncate(message))
}

fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}

/// An error object found where a completion or chunk was expected.
///
/// `kind` is the provider's `type` (else its `code`). Retryable when the type or code names a
/// transient condition (server error, rate limit, overload, timeout) or when a numeric code is
/// 408/429/5xx; everything else (invalid request, context length, content policy) is not.
pub(super) fn in_band_error(error: &Value) -> DecodeError {
    let text = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or_default();
    let (kind, code) = (text("type"), text("code"));
    let message = match error {
        Value::String(s) => truncate(s),
        _ => truncate(text("message")),
    };
    let numeric = error
        .get("code")
        .and_then(Value::as_u64)
        .or_else(|| error.get("status").and_then(Value::as_u64));
    let transient = |s: &str| {
        matches!(
            s,
            "server_error"
                | "api_error"
                | "internal_error"
                | "rate_limit_error"
                | "rate_limit_exceeded"
                | "overloaded_error"
                | "service_unavailable"
                | "service_unavailable_error"
                | "timeout"
                | "timeout_error"
        )
    };
    let retryable = transient(kind)
        || transient(code)
        || numeric.is_some_and(|n| matches!(n, 408 | 429) || (500..600).contains(&n));
    let kind = if !kind.is_empty() {
        kind.to_owned()
    } else if !code.is_empty() {
        code.to_owned()
    } else {
        numeric.map_or_else(|| "error".to_owned(), |n| n.to_string())
    };
    DecodeError::Upstream {
        kind,
        message,
        retryable,
    }
}
