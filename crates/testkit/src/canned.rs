//! A canned upstream: one fixed answer for whole (JSON) requests and one for streamed requests
//! (a request whose JSON body has `"stream": true`), served over real HTTP on `127.0.0.1:0`.
//!
//! The scripted mocks render usage from [`crate::MockUsage`], which has no cache-write count.
//! Tests that need a provider's exact bytes (Anthropic's `cache_creation_input_tokens`, a field
//! a mock does not send) give the body here instead. The SSE text is written one event (a block
//! ending in a blank line) per body chunk, as a provider flushes them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use tokio::task::JoinHandle;

/// What a [`CannedUpstream`] answers.
#[derive(Clone, Debug)]
pub struct Canned {
    /// The body of a whole answer (`application/json`).
    pub json: String,
    /// The SSE text of a streamed answer (`text/event-stream`).
    pub sse: String,
}

struct CannedState {
    canned: Canned,
    hits: AtomicUsize,
}

/// A server answering every request with its [`Canned`] answer; stops when dropped.
pub struct CannedUpstream {
    addr: SocketAddr,
    state: Arc<CannedState>,
    task: JoinHandle<()>,
}

impl CannedUpstream {
    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn start(canned: Canned) -> std::io::Result<CannedUpstream> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(CannedState {
            canned,
            hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            // Serving ends only when the task is aborted (drop); an error is a torn-down test.
            let _ = axum::serve(listener, app).await;
        });
        Ok(CannedUpstream { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`, the host root (as Anthropic's base URL is given).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

impl Drop for CannedUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for CannedUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CannedUpstream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

async fn answer(State(state): State<Arc<CannedState>>, req: Request) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let streamed = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|body| body.get("stream").and_then(serde_json::Value::as_bool))
        .unwrap_or(false);
    let (body, content_type) = if streamed {
        // One chunk per event, so the gateway sees them as a provider would send them.
        let events: Vec<Result<Bytes, std::io::Error>> = state
            .canned
            .sse
            .split_inclusive("\n\n")
            .map(|event| Ok(Bytes::from(event.to_owned())))
            .collect();
        (
            Body::from_stream(futures::stream::iter(events)),
            "text/event-stream",
        )
    } else {
        (Body::from(state.canned.json.clone()), "application/json")
    };
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
