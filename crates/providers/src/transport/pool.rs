//! The connection pool of plain-HTTP (`http://`) upstreams: per origin, a stack of idle hyper
//! HTTP/1.1 connections, checked out and back in under a short mutex.
//!
//! Why not hyper-util's pooled client here: per request it hashes the pool key with SipHash
//! twice (checkout and check-in), races a checkout against a lazy connect future, formats the
//! `Host` header, and spawns or polls a task to learn when the connection is free again. That
//! was about 15k of the gateway's ~80k instructions per request. Plain-HTTP upstreams
//! (vLLM, Ollama, llama.cpp, a gateway on the same host, the benchmark's mock) only ever speak
//! HTTP/1.1 to us (no ALPN without TLS), so a pool of hyper's own `http1::SendRequest` handles
//! keeps the same HTTP implementation with far less around it. HTTPS upstreams (TLS, HTTP/2 by
//! ALPN) stay on hyper-util's client.
//!
//! Behaviour kept from hyper-util's client:
//! - connections are reused (most recently used first, so that the pool shrinks back to what
//!   the load needs and the warmest socket is used);
//! - a dead connection is never handed out: the connection task ends when the server closes
//!   the socket, which `SendRequest::is_ready` sees; a request the connection refused before
//!   writing a byte (the server closed it at that very moment) is sent again on another one;
//! - idle connections are dropped after `POOL_IDLE` (checked when the pool is used, so there is
//!   no timer per connection);
//! - a connection goes back to the pool only once its response body was read to the end; a
//!   body dropped half-way (client gone, timeout) closes it, which is also how an abandoned
//!   stream cancels the upstream generation;
//! - connect: the same `HttpConnector` settings (TCP_NODELAY, keepalive, DNS through the
//!   system resolver) under the attempt's connect limit.

use super::{BoxError, ConnectTimeout, POOL_IDLE, TCP_KEEPALIVE};
use crate::ProviderError;
use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::{Mutex, RwLock};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower_service::Service;

type Sender = http1::SendRequest<Full<Bytes>>;

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
    sender: Sender,
    /// When the connection was last handed out (a little before it became idle: the attempt's
    /// start), so idle time is over- rather than under-estimated.
    since: Instant,
}

/// A connection in use by one request, to be handed back with [`Lease::release`] once the
/// response body has been read to its end.
pub(crate) struct Lease {
    origin: Arc<Origin>,
    sender: Sender,
    since: Instant,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("origin", &self.origin.authority)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Hands the connection back to its pool. Call only after the body was read to its end:
    /// a connection with an unread body is not reusable, and dropping the lease instead
    /// closes it.
    pub(crate) fn release(self) {
        let Lease {
            origin,
            sender,
            since,
        } = self;
        if sender.is_ready() {
            origin.put(sender, since);
        } else if !sender.is_closed() {
            // The connection task has not yet seen the end of the response (a body whose end
            // came in a later read): wait for it off the request's path.
            tokio::spawn(async move {
                let mut sender = sender;
                if sender.ready().await.is_ok() {
                    origin.put(sender, since);
                }
            });
        }
    }
}

impl Pools {
    /// How many origins have a pool.
    pub(super) fn len(&self) -> usize {
        self.origins.read().len()
    }

    /// Sends `request` (absolute URI, `http` scheme) on an idle connection to its origin, or on
    /// a new one. `now` is the attempt's start.
    pub(super) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
        connect: Duration,
        now: Instant,
    ) -> Result<(Response<Incoming>, Lease), ProviderError> {
        let Some(origin) = self.origin(request.uri()) else {
            return Err(ProviderError::Connect("the URL has no host".into()));
        };
        let target = request.uri().clone();
        // HTTP/1.1 requests carry the path in the request line and the origin in `Host`.
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(path);
        request.headers_mut().insert(HOST, origin.host.clone());
        loop {
            let (mut sender, reused) = match origin.checkout(now) {
                Some(sender) => (sender, true),
                None => (connect_to(&target, connect).await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        origin,
                        sender,
                        since: now,
                    };
                    return Ok((response, lease));
                }
                Err(mut err) => match err.take_message() {
                    // Not a byte was written: a pooled connection that the server closed just
                    // now. Another connection (a new one at worst) takes the request. A new
                    // connection that refuses is an error, so this loop ends.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(super::map_hyper_send_error(&err.into_error())),
                },
            }
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
    /// The most recently used connection that is free, alive and not idle for too long.
    /// Others met on the way are dropped, which closes them.
    fn checkout(&self, now: Instant) -> Option<Sender> {
        let mut idle = self.idle.lock();
        while let Some(entry) = idle.pop_back() {
            if entry.sender.is_ready() && now.saturating_duration_since(entry.since) < POOL_IDLE {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, sender: Sender, since: Instant) {
        let mut idle = self.idle.lock();
        // The oldest connections sit at the front: drop those idle for too long, so that a
        // pool that shrank after a burst does not keep sockets open for ever.
        while idle
            .front()
            .is_some_and(|oldest| since.saturating_duration_since(oldest.since) >= POOL_IDLE)
        {
            idle.pop_front();
        }
        idle.push_back(Idle { sender, since });
    }
}

/// A new HTTP/1.1 connection to the URI's origin, its connection task spawned.
async fn connect_to(uri: &Uri, limit: Duration) -> Result<Sender, ProviderError> {
    let mut http = HttpConnector::new();
    // Nagle's algorithm meeting delayed ACKs stalls small request writes by ~40 ms.
    http.set_nodelay(true);
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_connect_timeout(Some(limit));
    let connecting = async {
        std::future::poll_fn(|cx| http.poll_ready(cx))
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
        let io = http
            .call(uri.clone())
            .await
            .map_err(|e| Box::new(e) as BoxError)?;
        http1::Builder::new()
            .handshake::<_, Full<Bytes>>(io)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    };
    let (sender, connection) = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(err)) => return Err(super::map_connect_error(&*err)),
        Err(_) => return Err(super::map_connect_error(&ConnectTimeout)),
    };
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "Upstream connection ended with an error.");
        }
    });
    Ok(sender)
}

#[cfg(test)]
impl Pools {
    /// Idle connections of the URI's origin.
    pub(super) fn idle_count(&self, uri: &Uri) -> usize {
        self.origin(uri).map_or(0, |o| o.idle.lock().len())
    }
}
