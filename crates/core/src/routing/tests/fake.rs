//! A scripted provider for the router's tests: each call takes the next queued reply (a plain
//! success when the queue is empty), after the provider's fixed latency, and records the
//! upstream model it was asked for. Sleeps run on tokio's paused clock, so they cost nothing.
//! The trait is implemented by hand in the shape `async_trait` generates, to keep core's
//! dependencies unchanged.

use futures::future::BoxFuture;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_providers::{ChatEventStream, Provider, ProviderError, Upstream};
use switchboard_types::{
    ChatEvent, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, FinishReason, Protocol,
    Usage,
};

#[derive(Debug)]
pub(super) enum Reply {
    Ok,
    Err(ProviderError),
    /// Waits, then answers with the inner reply.
    After(Duration, Box<Reply>),
    /// Streams only: the stream opens, and its first item is this error.
    StreamErr(ProviderError),
}

#[derive(Debug, Default)]
pub(super) struct Fake {
    latency: Duration,
    replies: Mutex<VecDeque<Reply>>,
    calls: AtomicU32,
    models: Mutex<Vec<String>>,
    traceparents: Mutex<Vec<Option<String>>>,
}

/// What a call resolved to once the script has run.
enum Outcome {
    Ok,
    Err(ProviderError),
    StreamErr(ProviderError),
}

impl Fake {
    pub(super) fn new() -> Arc<Fake> {
        Arc::new(Fake::default())
    }

    /// A provider that takes `latency` before every answer.
    pub(super) fn slow(latency: Duration) -> Arc<Fake> {
        Arc::new(Fake {
            latency,
            ..Fake::default()
        })
    }

    pub(super) fn push(&self, reply: Reply) {
        self.replies.lock().push_back(reply);
    }

    /// Queues the same error `times` times.
    pub(super) fn fail(&self, err: &ProviderError, times: usize) {
        for _ in 0..times {
            self.push(Reply::Err(err.clone()));
        }
    }

    pub(super) fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The upstream model of every call, in order.
    pub(super) fn models(&self) -> Vec<String> {
        self.models.lock().clone()
    }

    /// The `traceparent` of every call, in order.
    pub(super) fn traceparents(&self) -> Vec<Option<String>> {
        self.traceparents.lock().clone()
    }

    async fn run(&self, call: &Upstream<'_>) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.models.lock().push(call.model.to_owned());
        self.traceparents
            .lock()
            .push(call.traceparent.map(str::to_owned));
        let mut reply = self.replies.lock().pop_front().unwrap_or(Reply::Ok);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        loop {
            match reply {
                Reply::Ok => return Outcome::Ok,
                Reply::Err(err) => return Outcome::Err(err),
                Reply::StreamErr(err) => return Outcome::StreamErr(err),
                Reply::After(wait, then) => {
                    tokio::time::sleep(wait).await;
                    reply = *then;
                }
            }
        }
    }
}

pub(super) fn response(model: &str) -> ChatResponse {
    ChatResponse {
        id: "resp".into(),
        model: model.into(),
        created: 0,
        choices: Vec::new(),
        usage: None,
        system_fingerprint: None,
        raw: None,
    }
}

/// The events of a short successful stream.
pub(super) fn events(model: &str) -> Vec<ChatEvent> {
    vec![
        ChatEvent::Start {
            id: "s".into(),
            model: model.into(),
            created: 0,
        },
        ChatEvent::TextDelta {
            choice: 0,
            text: "hi".into(),
        },
        ChatEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop,
        },
        ChatEvent::Usage(Usage::default()),
    ]
}

impl Provider for Fake {
    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    fn chat<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        call: &'life1 Upstream<'life2>,
        _req: &'life3 ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatResponse, ProviderError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self.run(call).await {
                Outcome::Ok => Ok(response(call.model)),
                Outcome::Err(err) | Outcome::StreamErr(err) => Err(err),
            }
        })
    }

    fn chat_stream<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        call: &'life1 Upstream<'life2>,
        _req: &'life3 ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatEventStream, ProviderError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let items: Vec<Result<ChatEvent, ProviderError>> = match self.run(call).await {
                Outcome::Ok => events(call.model).into_iter().map(Ok).collect(),
                Outcome::Err(err) => return Err(err),
                Outcome::StreamErr(err) => vec![Err(err)],
            };
            let stream: ChatEventStream = Box::pin(futures::stream::iter(items));
            Ok(stream)
        })
    }

    fn embed<'life0, 'life1, 'life2, 'life3, 'async_trait>(
        &'life0 self,
        call: &'life1 Upstream<'life2>,
        _req: &'life3 EmbedRequest,
    ) -> BoxFuture<'async_trait, Result<EmbedResponse, ProviderError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        'life3: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            match self.run(call).await {
                Outcome::Ok => Ok(EmbedResponse {
                    model: call.model.to_owned(),
                    data: Vec::new(),
                    usage: Usage::default(),
                }),
                Outcome::Err(err) | Outcome::StreamErr(err) => Err(err),
            }
        })
    }
}
