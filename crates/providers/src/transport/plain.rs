//! Plain-HTTP (`http://`) upstreams: a small HTTP/1.1 client that runs inside the request's own
//! task, over a pool of idle connections per origin.
//!
//! Why not hyper's client here: a model server next to the gateway (vLLM, Ollama, llama.cpp,
//! another gateway, the benchmark's mock) makes the upstream hop the gateway's hot path, and
//! hyper's client spends most of its per-request CPU on things this case does not need: a
//! separate connection task that the request must wake and be woken by (a request channel, a
//! response oneshot, a body channel), a full header map for every response, and in hyper-util's
//! pooled client SipHash lookups of the pool, a checkout-versus-connect race and a `Host`
//! header formatted per request. That was about a quarter of the gateway's instructions per
//! request. Without TLS there is no ALPN, so these upstreams only ever speak HTTP/1.1 with us,
//! whose client side is small: write one request, read one response head, frame the body by
//! `content-length`, chunked coding or connection close. HTTPS upstreams (TLS, HTTP/2 by ALPN)
//! stay on hyper-util's client.
//!
//! What it keeps from hyper-util's client:
//! - connections are reused, most recently used first (the warmest socket, and a pool that
//!   shrinks back to what the load needs);
//! - a connection the server closed while idle is not used: the runtime's readiness flag for
//!   the socket (set by the reactor, no system call) reveals the end of stream or unexpected
//!   bytes; a request whose write fails on a reused connection (the server closed it at that
//!   very moment) is sent again on a new one; after the write, no retry: the server may have
//!   acted on it, and the router decides;
//! - idle connections are dropped after `POOL_IDLE`, checked when the pool is used (no timer
//!   per connection);
//! - a connection goes back to the pool only once its response body was read to the end and
//!   the response allowed it (HTTP/1.1 without `connection: close`, a framed body, nothing
//!   after it); a body dropped half-way (client gone, timeout) closes it, which is also how an
//!   abandoned stream cancels the upstream generation;
//! - connect: hyper-util's `HttpConnector` (TCP_NODELAY, keepalive, the system resolver,
//!   happy eyeballs) under the attempt's connect limit;
//! - `Host` from the URI unless the provider's headers set one; the request line carries the
//!   path and query only; `content-length` from the body.
//!
//! One difference: the whole request is written before the answer is read, so a server that
//! answers early and closes without reading the rest (a 413 to a huge body) is seen as a
//! closed connection rather than as its status (hyper reads while it writes).
//!
//! Response headers are only turned into a header map for non-success statuses (whose error
//! handling reads `retry-after`): nothing reads a success answer's headers, and building the
//! map was a measurable share of a request.

