//! The two client-facing API families and everything that differs between them: parsing a
//! chat request, rendering a response, the stream encoder and the error shape. Also the
//! response headers every data-plane answer carries.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use switchboard_core::limits::RateHeaders;
use switchboard_core::routing::RouteFailure;
use switchboard_core::GatewayError;
use switchboard_protocols::{anthropic, openai, ClientError, ConvertError, StreamEncoder};
use switchboard_types::{ChatRequest, ChatResponse, Protocol, TargetId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFormat {
    OpenAi,
    Anthropic,
}

impl ClientFormat {
    pub fn parse_chat(self, body: &[u8]) -> Result<ChatRequest, ConvertError> {
        match self {
            ClientFormat::OpenAi => openai::parse_chat_request(body),
            ClientFormat::Anthropic => anthropic::parse_messages_request(body),
        }
    }

    /// The response body. A body the upstream wrote in this very format is shared as it is,
    /// not copied (the renderers would return the same bytes in a new buffer).
    pub fn render_chat(self, resp: &ChatResponse) -> Bytes {
        if let Some(raw) = resp.raw.as_ref().filter(|r| r.protocol == self.protocol()) {
            return raw.body.clone();
        }
        Bytes::from(match self {
            ClientFormat::OpenAi => openai::render_chat_response(resp),
            ClientFormat::Anthropic => anthropic::render_messages_response(resp),
        })
    }

    fn protocol(self) -> Protocol {
        match self {
            ClientFormat::OpenAi => Protocol::OpenAi,
            ClientFormat::Anthropic => Protocol::Anthropic,
        }
    }

    pub fn encoder(self, req: &ChatRequest) -> Box<dyn StreamEncoder> {
        match self {
            ClientFormat::OpenAi => {
                Box::new(openai::ChatStreamEncoder::new(req.stream_include_usage))
            }
            ClientFormat::Anthropic => Box::new(anthropic::MessagesStreamEncoder::new()),
        }
    }

    pub fn render_error(self, err: &ClientError) -> Vec<u8> {
        match self {
            ClientFormat::OpenAi => openai::render_error(err),
            ClientFormat::Anthropic => anthropic::render_error(err),
        }
    }

    /// The error response of a request refused before admission (counted in
    /// `switchboard_refused_total`; admitted requests are counted by their meter).
    pub fn error_response(self, err: &GatewayError, request_id: &str) -> Response {
        super::metrics::refused(err);
        self.render_response(err, request_id)
    }

    /// A complete error response: status, body in this format, `retry-after` when a wait
    /// helps, and the request id.
    fn render_response(self, err: &GatewayError, request_id: &str) -> Response {
        let client = err.to_client(request_id);
        if err.fault() != switchboard_core::Fault::Client {
            tracing::warn!(%request_id, code = client.code, error = %err, "Request failed.");
        }
        let status =
            StatusCode::from_u16(client.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, json_body(self.render_error(&client))).into_response();
        let headers = response.headers_mut();
        set(headers, X_REQUEST_ID, request_id);
        if let Some(wait) = err.retry_after() {
            // Round up: a client that waits the advertised seconds must not be early.
            let secs = wait.as_millis().div_ceil(1000).max(1);
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(u64::try_from(secs).unwrap_or(u64::MAX)),
            );
        }
        response
    }

    /// The error response of a routed call, with the routing headers.
    pub fn failure_response(self, failure: &RouteFailure, meta: &CallMeta<'_>) -> Response {
        // Without an attempt, a client error other than a limit's 429 was found before
        // admission (model unknown or not allowed, context window); others were metered.
        let status = failure.error.status();
        if failure.attempts == 0 && (400..500).contains(&status) && status != 429 {
            super::metrics::refused(&failure.error);
        }
        let mut response = self.render_response(&failure.error, meta.request_id);
        let routed = CallMeta {
            target: failure.last_target.as_ref(),
            attempts: failure.attempts,
            ..*meta
        };
        routed.apply(response.headers_mut());
        response
    }
}

/// What the routing headers say about a call.
#[derive(Clone, Copy, Debug)]
pub struct CallMeta<'a> {
    pub request_id: &'a str,
    /// The alias asked for.
    pub alias: &'a str,
    pub target: Option<&'a TargetId>,
    pub attempts: u32,
}

// Header names built at compile time: `from_static` at run time parses the name on every call.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_SWITCHBOARD_MODEL: HeaderName = HeaderName::from_static("x-switchboard-model");
const X_SWITCHBOARD_TARGET: HeaderName = HeaderName::from_static("x-switchboard-target");
const X_SWITCHBOARD_ATTEMPTS: HeaderName = HeaderName::from_static("x-switchboard-attempts");

impl CallMeta<'_> {
    pub fn apply(&self, headers: &mut HeaderMap) {
        set(headers, X_REQUEST_ID, self.request_id);
        if !self.alias.is_empty() {
            set(headers, X_SWITCHBOARD_MODEL, self.alias);
        }
        if let Some(target) = self.target {
            set(headers, X_SWITCHBOARD_TARGET, &target.label());
        }
        headers.insert(X_SWITCHBOARD_ATTEMPTS, count_value(self.attempts));
    }
}

/// A small count as a header value: the usual ones (an attempt or a few) are static, where
/// `HeaderValue::from(u32)` allocates a buffer for every response.
fn count_value(count: u32) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match usize::try_from(count).ok().and_then(|n| DIGITS.get(n)) {
        Some(digit) => HeaderValue::from_static(digit),
        None => HeaderValue::from(count),
    }
}

const RATE_HEADERS: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

/// The `x-ratelimit-*` headers of the tightest request and token limits (OpenAI's names; the
/// reset is a duration such as `850ms`, `12s` or `1m30s`).
pub fn apply_rate(headers: &mut HeaderMap, rate: &RateHeaders) {
    for (triple, [limit, remaining, reset]) in [rate.requests, rate.tokens].iter().zip(RATE_HEADERS)
    {
        let Some(triple) = triple else { continue };
        headers.insert(limit, HeaderValue::from(triple.limit));
        headers.insert(remaining, HeaderValue::from(triple.remaining));
        set(headers, reset, &duration_text(triple.reset_ms));
    }
}

fn duration_text(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        1000..60_000 => format!("{}.{:03}s", ms / 1000, ms % 1000)
            .trim_end_matches('0')
            .to_owned(),
        _ => format!("{}m{}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

pub fn json_body(body: impl Into<Bytes>) -> ([(header::HeaderName, HeaderValue); 1], Bytes) {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
}

/// The answer when a handler panicked (a bug): a generic 500 in the OpenAI error shape, with no
/// detail of the panic.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("A request handler panicked.");
    ClientFormat::OpenAi.error_response(
        &GatewayError::Internal("handler panicked".into()),
        &super::context::new_request_id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_the_same_static_or_formatted() {
        for count in [0, 1, 7, 9, 10, 11, 123, u32::MAX] {
            assert_eq!(count_value(count), HeaderValue::from(count), "{count}");
        }
    }
}
