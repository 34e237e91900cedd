//! The three kinds of upstream call the router makes, behind one small trait so that a single
//! retry loop serves them all. A stream is only "answered" once its first event is in hand:
//! an error before that is a failed attempt the router can still retry, because the client has
//! not seen a byte. The stream handed back carries the attempt's guard, so the target's
//! in-flight count and circuit learn how the stream ended.

use super::state::AttemptGuard;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use switchboard_providers::{ChatEventStream, Provider, ProviderError, Upstream};
use switchboard_types::{ChatEvent, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse};

/// One kind of upstream call.
pub(crate) trait Operation: Sync {
    /// What a successful attempt yields.
    type Answer: Send;
    /// What the caller gets once the attempt is settled.
    type Output;

    /// One attempt on one target.
    fn call<'a>(
        &'a self,
        provider: &'a dyn Provider,
        upstream: &'a Upstream<'a>,
    ) -> BoxFuture<'a, Result<Self::Answer, ProviderError>>;

    /// Reports a successful attempt to the target's state: at once for whole answers, at the
    /// end of the stream for streams.
    fn settle(answer: Self::Answer, guard: AttemptGuard) -> Self::Output;
}

pub(crate) struct ChatOp<'r>(pub &'r ChatRequest);

impl Operation for ChatOp<'_> {
    type Answer = ChatResponse;
    type Output = ChatResponse;

    fn call<'a>(
        &'a self,
        provider: &'a dyn Provider,
        upstream: &'a Upstream<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        provider.chat(upstream, self.0)
    }

    fn settle(answer: ChatResponse, guard: AttemptGuard) -> ChatResponse {
        guard.success();
        answer
    }
}

pub(crate) struct EmbedOp<'r>(pub &'r EmbedRequest);

impl Operation for EmbedOp<'_> {
    type Answer = EmbedResponse;
    type Output = EmbedResponse;

    fn call<'a>(
        &'a self,
        provider: &'a dyn Provider,
        upstream: &'a Upstream<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        provider.embed(upstream, self.0)
    }

    fn settle(answer: EmbedResponse, guard: AttemptGuard) -> EmbedResponse {
        guard.success();
        answer
    }
}

pub(crate) struct StreamOp<'r>(pub &'r ChatRequest);

/// A stream whose first content event has been read, with the metadata events before it.
pub(crate) struct Peeked {
    head: VecDeque<ChatEvent>,
    rest: ChatEventStream,
}

/// Whether an event says anything about the answer itself. `Start` and `Usage` do not: a
/// provider that sends its `message_start` and then fails (Anthropic's `overloaded_error`
/// often does) has still shown the client nothing worth keeping, so the attempt may be retried.
fn is_content(event: &ChatEvent) -> bool {
    !matches!(event, ChatEvent::Start { .. } | ChatEvent::Usage(_))
}

impl Operation for StreamOp<'_> {
    type Answer = Peeked;
    type Output = ChatEventStream;

    fn call<'a>(
        &'a self,
        provider: &'a dyn Provider,
        upstream: &'a Upstream<'a>,
    ) -> BoxFuture<'a, Result<Peeked, ProviderError>> {
        Box::pin(async move {
            let mut rest = provider.chat_stream(upstream, self.0).await?;
            // Any error before the first content event (retryable or not) is the attempt's
            // outcome: the client has seen nothing yet, so it still gets a proper status code.
            let mut head = VecDeque::new();
            loop {
                match rest.next().await {
                    Some(Ok(event)) => {
                        let content = is_content(&event);
                        head.push_back(event);
                        if content {
                            return Ok(Peeked { head, rest });
                        }
                    }
                    Some(Err(err)) => return Err(err),
                    // A clean end with no content: the head is the whole stream.
                    None if !head.is_empty() => return Ok(Peeked { head, rest }),
                    None => {
                        return Err(ProviderError::Closed(
                            "the stream ended before its first event".into(),
                        ))
                    }
                }
            }
        })
    }

    fn settle(answer: Peeked, guard: AttemptGuard) -> ChatEventStream {
        Box::pin(GuardedStream {
            head: answer.head,
            rest: answer.rest,
            guard: Some(guard),
            done: false,
        })
    }
}

/// Yields the peeked events, then the rest of the upstream stream. Settles the attempt when the
/// stream ends: success on a clean end, failure on an error; dropped early by the client, the
/// guard's drop releases the in-flight count without judging the target.
struct GuardedStream {
    head: VecDeque<ChatEvent>,
    rest: ChatEventStream,
    guard: Option<AttemptGuard>,
    done: bool,
}

impl Stream for GuardedStream {
    type Item = Result<ChatEvent, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(event) = this.head.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let item = match this.rest.poll_next_unpin(cx) {
            Poll::Ready(item) => item,
            Poll::Pending => return Poll::Pending,
        };
        match &item {
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                if let Some(guard) = this.guard.take() {
                    guard.failure();
                }
            }
            None => {
                this.done = true;
                if let Some(guard) = this.guard.take() {
                    guard.success();
                }
            }
        }
        Poll::Ready(item)
    }
}
