//! A streaming response body turned into canonical events: bytes -> [`SseParser`] -> the
//! provider's [`StreamDecoder`] -> [`ChatEvent`]s, with the idle limit between chunks and the
//! total limit over the whole stream.
//!
//! The stream owns the response: dropping it drops the connection, which is how a client that
//! goes away cancels the upstream generation. A body that ends before the decoder saw the
//! provider's terminal event is [`ProviderError::Closed`]: a truncated answer must not pass for a
//! complete one (nor be billed or cached as one). After the first error the stream ends.

use crate::transport::{map_body_error, Answer, UpstreamBody};
use crate::{ChatEventStream, ProviderError, TimeoutKind};
use futures::{FutureExt, StreamExt};
use http_body_util::{BodyDataStream, BodyExt};
use std::collections::VecDeque;
use std::time::Duration;
use switchboard_protocols::{SseParser, StreamDecoder};
use switchboard_types::ChatEvent;
use tokio::time::Instant;

/// How many already-arrived body chunks are read after the terminal event, so that the body
/// reaches its end and the connection goes back to the pool instead of being closed.
const DRAIN_CHUNKS: usize = 4;

struct State<D> {
    body: Option<BodyDataStream<UpstreamBody>>,
    parser: SseParser,
    decoder: D,
    pending: VecDeque<Result<ChatEvent, ProviderError>>,
    idle: Duration,
    deadline: Instant,
}

/// The events of a streaming success answer.
pub(crate) fn decode<D>(answer: Answer, decoder: D) -> ChatEventStream
where
    D: StreamDecoder + 'static,
{
    let state = State {
        body: Some(answer.response.into_body().into_data_stream()),
        parser: SseParser::new(),
        decoder,
        pending: VecDeque::new(),
        idle: answer.idle,
        deadline: answer.deadline,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                return Some((item, st));
            }
            let body = st.body.as_mut()?;
            let wait_until = (Instant::now() + st.idle).min(st.deadline);
            match tokio::time::timeout_at(wait_until, body.next()).await {
                Err(_) => {
                    let kind = if wait_until >= st.deadline {
                        TimeoutKind::Total
                    } else {
                        TimeoutKind::Idle
                    };
                    st.fail(ProviderError::Timeout(kind));
                }
                Ok(Some(Err(e))) => st.fail(map_body_error(&e)),
                Ok(Some(Ok(bytes))) => {
                    let events = st.parser.feed(&bytes);
                    st.decode_all(events);
                }
                Ok(None) => {
                    let last = st.parser.finish();
                    st.decode_all(last);
                    if st.body.is_some() {
                        st.body = None;
                        if !st.decoder.is_done() {
                            st.pending.push_back(Err(ProviderError::Closed(
                                "the stream ended before its terminal event".into(),
                            )));
                        }
                    }
                }
            }
        }
    })
    .boxed()
}

impl<D: StreamDecoder> State<D> {
    fn decode_all(&mut self, events: impl IntoIterator<Item = switchboard_protocols::SseEvent>) {
        for event in events {
            match self.decoder.decode(&event) {
                Ok(decoded) => self.pending.extend(decoded.into_iter().map(Ok)),
                Err(e) => {
                    self.fail(e.into());
                    return;
                }
            }
            if self.decoder.is_done() {
                self.finish();
                return;
            }
        }
    }

    /// Queues the error and stops reading: nothing follows an error.
    fn fail(&mut self, err: ProviderError) {
        self.pending.push_back(Err(err));
        self.body = None;
    }

    /// The terminal event was seen: read what already arrived of the body's end without waiting,
    /// then let the body go.
    fn finish(&mut self) {
        if let Some(mut body) = self.body.take() {
            for _ in 0..DRAIN_CHUNKS {
                match body.next().now_or_never() {
                    Some(Some(Ok(_))) => continue,
                    _ => break,
                }
            }
        }
    }
}