use super::{
    describe, is_timeout, summarise, BoxError, ConnectTimeout, FixedHeaders, POOL_IDLE,
    TCP_KEEPALIVE,
};
use crate::{ProviderError, TimeoutKind};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, HOST};
use http::uri::Authority;
use http::{StatusCode, Uri};
use hyper::body::{Frame, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

/// Most response-head bytes read before giving up on a server.
const MAX_HEAD: usize = 64 * 1024;
/// Most headers in a response head (hyper's default too).
const MAX_HEADERS: usize = 100;
/// Most bytes of a chunk-size line (the size and any extensions) or of the trailers.
const MAX_CHUNK_LINE: usize = 4 * 1024;
const MAX_TRAILERS: usize = 64 * 1024;
/// Read buffer: room kept free before each read.
const READ_RESERVE: usize = 8 * 1024;
/// Request bodies up to this size are copied after the head to go out in one write; larger
/// ones are written from where they are, with the head, as two slices.
const COPY_BODY_MAX: usize = 16 * 1024;

/// The plain-HTTP pools, one per origin (`host:port`).
#[derive(Default)]
pub(super) struct Pools {
    /// A handful of origins in practice (one per local inference server), so a scan of short
    /// strings beats hashing the authority on every request.
    origins: RwLock<Vec<Arc<Origin>>>,
}

/// One origin's idle connections.
struct Origin {
    authority: Authority,
    /// `Host` as hyper-util's client writes it: the authority without user info.
    host: HeaderValue,
    /// Idle connections, oldest first; checkout takes the newest.
    idle: Mutex<VecDeque<Idle>>,
}

struct Idle {
    conn: Conn,
    /// When the connection became idle.
    since: Instant,
}

/// One connection and what was read from it but not consumed yet.
struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

/// The parts of the request the client writes.
pub(super) struct Outgoing<'a> {
    pub uri: &'a Uri,
    /// The provider's fixed headers.
    pub headers: &'a FixedHeaders,
    /// Per-request headers, written when their value is a valid header value; they replace a
    /// fixed header of the same name.
    pub extra: [(HeaderName, Option<&'a str>); 2],
    pub body: &'a [u8],
}

/// A response head and its body.
pub(super) struct Incoming {
    pub status: StatusCode,
    /// Empty for success statuses (see the module docs).
    pub headers: HeaderMap,
    pub body: PlainBody,
}

impl Pools {
    /// How many origins have a pool.
    pub(super) fn len(&self) -> usize {
        self.origins.read().len()
    }

    /// Sends one request on an idle connection to its origin, or on a new one, and reads the
    /// response head. `now` is the attempt's start.
    pub(super) async fn send(
        &self,
        out: &Outgoing<'_>,
        connect: Duration,
        now: Instant,
    ) -> Result<Incoming, ProviderError> {
        let Some(origin) = self.origin(out.uri) else {
            return Err(ProviderError::Connect("the URL has no host".into()));
        };
        let (head, body) = encode(out, &origin.host);
        loop {
            let (mut conn, reused) = match origin.checkout(now) {
                Some(conn) => (conn, true),
                None => (connect_to(out.uri, connect).await?, false),
            };
            if let Err(err) = conn.write(&head, body).await {
                if reused {
                    // The server closed the pooled connection just now: nothing was answered,
                    // another connection (a new one at worst) takes the request.
                    continue;
                }
                return Err(ProviderError::Closed(describe(&err)));
            }
            return read_head(conn, origin).await;
        }
    }

    /// The pool of the URI's origin, created on first use.
    fn origin(&self, uri: &Uri) -> Option<Arc<Origin>> {
        let authority = uri.authority()?;
        let found = self
            .origins
            .read()
            .iter()
            .find(|o| o.authority.as_str() == authority.as_str())
            .cloned();
        if found.is_some() {
            return found;
        }
        let host = match authority.port() {
            Some(port) => format!("{}:{}", authority.host(), port.as_str()),
            None => authority.host().to_owned(),
        };
        let origin = Arc::new(Origin {
            authority: authority.clone(),
            host: HeaderValue::from_str(&host).ok()?,
            idle: Mutex::new(VecDeque::new()),
        });
        let mut origins = self.origins.write();
        // Two tasks may race to create the same origin; the first one stored wins.
        if let Some(existing) = origins
            .iter()
            .find(|o| o.authority.as_str() == authority.as_str())
        {
            return Some(Arc::clone(existing));
        }
        origins.push(Arc::clone(&origin));
        Some(origin)
    }
}

impl Origin {
    /// The most recently used connection that is alive and not idle for too long. Others met
    /// on the way are dropped, which closes them.
    fn checkout(&self, now: Instant) -> Option<Conn> {
        let mut idle = self.idle.lock();
        while let Some(entry) = idle.pop_back() {
            if now.saturating_duration_since(entry.since) < POOL_IDLE && entry.conn.idle_alive() {
                return Some(entry.conn);
            }
        }
        None
    }

    fn put(&self, conn: Conn) {
        let since = Instant::now();
        let mut idle = self.idle.lock();
        // The oldest connections sit at the front: drop those idle for too long, so that a
        // pool that shrank after a burst does not keep sockets open for ever.
        while idle
            .front()
            .is_some_and(|oldest| since.saturating_duration_since(oldest.since) >= POOL_IDLE)
        {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since });
    }
}

/// Whether a header value can be written as is (what `HeaderValue::from_str` accepts).
fn valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Headers that say how the body is framed: the client writes its own.
fn is_framing(name: &HeaderName) -> bool {
    name == CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING
}

/// A provider's fixed headers as HTTP/1.1 header lines, written once when the provider is built.
pub(super) fn header_lines(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if !is_framing(name) {
            header_line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out
}

/// The request head, with the body appended when it is small (one write); otherwise the body
/// is returned to be written after the head.
fn encode<'a>(out: &Outgoing<'a>, host: &HeaderValue) -> (Vec<u8>, &'a [u8]) {
    let path = out.uri.path_and_query().map_or("/", |p| p.as_str());
    let copied = out.body.len() <= COPY_BODY_MAX;
    let mut head = Vec::with_capacity(256 + if copied { out.body.len() } else { 0 });
    head.extend_from_slice(b"POST ");
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let fixed = out.headers.map();
    if !fixed.contains_key(HOST) {
        header_line(&mut head, b"host", host.as_bytes());
    }
    match &out.headers.h1 {
        Some(lines) => head.extend_from_slice(lines),
        None => {
            for (name, value) in fixed {
                // Per-request headers replace fixed ones.
                if !is_framing(name) && !out.extra.iter().any(|(extra, _)| extra == name) {
                    header_line(&mut head, name.as_str().as_bytes(), value.as_bytes());
                }
            }
        }
    }
    for (name, value) in &out.extra {
        // A value that is not a valid header (a client-supplied traceparent with a newline) is
        // not worth failing the call over: it is only correlation.
        if let Some(value) = value.filter(|v| !v.is_empty() && valid_value(v)) {
            header_line(&mut head, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    let mut digits = [0u8; 20];
    header_line(
        &mut head,
        b"content-length",
        decimal(out.body.len(), &mut digits),
    );
    head.extend_from_slice(b"\r\n");
    if copied {
        head.extend_from_slice(out.body);
        (head, &[])
    } else {
        (head, out.body)
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `n` as decimal digits, written at the end of `out` (no allocation: this runs per request).
fn decimal(mut n: usize, out: &mut [u8; 20]) -> &[u8] {
    let mut start = out.len();
    loop {
        start -= 1;
        // n % 10 < 10 always fits a u8.
        out[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[start..];
        }
    }
}

impl Conn {
    /// Writes the head and then the body (when not already appended to the head).
    async fn write(&mut self, head: &[u8], body: &[u8]) -> std::io::Result<()> {
        if body.is_empty() {
            return self.io.write_all(head).await;
        }
        let (mut head, mut body) = (head, body);
        while !head.is_empty() {
            let n = self
                .io
                .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            let from_head = n.min(head.len());
            head = &head[from_head..];
            body = &body[n - from_head..];
        }
        self.io.write_all(body).await
    }

    /// Reads what the socket has into the buffer: the count, 0 at the end of stream.
    ///
    /// Through `AsyncRead` rather than `try_read`: tokio then waits for readiness before the
    /// system call (no read that can only fail with `WouldBlock` right after a request was
    /// written), and clears the readiness itself after a read that did not fill the buffer
    /// (the socket is drained), so that the next checkout's liveness check needs no system
    /// call either. `try_read` did both with an extra `recvfrom` per request.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_RESERVE / 2 {
            self.buf.reserve(READ_RESERVE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    async fn read(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx)).await
    }

    /// Whether an idle connection can take a request: nothing arrived on it since its last
    /// response (neither the end of stream nor stray bytes). The runtime's readiness flag
    /// answers without a system call in the usual case; a set flag is confirmed with a read.
    fn idle_alive(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readable: the end of stream, stray bytes, or a stale flag (the read clears it).
            Poll::Ready(Ok(())) => matches!(
                self.io.try_read(&mut [0u8; 1]),
                Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock
            ),
        }
    }
}

/// Reads the response head (skipping interim 1xx answers) and frames its body.
async fn read_head(mut conn: Conn, origin: Arc<Origin>) -> Result<Incoming, ProviderError> {
    loop {
        // A fresh request starts with nothing read yet: no parse to try.
        let parsed = if conn.buf.is_empty() {
            None
        } else {
            parse_head(&conn.buf)?
        };
        if let Some(parsed) = parsed {
            conn.buf.advance(parsed.len);
            if parsed.status.is_informational() {
                if parsed.status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(invalid("an unexpected 101 Switching Protocols"));
                }
                continue;
            }
            let framing = if parsed.status == StatusCode::NO_CONTENT
                || parsed.status == StatusCode::NOT_MODIFIED
            {
                Framing::Length(0)
            } else {
                parsed.framing
            };
            let reusable = parsed.keep_alive && !matches!(framing, Framing::UntilClose);
            let mut body = PlainBody {
                conn: Some(conn),
                origin,
                framing,
                reusable,
            };
            body.finish_if_empty();
            return Ok(Incoming {
                status: parsed.status,
                headers: parsed.headers,
                body,
            });
        }
        if conn.buf.len() >= MAX_HEAD {
            return Err(invalid("a response head over 64 KiB"));
        }
        match conn.read().await {
            Ok(0) => {
                return Err(ProviderError::Closed(
                    "the connection closed before a response".into(),
                ))
            }
            Ok(_) => {}
            Err(err) => return Err(map_io_error(&err)),
        }
    }
}

fn invalid(what: &str) -> ProviderError {
    ProviderError::Closed(format!("invalid HTTP response from the provider: {what}"))
}

fn map_io_error(err: &std::io::Error) -> ProviderError {
    if is_timeout(err) {
        return ProviderError::Timeout(TimeoutKind::FirstByte);
    }
    ProviderError::Closed(summarise(&format!("connection error: {err}"), None))
}

/// A complete response head.
struct Parsed {
    len: usize,
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Parses a response head if the buffer holds a whole one.
fn parse_head(buf: &[u8]) -> Result<Option<Parsed>, ProviderError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&e.to_string())),
    };
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid("a bad status code"))?;
    let http11 = response.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut encoded = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut headers = HeaderMap::new();
    let keep_headers = !status.is_success();
    for header in response.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| invalid("a bad content-length"))?;
            // Repeated lengths must agree (RFC 9112, 6.3).
            if length.is_some_and(|l| l != value) {
                return Err(invalid("conflicting content-lengths"));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encoded = true;
            // Chunked must be the last coding for the body to be framed by it.
            chunked = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        if keep_headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_bytes(header.value),
            ) {
                headers.append(name, value);
            }
        }
    }
    // Transfer-Encoding wins over Content-Length; a coding other than chunked last means the
    // body runs to the connection's close (RFC 9112, 6.3).
    let framing = if encoded {
        if chunked {
            Framing::Chunked(Chunked::Size)
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let keep_alive = !close && (http11 || keep_alive_token) && !(encoded && length.is_some());
    if keep_headers {
        // Connection-level headers describe this hop only.
        headers.remove(CONNECTION);
    }
    Ok(Some(Parsed {
        len,
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// How the body's end is known.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `content-length`: the bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// No framing: the body ends when the server closes the connection (not reusable).
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy)]
enum Chunked {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data: the bytes still to come.
    Data(u64),
    /// After a chunk's data: expecting its line end.
    DataEnd,
    /// After the last (zero) chunk: trailer lines until an empty one; bytes of trailers so far.
    Trailers(usize),
}

/// Why a plain-HTTP body could not be read.
#[derive(Debug)]
pub(crate) enum PlainBodyError {
    Io(std::io::Error),
    /// The connection closed before the body's end.
    Truncated,
    /// The chunked coding was broken.
    Invalid(&'static str),
}

impl std::fmt::Display for PlainBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlainBodyError::Io(e) => write!(f, "connection error: {e}"),
            PlainBodyError::Truncated => f.write_str("the connection closed before the body's end"),
            PlainBodyError::Invalid(what) => write!(f, "invalid chunked body: {what}"),
        }
    }
}

impl std::error::Error for PlainBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PlainBodyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A response body read from its connection, which goes back to the pool at the body's end
/// (when the response allows it).
pub(crate) struct PlainBody {
    /// `None` once the body ended or failed.
    conn: Option<Conn>,
    origin: Arc<Origin>,
    framing: Framing,
    reusable: bool,
}

impl std::fmt::Debug for PlainBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainBody")
            .field("origin", &self.origin.authority)
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl PlainBody {
    /// The body is over: hand the connection back when it can serve another request.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.buf.is_empty() {
                self.origin.put(conn);
            }
        }
    }

    fn finish_if_empty(&mut self) {
        if matches!(self.framing, Framing::Length(0)) {
            self.finish();
        }
    }

    fn fail(&mut self, err: PlainBodyError) -> Poll<Option<Result<Frame<Bytes>, PlainBodyError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(err)))
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match (self.conn.as_ref(), self.framing) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Framing::Length(n)) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }

    /// The next piece of the body: data as soon as some arrived, `None` at its end.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, PlainBodyError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.framing {
                Framing::Length(0) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(remaining) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(remaining)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(n).freeze();
                        // usize -> u64 is lossless on every supported target.
                        let left = remaining - n as u64;
                        self.framing = Framing::Length(left);
                        if left == 0 {
                            // Back to the pool before the caller even asks for the end.
                            self.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(state) => match decode_chunked(&mut conn.buf, state) {
                    Ok(Step::Data(data, next)) => {
                        self.framing = Framing::Chunked(next);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Step::Moved(next)) => {
                        self.framing = Framing::Chunked(next);
                        continue;
                    }
                    Ok(Step::End) => {
                        self.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore(next)) => self.framing = Framing::Chunked(next),
                    Err(what) => return self.fail(PlainBodyError::Invalid(what)),
                },
            }
            // The buffer holds nothing more of the body: read.
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match conn.poll_read(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    if matches!(self.framing, Framing::UntilClose) {
                        self.conn = None;
                        return Poll::Ready(None);
                    }
                    return self.fail(PlainBodyError::Truncated);
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return self.fail(PlainBodyError::Io(e)),
            }
        }
    }
}

