//! Dev-only test support: wire-faithful mock providers (OpenAI, Azure OpenAI, Anthropic, Gemini)
//! served over real HTTP on `127.0.0.1:0`, plus a small fixture reader.
//!
//! The mocks are written from the providers' documented wire formats and deliberately do not use
//! `switchboard-protocols`: they are the independent check on it. Each mock records every request
//! it receives, answers with the next scripted [`Reply`] (FIFO; [`Reply::Echo`] when the queue is
//! empty) and counts streams that the client abandoned before their terminal event.

pub mod canned;
pub mod fixtures;

mod anthropic;
mod gemini;
mod openai;
mod server;
mod state;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::state::Shared;

/// Which provider a [`MockProvider`] imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MockKind {
    OpenAi,
    AzureOpenAi,
    Anthropic,
    Gemini,
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names are lowercase; repeated headers keep the last value.
    pub headers: BTreeMap<String, String>,
    /// The parsed JSON body; `Value::Null` when the body was empty or not JSON.
    pub body: serde_json::Value,
}

impl RecordedRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Token counts a scripted answer reports, in the canonical sense: `input` includes `cached`,
/// `output` includes `reasoning`. Each mock renders them the way its provider does (for example
/// Anthropic's `input_tokens` excludes cache reads; Gemini's `candidatesTokenCount` excludes
/// thoughts).
#[derive(Clone, Debug, Default)]
pub struct MockUsage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub reasoning: u64,
}

/// One tool call of a scripted answer.
#[derive(Clone, Debug)]
pub struct MockToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments.
    pub arguments: String,
}

/// What the mock does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Text = "echo: " + the last user message text; usage input 10, output 5.
    Echo,
    /// JSON or SSE (in that provider's format) per the request's stream flag / endpoint.
    Text { text: String, usage: MockUsage },
    /// Streamed: arguments in several fragments; OpenAI kinds interleave fragments of calls.
    ToolCalls {
        text: Option<String>,
        calls: Vec<MockToolCall>,
        usage: MockUsage,
    },
    /// A provider-shaped error body for that status, with `retry-after` when given.
    Error {
        status: u16,
        retry_after_secs: Option<u64>,
    },
    /// Waits before sending headers, then answers with `then`.
    Delay { before: Duration, then: Box<Reply> },
    /// `chunks` text deltas, then the provider's in-stream error event. A non-streaming request
    /// gets the provider's "overloaded / server error" status instead.
    StreamThenError { chunks: usize },
    /// `chunks` text deltas, then the connection closes with no terminal event. A non-streaming
    /// request gets a truncated JSON body.
    StreamThenDrop { chunks: usize },
    /// A delta every `interval` (non-streaming: the whole answer after `chunks * interval`).
    SlowStream { chunks: usize, interval: Duration },
    /// A normal text stream with an extra event of a type the client does not know.
    WithUnknownEvent,
    /// Never answers (counted as an open stream; cancelled when the client goes away).
    Hang,
    /// An embeddings answer with deterministic values.
    Embedding { dims: usize },
}

/// A mock provider on a real port; the server and all its connections stop when it is dropped.
pub struct MockProvider {
    kind: MockKind,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl MockProvider {
    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Panics
    /// When the loopback port cannot be bound: a broken test environment, nothing a test can
    /// recover from. Use [`MockProvider::try_start`] to handle it.
    #[expect(
        clippy::panic,
        reason = "dev-only test helper whose contract returns the mock itself; binding loopback port 0 only fails in a broken environment"
    )]
    pub async fn start(kind: MockKind) -> MockProvider {
        match Self::try_start(kind).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock provider: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Like [`MockProvider::start`], returning the bind error.
    pub async fn try_start(kind: MockKind) -> std::io::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(kind));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server::serve(listener, Arc::clone(&shared), rx));
        Ok(MockProvider {
            kind,
            addr,
            shared,
            shutdown: Some(tx),
            task,
        })
    }

    pub fn kind(&self) -> MockKind {
        self.kind
    }

    /// The base URL as the official SDK takes it: OpenAI `http://127.0.0.1:P/v1`; Azure OpenAI,
    /// Anthropic and Gemini the host root `http://127.0.0.1:P`.
    pub fn base_url(&self) -> String {
        match self.kind {
            MockKind::OpenAi => format!("http://{}/v1", self.addr),
            MockKind::AzureOpenAi | MockKind::Anthropic | MockKind::Gemini => {
                format!("http://{}", self.addr)
            }
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply (FIFO, one per request). When the queue is empty the mock echoes.
    pub fn enqueue(&self, reply: Reply) {
        self.shared.queue.lock().push_back(reply);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().len()
    }

    /// Streams (and hanging requests) still being written.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams()
    }

    /// Streams (and hanging requests) whose client went away before their terminal event.
    pub fn cancelled_streams(&self) -> usize {
        self.shared.cancelled_streams()
    }

    /// Test helper: polls in small steps until `cancelled_streams() >= n` or `timeout` passes.
    /// Returns whether the count was reached. Works with a paused tokio clock too.
    pub async fn wait_for_cancelled(&self, n: usize, timeout: Duration) -> bool {
        let step = Duration::from_millis(5);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.cancelled_streams() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(step).await;
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Aborting drops the accept loop, the listener and the set of connection tasks (which
        // aborts them), so no task keeps a port or a hanging handler alive.
        self.task.abort();
    }
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
