//! Keep-alive HTTP/1.1 connections to plain-HTTP upstreams (`http://` base URLs: vLLM, Ollama,
//! llama.cpp, LM Studio and the benchmark's mock on the same host or network), built on hyper's
//! connection API directly.
//!
//! hyper-util's pooled client, which serves `https://` providers (TLS, HTTP/2 through ALPN),
//! pays per request for what a plain HTTP/1.1 upstream never needs: a pool key hashed and
//! compared, a checkout future racing a lazy connect future, and a spawned task that waits for
//! the connection to be ready again before putting it back (~9k instructions a request,
//! callgrind). Here a connection is taken from a short list per upstream, and handed back by
//! the response body itself when it has been read to the end ([`UpstreamBody`]); a body dropped
//! before its end drops its connection, which is how an abandoned answer stops the upstream.
//!
//! Idle connections are taken newest first and not reused once idle for [`POOL_IDLE`]: expired
//! ones are dropped (closed) when the pool next takes or returns a connection to the same
//! upstream, and a connection the server closed is dropped as soon as it is seen.

use super::{POOL_IDLE, TCP_KEEPALIVE};
use crate::{ProviderError, TimeoutKind};
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower_service::Service as _;

/// Idle connections kept per upstream; more than the gateway ever has in flight to one server
/// in practice, and a bound on what a burst leaves open.
const MAX_IDLE_PER_UPSTREAM: usize = 1024;

type Sender = SendRequest<Full<Bytes>>;

/// The idle connections of every plain-HTTP upstream. A list, not a map: a config names a
/// handful of upstreams, and comparing a few authorities is cheaper than hashing one.
#[derive(Default)]
pub(crate) struct PlainPool {
    upstreams: Mutex<Vec<Upstream>>,
}

