//! The HTTP transport every remote provider shares: pooled reqwest clients (rustls, TCP_NODELAY,
//! HTTP/1.1 or HTTP/2 as ALPN negotiates), one JSON POST with the attempt's time limits, and the
//! mapping of transport failures and non-success answers to [`ProviderError`].
//!
//! Connect timeouts are a client setting in reqwest, not a request setting, while ours come per
//! model (`Timeouts::connect`). The transport therefore keeps a small map of clients keyed by
//! connect timeout, built lazily and shared by every provider: configs use a handful of distinct
//! values, so there are a handful of pools, and two providers on the same host with the same
//! connect timeout share warm connections. The other limits (first byte, total, idle) are applied
//! here with tokio timers so that one pool serves them all.

use crate::{ProviderError, TimeoutKind, Upstream};
use bytes::Bytes;
use futures::StreamExt;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Longest summary of a provider's error message kept in a [`ProviderError`].
const MAX_MESSAGE_CHARS: usize = 300;
/// Most bytes of an error body read to find the provider's message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Idle pooled connections are closed after this; below the usual 120 s of load balancers.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// What turns a provider's error body into its message (`protocols::*::upstream_error_message`).
pub(crate) type ErrorMessageFn = fn(&[u8]) -> Option<String>;

/// Pooled HTTP clients, one per distinct connect timeout.
#[derive(Default)]
pub(crate) struct Transport {
    clients: RwLock<HashMap<Duration, reqwest::Client>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A client's own Debug lists its whole configuration; the pool count is what matters.
        f.debug_struct("Transport")
            .field("pools", &self.clients.read().len())
            .finish()
    }
}

pub(crate) use switchboard_types::Secret;

/// A header value that holds a secret: marked sensitive so that HTTP-level debug output hides it.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(value)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Percent-encodes one URL path segment or query value (a deployment or model name), keeping the
/// RFC 3986 unreserved characters.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One JSON POST to a provider.
pub(crate) struct PostJson<'a> {
    /// Parsed once where it can be (a provider's fixed endpoints): parsing, with IDNA, costs
    /// more than the rest of building the request.
    pub url: reqwest::Url,
    /// The provider's fixed headers (auth, version, extra headers), built once.
    pub headers: &'a HeaderMap,
    pub body: Vec<u8>,
    pub call: &'a Upstream<'a>,
    pub error_message: ErrorMessageFn,
    /// Redacted from any message kept in an error, should the provider echo it.
    pub secret: Option<&'a str>,
}

/// A success answer whose headers arrived; the body is still to be read.
#[derive(Debug)]
pub(crate) struct Answer {
    pub response: reqwest::Response,
    /// End of the whole attempt (`Timeouts::total` from the start).
    pub deadline: Instant,
    /// Longest wait between two body chunks (streams).
    pub idle: Duration,
}

impl Transport {
    /// The process-wide transport, so that every provider shares the pools.
    pub(crate) fn shared() -> Arc<Transport> {
        static SHARED: OnceLock<Arc<Transport>> = OnceLock::new();
        SHARED.get_or_init(Arc::default).clone()
    }

    fn client(&self, connect: Duration) -> Result<reqwest::Client, ProviderError> {
        if let Some(client) = self.clients.read().get(&connect) {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(connect)
            // Nagle's algorithm meeting delayed ACKs stalls small request writes by ~40 ms.
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(60))
            .pool_idle_timeout(POOL_IDLE)
            // HTTP/2 when the server offers it through ALPN, HTTP/1.1 otherwise.
            .http2_adaptive_window(true)
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Connect(format!("could not build the HTTP client: {e}")))?;
        // Two tasks may race to build the same client; the first one stored wins.
        Ok(self
            .clients
            .write()
            .entry(connect)
            .or_insert(client)
            .clone())
    }

    /// Sends the POST and waits for the response headers within the first-byte limit. A success
    /// status gives an [`Answer`]; any other status becomes [`ProviderError::Status`].
    pub(crate) async fn post(&self, req: PostJson<'_>) -> Result<Answer, ProviderError> {
        let timeouts = req.call.timeouts;
        let start = Instant::now();
        let deadline = start + timeouts.total;
        let first_byte = start + timeouts.first_byte;
        let client = self.client(timeouts.connect)?;

        let mut headers = req.headers.clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        insert_optional(&mut headers, "x-request-id", Some(req.call.request_id));
        insert_optional(&mut headers, "traceparent", req.call.traceparent);

        let send = client.post(req.url).headers(headers).body(req.body).send();
        let response = match tokio::time::timeout_at(first_byte.min(deadline), send).await {
            Err(_) if first_byte <= deadline => {
                return Err(ProviderError::Timeout(TimeoutKind::FirstByte))
            }
            Err(_) => return Err(ProviderError::Timeout(TimeoutKind::Total)),
            Ok(Err(e)) => return Err(map_send_error(e)),
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            return Ok(Answer {
                response,
                deadline,
                idle: timeouts.idle,
            });
        }
        Err(status_error(response, deadline, req.error_message, req.secret).await)
    }
}

