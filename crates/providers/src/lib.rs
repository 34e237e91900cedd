//! Providers: the [`Provider`] trait, the settings of each provider kind, the registry that
//! builds a provider from its settings (the one `match` on provider kind), the pooled HTTP
//! transport, and one module per provider. Providers do no retries: `switchboard-core`'s
//! router owns retries, fallbacks and circuit state.

mod anthropic;
mod azure;
pub mod body;
mod error;
mod gemini;
mod mock;
mod openai;
mod registry;
mod settings;
mod stream;
mod transport;

pub use error::{ProviderError, TimeoutKind};
pub use registry::{build, BuildError};
pub use settings::ProviderSettings;

use async_trait::async_trait;
use futures::stream::BoxStream;
use std::borrow::Cow;
use std::fmt::Debug;
use std::time::Duration;
use switchboard_types::{
    ChatEvent, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Protocol,
};

/// A stream of canonical events from a provider. Dropping it cancels the upstream request.
pub type ChatEventStream = BoxStream<'static, Result<ChatEvent, ProviderError>>;

/// Time limits of one upstream attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// From sending the request to the response headers.
    pub first_byte: Duration,
    /// The whole attempt, body included (for streams: the whole stream).
    pub total: Duration,
    /// Streams only: the longest wait between two chunks.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(2_000),
            first_byte: Duration::from_millis(30_000),
            total: Duration::from_millis(120_000),
            idle: Duration::from_millis(30_000),
        }
    }
}

/// What one upstream attempt needs besides the request.
#[derive(Clone, Debug)]
pub struct Upstream<'a> {
    /// The upstream model name (for Azure: the deployment name).
    pub model: &'a str,
    pub timeouts: Timeouts,
    /// Anthropic requires `max_tokens`; sent when the client gave none.
    pub default_max_tokens: u32,
    /// The gateway's request id, sent upstream as `x-request-id` for correlation.
    pub request_id: &'a str,
    /// W3C `traceparent` to propagate, if any.
    pub traceparent: Option<&'a str>,
}

/// One upstream LLM API.
///
/// Invariants: no retries inside; every failure is a typed [`ProviderError`] whose
/// `is_retryable` answers the router; provider error bodies never reach clients raw (the error
/// keeps a summarised message for the log).
#[async_trait]
pub trait Provider: Send + Sync + Debug {
    /// The wire protocol this provider speaks, for the same-protocol fast path.
    fn protocol(&self) -> Protocol;

    /// A whole chat completion.
    async fn chat(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError>;

    /// A streamed chat completion. Resolves once the upstream answered with a success status and
    /// headers (so that the router can still retry before the first byte reaches the client).
    /// The stream always carries usage: providers ask for it upstream.
    async fn chat_stream(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError>;

    /// Embeddings.
    async fn embed(
        &self,
        call: &Upstream<'_>,
        req: &EmbedRequest,
    ) -> Result<EmbedResponse, ProviderError>;
}

/// The request with `stream` set as the endpoint needs. The router normally calls `chat` for
/// non-streamed and `chat_stream` for streamed requests, so this clones only in the odd case; the
/// client's raw body is dropped then, because its own `stream` field would contradict the call.
fn with_stream(req: &ChatRequest, stream: bool) -> Cow<'_, ChatRequest> {
    if req.stream == stream {
        return Cow::Borrowed(req);
    }
    let mut owned = req.clone();
    owned.stream = stream;
    owned.raw = None;
    Cow::Owned(owned)
}