/// What one step of the chunked decoder did.
enum Step {
    /// Some chunk data, and the state after it.
    Data(Bytes, Chunked),
    /// Consumed a line; go on from this state.
    Moved(Chunked),
    /// The buffer ends before the next piece: read more, then go on from this state.
    NeedMore(Chunked),
    /// The last chunk and the trailers were read.
    End,
}

/// The next line in `buf` (without its line end: CRLF, or a bare LF as hyper also accepts),
/// consuming it; `None` when no whole line is there yet.
fn take_line(buf: &mut BytesMut) -> Option<BytesMut> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let mut line = buf.split_to(end + 1);
    line.truncate(end);
    if line.last() == Some(&b'\r') {
        line.truncate(end - 1);
    }
    Some(line)
}

fn decode_chunked(buf: &mut BytesMut, state: Chunked) -> Result<Step, &'static str> {
    match state {
        Chunked::Size => {
            let Some(line) = take_line(buf) else {
                if buf.len() > MAX_CHUNK_LINE {
                    return Err("a chunk-size line too long");
                }
                return Ok(Step::NeedMore(state));
            };
            // The size, then optional whitespace and `;extensions`, which are ignored.
            let digits = line[..]
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            if digits.is_empty() || digits.len() > 16 {
                return Err("a bad chunk size");
            }
            let mut size: u64 = 0;
            for &d in digits {
                let value = char::from(d).to_digit(16).ok_or("a bad chunk size")?;
                size = (size << 4) | u64::from(value);
            }
            if size == 0 {
                Ok(Step::Moved(Chunked::Trailers(0)))
            } else {
                Ok(Step::Moved(Chunked::Data(size)))
            }
        }
        Chunked::Data(remaining) => {
            if buf.is_empty() {
                return Ok(Step::NeedMore(state));
            }
            let n = usize::try_from(remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let data = buf.split_to(n).freeze();
            let left = remaining - n as u64;
            let next = if left == 0 {
                Chunked::DataEnd
            } else {
                Chunked::Data(left)
            };
            Ok(Step::Data(data, next))
        }
        Chunked::DataEnd => match take_line(buf) {
            Some(line) if line.is_empty() => Ok(Step::Moved(Chunked::Size)),
            Some(_) => Err("chunk data longer than its size"),
            None if buf.len() >= 2 => Err("chunk data longer than its size"),
            None => Ok(Step::NeedMore(state)),
        },
        Chunked::Trailers(seen) => match take_line(buf) {
            Some(line) if line.is_empty() => Ok(Step::End),
            Some(line) => {
                let seen = seen + line.len() + 2;
                if seen > MAX_TRAILERS {
                    return Err("trailers too long");
                }
                Ok(Step::Moved(Chunked::Trailers(seen)))
            }
            None if seen + buf.len() > MAX_TRAILERS => Err("trailers too long"),
            None => Ok(Step::NeedMore(state)),
        },
    }
}

