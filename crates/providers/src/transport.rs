//! The HTTP transport every remote provider shares: pooled hyper clients (rustls, TCP_NODELAY,
//! HTTP/1.1 or HTTP/2 as ALPN negotiates), one JSON POST with the attempt's time limits, and the
//! mapping of transport failures and non-success answers to [`ProviderError`].
//!
//! `http://` upstreams (local model servers, the benchmark's mock) go through a keep-alive
//! HTTP/1.1 pool of our own on hyper's connection API (`pool.rs`); `https://` ones through
//! hyper-util's pooled client, which adds TLS and HTTP/2. The rest of this page is about that one.
//!
//! The client is hyper-util's pooled client directly rather than a higher-level wrapper: the
//! wrappers' per-request layers (URL re-parsing, proxy matching, their own request types) cost
//! several percent of the gateway's CPU per request, and providers already hold their endpoints
//! as parsed [`Uri`]s and their fixed headers as a built [`HeaderMap`].
//!
//! Connect timeouts are a connector setting, not a request setting, while ours come per model
//! (`Timeouts::connect`). The transport therefore keeps a small map of clients keyed by connect
//! timeout, built lazily and shared by every provider: configs use a handful of distinct values,
//! so there are a handful of pools, and two providers on the same host with the same connect
//! timeout share warm connections. The other limits (first byte, total, idle) are applied here
//! with tokio timers so that one pool serves them all.

mod pool;

use crate::{ProviderError, TimeoutKind, Upstream};
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT,
};
use http::uri::Scheme;
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::RwLock;
use pool::PlainPool;
pub(crate) use pool::UpstreamBody;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest summary of a provider's error message kept in a [`ProviderError`].
const MAX_MESSAGE_CHARS: usize = 300;
/// Most bytes of an error body read to find the provider's message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Idle pooled connections are closed after this; below the usual 120 s of load balancers.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// TCP keepalive probes on upstream connections, so that dead peers are noticed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Sent on every request, as providers ask clients to identify themselves.
const USER_AGENT_VALUE: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));

/// What turns a provider's error body into its message (`protocols::*::upstream_error_message`).
pub(crate) type ErrorMessageFn = fn(&[u8]) -> Option<String>;

/// The pooled client: TCP (TLS when https) with a connect limit, HTTP/1.1 or HTTP/2.
type HttpClient = Client<TimedConnector, Full<Bytes>>;

