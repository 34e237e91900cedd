//! Turning a canonical event stream into the client's SSE bytes. Each event is written and
//! flushed on its own (one body frame per event); an upstream failure after the stream began
//! becomes one error event in the client's format, and the stream ends. Dropping the body (the
//! client went away) drops the upstream stream, which cancels the upstream request, and drops
//! the meter, which records the request as cancelled with what was generated so far.

use super::capture::StreamCapture;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use std::convert::Infallible;
use switchboard_core::usage::Meter;
use switchboard_core::GatewayError;
use switchboard_protocols::StreamEncoder;
use switchboard_providers::{ChatEventStream, ProviderError};
use switchboard_types::ChatEvent;

/// A 200 answer of server-sent events: `body` with the SSE content type, never cached.
pub fn response(body: impl Into<Body>) -> Response {
    let mut response = (StatusCode::OK, body.into()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

struct State {
    upstream: ChatEventStream,
    encoder: Box<dyn StreamEncoder>,
    request_id: String,
    /// Attempts made before the stream began, for the error summary.
    attempts: u32,
    now: i64,
    /// Sees every event (usage, generated text) and records the request when dropped.
    meter: Meter,
    /// The SSE text sent, for the call log when `logging.bodies` selects the call.
    capture: StreamCapture,
}

pub fn body(
    upstream: ChatEventStream,
    encoder: Box<dyn StreamEncoder>,
    request_id: String,
    attempts: u32,
    meter: Meter,
    capture: StreamCapture,
) -> Body {
    let state = State {
        upstream,
        encoder,
        request_id,
        attempts,
        now: switchboard_protocols::unix_now(),
        meter,
        capture,
    };
    let frames = futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        let mut out = Vec::new();
        // Loop until the encoder has written something: some events (usage held for the end,
        // a text block not yet opened) write nothing by themselves.
        loop {
            match state.upstream.next().await {
                Some(Ok(mut event)) => {
                    if let ChatEvent::Start { created, .. } = &mut event {
                        if *created == 0 {
                            *created = state.now;
                        }
                    }
                    state.meter.observe(&event);
                    state.encoder.encode(&event, &mut out);
                    if !out.is_empty() {
                        state.capture.push(&out);
                        return Some((Ok::<_, Infallible>(Bytes::from(out)), Some(state)));
                    }
                }
                Some(Err(err)) => {
                    let error = stream_error(err, state.attempts);
                    // The client got 200 and then this error event.
                    state.meter.fail(&error, state.attempts, None, 200);
                    let client = error.to_client(&state.request_id);
                    tracing::warn!(request_id = %state.request_id, code = client.code, "Stream failed after it began.");
                    state.encoder.error(&client, &mut out);
                    state.capture.push(&out);
                    return Some((Ok(Bytes::from(out)), None));
                }
                None => {
                    state.meter.finish();
                    state.encoder.finish(&mut out);
                    state.capture.push(&out);
                    return Some((Ok(Bytes::from(out)), None));
                }
            }
        }
    });
    Body::from_stream(frames)
}

fn stream_error(err: ProviderError, attempts: u32) -> GatewayError {
    match err {
        ProviderError::Timeout(kind) => GatewayError::UpstreamTimeout(kind),
        last => GatewayError::AllTargetsFailed { attempts, last },
    }
}