/// A new connection to the URI's origin.
async fn connect_to(uri: &Uri, limit: Duration) -> Result<Conn, ProviderError> {
    let mut http = HttpConnector::new();
    // Nagle's algorithm meeting delayed ACKs stalls small request writes by ~40 ms.
    http.set_nodelay(true);
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_connect_timeout(Some(limit));
    let connecting = async {
        std::future::poll_fn(|cx| http.poll_ready(cx))
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
        http.call(uri.clone())
            .await
            .map_err(|e| Box::new(e) as BoxError)
    };
    let io = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(io)) => io.into_inner(),
        Ok(Err(err)) => return Err(map_connect_error(&*err)),
        Err(_) => return Err(map_connect_error(&ConnectTimeout)),
    };
    Ok(Conn {
        io,
        buf: BytesMut::with_capacity(READ_RESERVE),
    })
}

fn map_connect_error(err: &(dyn std::error::Error + 'static)) -> ProviderError {
    if is_timeout(err) {
        return ProviderError::Timeout(TimeoutKind::Connect);
    }
    ProviderError::Connect(describe(err))
}

#[cfg(test)]
impl Pools {
    /// Idle connections of the URI's origin.
    pub(super) fn idle_count(&self, uri: &Uri) -> usize {
        self.origin(uri).map_or(0, |o| o.idle.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(wire: &[u8], splits: &[usize]) -> Result<Vec<u8>, &'static str> {
        let mut buf = BytesMut::new();
        let mut state = Chunked::Size;
        let mut out = Vec::new();
        let mut fed = 0;
        let mut cuts = splits.to_vec();
        cuts.push(wire.len());
        for cut in cuts {
            buf.extend_from_slice(&wire[fed..cut]);
            fed = cut;
            loop {
                match decode_chunked(&mut buf, state)? {
                    Step::Data(data, next) => {
                        out.extend_from_slice(&data);
                        state = next;
                    }
                    Step::Moved(next) => state = next,
                    Step::NeedMore(next) => {
                        state = next;
                        break;
                    }
                    Step::End => {
                        assert!(buf.is_empty());
                        return Ok(out);
                    }
                }
            }
        }
        Err("incomplete")
    }

    #[test]
    fn chunked_bodies_decode_at_any_split() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\nA \r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for a in 0..wire.len() {
            for b in a..wire.len() {
                assert_eq!(
                    decode_all(wire, &[a, b]).unwrap(),
                    b"hello 0123456789",
                    "{a} {b}"
                );
            }
        }
        assert_eq!(decode_all(b"3\nabc\n0\n\n", &[]).unwrap(), b"abc");
    }

    #[test]
    fn broken_chunked_bodies_are_refused() {
        assert!(decode_all(b"zz\r\n", &[]).is_err());
        assert!(decode_all(b"\r\n", &[]).is_err());
        assert!(decode_all(b"3\r\nabcd\r\n0\r\n\r\n", &[]).is_err());
        assert!(decode_all(b"11111111111111111\r\n", &[]).is_err());
        assert_eq!(decode_all(b"3\r\nab", &[]), Err("incomplete"));
    }

    #[test]
    fn heads_are_framed_as_rfc_9112_says() {
        let frame = |head: &str| {
            let parsed = parse_head(head.as_bytes()).unwrap().unwrap();
            (format!("{:?}", parsed.framing), parsed.keep_alive)
        };
        assert_eq!(
            frame("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            ("Length(5)".into(), true)
        );
        assert_eq!(
            frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            ("Chunked(Size)".into(), true)
        );
        assert_eq!(
            frame("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"),
            ("Chunked(Size)".into(), false)
        );
        assert_eq!(
            frame("HTTP/1.1 200 OK\r\n\r\n"),
            ("UntilClose".into(), true)
        );
        assert_eq!(
            frame("HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 0\r\n\r\n"),
            ("Length(0)".into(), false)
        );
        assert_eq!(
            frame("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"),
            ("Length(0)".into(), false)
        );
        assert_eq!(
            frame("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n"),
            ("Length(0)".into(), true)
        );
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n")
                .is_err()
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
            .unwrap()
            .is_none());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn only_error_heads_keep_their_headers() {
        let ok = parse_head(b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(ok.headers.is_empty());
        let limited = parse_head(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(limited.headers["retry-after"], "7");
        assert!(!limited.headers.contains_key("connection"));
    }

    #[test]
    fn request_heads_carry_host_path_and_length() {
        let uri: Uri = "http://example.test:8080/v1/chat/completions?x=1"
            .parse()
            .unwrap();
        let extra = [
            (HeaderName::from_static("x-request-id"), Some("req-1")),
            (HeaderName::from_static("traceparent"), Some("bad\r\nvalue")),
        ];
        let host = HeaderValue::from_static("example.test:8080");
        // Fixed lines written once, or merged per request when a fixed header is also a
        // per-request one: the same head either way, per-request values winning.
        let mut plain = HeaderMap::new();
        plain.insert("authorization", HeaderValue::from_static("Bearer k"));
        plain.insert("content-length", HeaderValue::from_static("999"));
        let mut clashing = plain.clone();
        clashing.insert("x-request-id", HeaderValue::from_static("fixed"));
        for headers in [FixedHeaders::new(plain), FixedHeaders::new(clashing)] {
            let out = Outgoing {
                uri: &uri,
                headers: &headers,
                extra: extra.clone(),
                body: b"{}",
            };
            let (head, rest) = encode(&out, &host);
            assert!(rest.is_empty());
            assert_eq!(
                String::from_utf8(head).unwrap(),
                "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: example.test:8080\r\n\
                 authorization: Bearer k\r\nx-request-id: req-1\r\ncontent-length: 2\r\n\r\n{}"
            );
        }
        let headers = FixedHeaders::new(HeaderMap::new());
        let big = vec![b'x'; COPY_BODY_MAX + 1];
        let out = Outgoing {
            uri: &uri,
            headers: &headers,
            extra,
            body: &big,
        };
        let (head, rest) = encode(&out, &host);
        assert!(head.ends_with(format!("content-length: {}\r\n\r\n", big.len()).as_bytes()));
        assert_eq!(rest.len(), big.len());
    }

    #[test]
    fn fixed_header_lines_stay_out_of_debug_output() {
        let mut map = HeaderMap::new();
        let mut secret = HeaderValue::from_static("Bearer sk-very-secret");
        secret.set_sensitive(true);
        map.insert("authorization", secret);
        let fixed = FixedHeaders::new(map);
        assert!(!format!("{fixed:?}").contains("sk-very-secret"));
    }
}