struct Upstream {
    authority: Authority,
    /// Oldest at the front, newest at the back (taken first: the warmest connection).
    idle: VecDeque<Idle>,
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// A connection lent to one request; back to the pool when its response body has ended.
pub(crate) struct Lease {
    pool: Arc<PlainPool>,
    authority: Authority,
    sender: Sender,
}

impl PlainPool {
    /// Sends `request` (an absolute `http://` URI) on an idle connection to its upstream, or on
    /// a new one made within `connect`. A pooled connection the server closed meanwhile is
    /// skipped; if it was closed while the request was handed to it, before any byte was
    /// written, the request goes on a new connection.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<Full<Bytes>>,
        connect: Duration,
    ) -> Result<Response<UpstreamBody>, ProviderError> {
        let authority = request
            .uri()
            .authority()
            .cloned()
            .ok_or_else(|| ProviderError::Connect("the provider URL has no host".into()))?;
        *request.uri_mut() = origin_form(request.uri());
        loop {
            let (mut sender, pooled) = match self.take(&authority).await {
                Some(sender) => (sender, true),
                None => (open(&authority, connect).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        pool: Arc::clone(self),
                        authority,
                        sender,
                    };
                    return Ok(response.map(|body| UpstreamBody::leased(body, lease)));
                }
                Err(mut failed) => match failed.take_message() {
                    // Nothing was written: the connection was gone before it took the request.
                    Some(unsent) if pooled => request = unsent,
                    _ => return Err(send_error(&failed.into_error())),
                },
            }
        }
    }

    /// The newest idle connection to `authority` that is still open and ready for a request.
    async fn take(&self, authority: &Authority) -> Option<Sender> {
        loop {
            let mut sender = {
                let mut upstreams = self.upstreams.lock();
                let upstream = upstreams.iter_mut().find(|u| u.authority == *authority)?;
                let newest = upstream.idle.pop_back()?;
                if newest.since.elapsed() >= POOL_IDLE {
                    // The newest has idled too long: so have all the others.
                    upstream.idle.clear();
                    return None;
                }
                newest.sender
            };
            if sender.is_closed() {
                continue;
            }
            // A connection comes back when its last body ended; hyper marks it ready on its next
            // turn, usually already past.
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    fn put(&self, authority: Authority, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut upstreams = self.upstreams.lock();
        let i = match upstreams.iter().position(|u| u.authority == authority) {
            Some(i) => i,
            None => {
                upstreams.push(Upstream {
                    authority,
                    idle: VecDeque::new(),
                });
                upstreams.len() - 1
            }
        };
        let upstream = &mut upstreams[i];
        while upstream
            .idle
            .front()
            .is_some_and(|c| now.duration_since(c.since) >= POOL_IDLE || c.sender.is_closed())
        {
            upstream.idle.pop_front();
        }
        if upstream.idle.len() < MAX_IDLE_PER_UPSTREAM {
            upstream.idle.push_back(Idle { sender, since: now });
        }
    }

    /// Idle connections kept for `authority` that the server has not closed (tests).
    #[cfg(test)]
    pub(crate) fn idle(&self, authority: &str) -> usize {
        self.upstreams
            .lock()
            .iter()
            .find(|u| u.authority == authority)
            .map_or(0, |u| {
                u.idle.iter().filter(|c| !c.sender.is_closed()).count()
            })
    }
}

/// A new connection: TCP within `limit` (hyper-util's connector: the resolver off the runtime,
/// IPv6 and IPv4 tried the happy-eyeballs way), TCP_NODELAY and keepalive as for every
/// upstream, and hyper's HTTP/1.1 client on it, driven by a task of its own until either side
/// closes it.
async fn open(authority: &Authority, limit: Duration) -> Result<Sender, ProviderError> {
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| ProviderError::Connect(format!("invalid provider address: {e}")))?;
    let mut connector = HttpConnector::new();
    // Nagle's algorithm meeting delayed ACKs stalls small request writes by ~40 ms.
    connector.set_nodelay(true);
    connector.set_keepalive(Some(TCP_KEEPALIVE));
    connector.set_connect_timeout(Some(limit));
    // The connector's own limit covers each TCP attempt; this one name resolution too.
    let io = match tokio::time::timeout(limit, connector.call(uri)).await {
        Err(_) => return Err(ProviderError::Timeout(TimeoutKind::Connect)),
        Ok(Err(e)) => return Err(connect_error(&e)),
        Ok(Ok(io)) => io,
    };
    let (sender, connection) = http1::handshake(io).await.map_err(|e| connect_error(&e))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "Upstream connection ended with an error.");
        }
    });
    Ok(sender)
}

/// `/path?query` of an absolute URI: what an HTTP/1.1 request line carries to an origin server.
fn origin_form(uri: &Uri) -> Uri {
    let path = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(path)
}

fn connect_error(err: &(dyn std::error::Error + 'static)) -> ProviderError {
    if super::is_timeout(err) {
        return ProviderError::Timeout(TimeoutKind::Connect);
    }
    ProviderError::Connect(super::describe(err))
}

/// A failure after the connection was made: the connection broke while the request was written
/// or before the response headers came.
fn send_error(err: &hyper::Error) -> ProviderError {
    if err.is_timeout() {
        return ProviderError::Timeout(TimeoutKind::FirstByte);
    }
    ProviderError::Closed(super::describe(err))
}

/// A response body from an upstream. One from a [`PlainPool`] connection gives the connection
/// back when the body has been read to its end.
pub(crate) struct UpstreamBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl UpstreamBody {
    /// A body whose connection is not ours to give back (hyper-util's client pools it).
    pub(crate) fn unpooled(inner: Incoming) -> UpstreamBody {
        UpstreamBody { inner, lease: None }
    }

    fn leased(inner: Incoming, lease: Lease) -> UpstreamBody {
        UpstreamBody {
            inner,
            lease: Some(lease),
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            if let Some(lease) = this.lease.take() {
                lease.pool.put(lease.authority, lease.sender);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.lease.is_some())
            .finish()
    }
}