/// Pooled HTTP clients, one per distinct connect timeout. A list, not a map: configs use a
/// handful of timeouts, and comparing a few `Duration`s is cheaper than hashing one on every
/// request.
#[derive(Default)]
pub(crate) struct Transport {
    clients: RwLock<Vec<(Duration, HttpClient)>>,
    /// Plain-HTTP upstreams go through a leaner pool of our own (see `pool.rs`).
    plain: Arc<PlainPool>,
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

/// Completes a provider's fixed headers with those every request carries, once when the provider
/// is built rather than on every request. The provider's own headers win for `user-agent` and
/// `accept`; the body is always JSON. `Host` comes from `base_url` (every endpoint of a provider
/// shares its authority): the pooled client would otherwise format it on every request.
pub(crate) fn with_common_headers(mut headers: HeaderMap, base_url: &str) -> HeaderMap {
    headers
        .entry(USER_AGENT)
        .or_insert(HeaderValue::from_static(USER_AGENT_VALUE));
    headers
        .entry(ACCEPT)
        .or_insert(HeaderValue::from_static("*/*"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(host) = Uri::try_from(base_url).ok().as_ref().and_then(host_value) {
        headers.entry(HOST).or_insert(host);
    }
    headers
}

/// The `Host` header of requests to `uri`: the host, and the port unless it is the scheme's
/// default (what the client would send).
fn host_value(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    match uri.port_u16().filter(|&port| port != default_port) {
        Some(port) => HeaderValue::from_str(&format!("{host}:{port}")).ok(),
        None => HeaderValue::from_str(host).ok(),
    }
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
    /// Parsed once where it can be (a provider's fixed endpoints).
    pub uri: Uri,
    /// The provider's fixed headers (auth, version, extra headers, and those of
    /// [`with_common_headers`]), built once.
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
    pub response: Response<UpstreamBody>,
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

    /// Starts the request on the pool of its connect timeout. The client is only borrowed under
    /// the lock: the future it gives owns what it needs.
    fn send(
        &self,
        connect: Duration,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper_util::client::legacy::ResponseFuture, ProviderError> {
        if let Some((_, client)) = self.clients.read().iter().find(|(t, _)| *t == connect) {
            return Ok(client.request(request));
        }
        let client = build_client(connect)?;
        // Two tasks may race to build the same client; the first one stored wins.
        let mut clients = self.clients.write();
        if let Some((_, client)) = clients.iter().find(|(t, _)| *t == connect) {
            return Ok(client.request(request));
        }
        clients.push((connect, client));
        Ok(clients[clients.len() - 1].1.request(request))
    }

    /// Sends the POST and waits for the response headers within the first-byte limit. A success
    /// status gives an [`Answer`]; any other status becomes [`ProviderError::Status`].
    pub(crate) async fn post(&self, req: PostJson<'_>) -> Result<Answer, ProviderError> {
        let timeouts = req.call.timeouts;
        let start = Instant::now();
        let deadline = start + timeouts.total;
        let first_byte = start + timeouts.first_byte;

        // Room for the two headers added here and the `content-length` hyper adds: a clone of
        // the provider's map has none to spare, and growing it cost ~1k instructions a request.
        let mut headers = HeaderMap::with_capacity(req.headers.len() + 3);
        for (name, value) in req.headers {
            headers.append(name.clone(), value.clone());
        }
        insert_optional(&mut headers, X_REQUEST_ID, Some(req.call.request_id));
        insert_optional(&mut headers, TRACEPARENT, req.call.traceparent);
        let mut request = Request::new(Full::new(Bytes::from(req.body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = req.uri;
        *request.headers_mut() = headers;

        let limit = first_byte.min(deadline);
        let sent = if request.uri().scheme() == Some(&Scheme::HTTP) {
            tokio::time::timeout_at(limit, self.plain.send(request, timeouts.connect)).await
        } else {
            let send = self.send(timeouts.connect, request)?;
            tokio::time::timeout_at(limit, async {
                match send.await {
                    Ok(response) => Ok(response.map(UpstreamBody::unpooled)),
                    Err(e) => Err(map_send_error(&e)),
                }
            })
            .await
        };
        let response = match sent {
            Err(_) if first_byte <= deadline => {
                return Err(ProviderError::Timeout(TimeoutKind::FirstByte))
            }
            Err(_) => return Err(ProviderError::Timeout(TimeoutKind::Total)),
            Ok(result) => result?,
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

/// One pool: TCP with TCP_NODELAY and keepalive, TLS through rustls (ring, Mozilla's roots) for
/// https, HTTP/2 when the server offers it through ALPN and HTTP/1.1 otherwise.
fn build_client(connect: Duration) -> Result<HttpClient, ProviderError> {
    let mut http = HttpConnector::new();
    // The TLS layer above takes https URIs through this connector.
    http.enforce_http(false);
    // Nagle's algorithm meeting delayed ACKs stalls small request writes by ~40 ms.
    http.set_nodelay(true);
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_connect_timeout(Some(connect));
    let tls = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| ProviderError::Connect(format!("could not build the HTTP client: {e}")))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let connector = TimedConnector {
        inner: tls,
        limit: connect,
    };
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .http2_adaptive_window(true)
        .build(connector))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The HTTPS-or-HTTP connector under one limit for TCP and TLS together (`Timeouts::connect`
/// covers both); the TCP connector's own limit only covers the TCP part.
#[derive(Clone)]
struct TimedConnector {
    inner: HttpsConnector<HttpConnector>,
    limit: Duration,
}

/// The connect limit passed.
#[derive(Debug)]
struct ConnectTimeout;

impl std::fmt::Display for ConnectTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connect timed out")
    }
}

impl std::error::Error for ConnectTimeout {}

impl tower_service::Service<Uri> for TimedConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connect).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(ConnectTimeout) as BoxError),
            }
        })
    }
}

impl Answer {
    /// Reads the whole body within the attempt's total limit.
    pub(crate) async fn bytes(self) -> Result<Bytes, ProviderError> {
        let body = crate::body::collect(self.response.into_body());
        match tokio::time::timeout_at(self.deadline, body).await {
            Err(_) => Err(ProviderError::Timeout(TimeoutKind::Total)),
            Ok(Err(e)) => Err(map_body_error(&e)),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

fn insert_optional(headers: &mut HeaderMap, name: HeaderName, value: Option<&str>) {
    // A value that is not a valid header (a client-supplied traceparent with a newline) is not
    // worth failing the call over: it is only correlation.
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}

/// Builds [`ProviderError::Status`] from a non-success answer: the provider's own message
/// (summarised, secrets redacted) and the wait it asked for.
async fn status_error(
    response: Response<UpstreamBody>,
    deadline: Instant,
    error_message: ErrorMessageFn,
    secret: Option<&str>,
) -> ProviderError {
    let status = response.status();
    let retry_after = retry_after(response.headers(), SystemTime::now());
    let body =
        tokio::time::timeout_at(deadline, read_limited(response.into_body(), MAX_ERROR_BODY))
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
async fn read_limited(mut body: UpstreamBody, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
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
fn map_send_error(err: &hyper_util::client::legacy::Error) -> ProviderError {
    if err.is_connect() {
        if is_timeout(err) {
            return ProviderError::Timeout(TimeoutKind::Connect);
        }
        return ProviderError::Connect(describe(err));
    }
    if is_timeout(err) {
        return ProviderError::Timeout(TimeoutKind::FirstByte);
    }
    // The connection broke while the request was written or before the headers came.
    ProviderError::Closed(describe(err))
}

/// Maps a failure while reading a success body.
pub(crate) fn map_body_error(err: &hyper::Error) -> ProviderError {
    if is_timeout(err) {
        return ProviderError::Timeout(TimeoutKind::Total);
    }
    ProviderError::Closed(describe(err))
}

/// Whether a timer (ours on connect, hyper's, or the OS's) ended the attempt.
fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.is::<ConnectTimeout>() {
            return true;
        }
        if let Some(e) = err.downcast_ref::<hyper::Error>() {
            if e.is_timeout() {
                return true;
            }
        }
        if let Some(e) = err.downcast_ref::<std::io::Error>() {
            if e.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        source = err.source();
    }
    false
}

/// The error and its causes on one line ("client error (Connect): tcp connect error: Connection
/// refused"). Transport errors carry no headers, bodies or URLs, so no secret can leak.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
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

/// Parses an endpoint URI built from validated (normalised) settings and a model name. The base
/// URL was checked when the provider was built, so a failure here means the model (deployment)
/// name made the URI invalid: the client's request names it, so it is reported as such.
pub(crate) fn endpoint(uri: String) -> Result<Uri, ProviderError> {
    Uri::try_from(uri).map_err(|_| ProviderError::Unsupported {
        param: Some("model".into()),
        message: "the model name does not form a valid provider URL".into(),
    })
}
