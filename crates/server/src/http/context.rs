//! Reading the request's headers into a `RequestContext`: the credentials (from whichever
//! header a client SDK uses), the request id and the trace context.

use axum::http::HeaderMap;
use switchboard_core::{Credentials, RequestContext};

/// Longest incoming `x-request-id` we echo; longer or non-printable ones are replaced.
const MAX_REQUEST_ID: usize = 128;

pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

pub fn request_context(headers: &HeaderMap) -> RequestContext {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let traceparent = headers
        .get("traceparent")
        .or_else(|| headers.get("x-switchboard-trace-id"))
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
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if let Some(key) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(key.trim().to_owned());
        }
    }
    ["x-api-key", "api-key", "x-goog-api-key"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(|v| v.trim().to_owned())
}
