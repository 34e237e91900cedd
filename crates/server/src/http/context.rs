//! Reading the request's headers into a `RequestContext`: the credentials (from whichever
//! header a client SDK uses), the request id and the trace context.

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderName};
use switchboard_core::{Credentials, RequestContext};

/// Longest incoming `x-request-id` we echo; longer or non-printable ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// A UUIDv7 in 32 hex digits: unique across instances and sortable by time in logs. Encoded
/// into a stack buffer, not through `Display`, since it runs on every request.
pub fn new_request_id() -> String {
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    uuid::Uuid::now_v7()
        .simple()
        .encode_lower(&mut buf)
        .to_owned()
}

// Header names as constants: looking a header up by `&str` parses the name on every call.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_TRACE_ID: HeaderName = HeaderName::from_static("x-switchboard-trace-id");
const KEY_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-goog-api-key"),
];

pub fn request_context(headers: &HeaderMap) -> RequestContext {
    let request_id = headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let traceparent = headers
        .get(TRACEPARENT)
        .or_else(|| headers.get(X_TRACE_ID))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    RequestContext {
        request_id,
        traceparent,
        credentials: Credentials {
            api_key: api_key(headers),
        },
        principal: None,
    }
}

/// `Authorization: Bearer KEY`, `x-api-key` (Anthropic SDKs), `api-key` (Azure SDKs) or
/// `x-goog-api-key` (Google SDKs), first found wins.
fn api_key(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Some(key) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(key.trim().to_owned());
        }
    }
    KEY_HEADERS
        .iter()
        .find_map(|name| headers.get(name).and_then(|v| v.to_str().ok()))
        .map(|v| v.trim().to_owned())
}