impl Answer {
    /// Reads the whole body within the attempt's total limit.
    pub(crate) async fn bytes(self) -> Result<Bytes, ProviderError> {
        match tokio::time::timeout_at(self.deadline, self.response.bytes()).await {
            Err(_) => Err(ProviderError::Timeout(TimeoutKind::Total)),
            Ok(Err(e)) => Err(map_body_error(e)),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }
}

fn insert_optional(headers: &mut HeaderMap, name: &'static str, value: Option<&str>) {
    // A value that is not a valid header (a client-supplied traceparent with a newline) is not
    // worth failing the call over: it is only correlation.
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Builds [`ProviderError::Status`] from a non-success answer: the provider's own message
/// (summarised, secrets redacted) and the wait it asked for.
async fn status_error(
    response: reqwest::Response,
    deadline: Instant,
    error_message: ErrorMessageFn,
    secret: Option<&str>,
) -> ProviderError {
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let body = tokio::time::timeout_at(deadline, read_limited(response, MAX_ERROR_BODY))
        .await
        .unwrap_or_default();
    let message = error_message(&body)
        .map(|m| summarise(&m, secret))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_owned()
        });
    ProviderError::Status {
        status: status.as_u16(),
        message,
        retry_after,
    }
}

/// Reads at most `limit` bytes of a body; a broken body gives what arrived.
async fn read_limited(response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
}

/// The provider's message, made fit for a log line: secrets redacted, whitespace collapsed, at
/// most [`MAX_MESSAGE_CHARS`] characters.
pub(crate) fn summarise(message: &str, secret: Option<&str>) -> String {
    let redacted = match secret.filter(|s| !s.is_empty()) {
        Some(secret) => message.replace(secret, "*****"),
        None => message.to_owned(),
    };
    let mut out = String::with_capacity(redacted.len().min(MAX_MESSAGE_CHARS + 3));
    for (i, word) in redacted.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    match out.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => {
            out.truncate(cut);
            out.push_str("...");
            out
        }
        None => out,
    }
}

/// The wait a provider asked for: `retry-after-ms` (OpenAI, Azure; milliseconds) wins over
/// `retry-after` (seconds, or an HTTP date, RFC 9110 section 10.2.3). A date in the past is no wait.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if let Ok(wait) = Duration::try_from_secs_f64(ms / 1000.0) {
            return Some(wait);
        }
    }
    let value = text(RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Maps a failure before the response headers.
fn map_send_error(err: reqwest::Error) -> ProviderError {
    let err = err.without_url();
    if err.is_connect() {
        if err.is_timeout() {
            return ProviderError::Timeout(TimeoutKind::Connect);
        }
        return ProviderError::Connect(describe(&err));
    }
    if err.is_timeout() {
        return ProviderError::Timeout(TimeoutKind::FirstByte);
    }
    // The connection broke while the request was written or before the headers came.
    ProviderError::Closed(describe(&err))
}

/// Maps a failure while reading a success body.
pub(crate) fn map_body_error(err: reqwest::Error) -> ProviderError {
    let err = err.without_url();
    if err.is_timeout() {
        return ProviderError::Timeout(TimeoutKind::Total);
    }
    ProviderError::Closed(describe(&err))
}

/// The error and its causes on one line ("error sending request: client error (Connect):
/// Connection refused"). reqwest errors carry no headers or bodies, so no secret can leak.
fn describe(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    summarise(&out, None)
}

#[cfg(test)]
mod tests;

/// Parses an endpoint URL built from validated settings and a model name. The base URL was
/// checked when the provider was built, so a failure here means the model (deployment) name
/// made the URL invalid: the client's request names it, so it is reported as such.
pub(crate) fn endpoint(url: &str) -> Result<reqwest::Url, ProviderError> {
    reqwest::Url::parse(url).map_err(|_| ProviderError::Unsupported {
        param: Some("model".into()),
        message: "the model name does not form a valid provider URL".into(),
    })
}
