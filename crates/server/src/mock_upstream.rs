//! A minimal, fast OpenAI-compatible upstream for the load benchmark (`bench/run.sh`),
//! served by the hidden `switchboard mock-upstream` subcommand. It answers
//! `POST /v1/chat/completions` (JSON or SSE) and `POST /v1/embeddings` with fixed,
//! deterministic bodies so that a benchmark measures the proxy in front of it, not the
//! mock: every response body is rendered once at startup and only cloned per request
//! (`Bytes` is reference-counted), and a request body is parsed only for the few fields
//! that change the answer (`stream`, `stream_options.include_usage`, embeddings `input`).
//! Plain hyper 1 over HTTP/1.1 with keep-alive and TCP_NODELAY: a proxy benchmark that
//! tripped on Nagle's algorithm would measure 40 ms stalls, not the proxy.
//! It is not the test mock: `switchboard-testkit` checks wire fidelity, this one is speed.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How the mock answers; the subcommand's flags map one to one.
#[derive(Clone, Copy, Debug, Default)]
pub struct MockUpstreamOptions {
    /// Content chunks in a streamed answer (before the finish, usage and `[DONE]` events).
    pub chunks: u32,
    /// Pause between two streamed chunks; the first chunk is not delayed.
    pub chunk_delay_ms: u64,
    /// Pause after reading the request, before the response head.
    pub latency_ms: u64,
}

/// How long in-flight connections get to finish once `shutdown` resolves.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Back-off after a failed `accept` (usually EMFILE under load) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The `model` every answer names: the mock ignores the requested one to stay allocation-free.
const MODEL: &str = "switchboard-bench-mock";
/// Fixed creation time, so that bodies are byte-identical across runs.
const CREATED: u64 = 1_700_000_000;
/// About 20 tokens of text for the non-streamed answer.
const REPLY_TEXT: &str = "This is a fixed reply from the Switchboard benchmark mock upstream, \
                          the same twenty tokens every time.";
const REPLY_PROMPT_TOKENS: u32 = 12;
const REPLY_COMPLETION_TOKENS: u32 = 20;
/// The text of every streamed chunk (about one token).
const CHUNK_TEXT: &str = "tok ";
/// The fixed embedding vector returned for every input.
const EMBEDDING: [f32; 8] = [0.125, -0.25, 0.375, -0.5, 0.625, -0.75, 0.875, -1.0];

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Serves the mock on `listener` until `shutdown` resolves, then stops accepting and gives
/// in-flight requests up to five seconds to finish.
pub async fn run(
    listener: TcpListener,
    opts: MockUpstreamOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bodies = Arc::new(Bodies::render(opts));
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut http = http1::Builder::new();
    http.keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(%err, "Mock upstream failed to accept a connection.");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Why: without it the last small write of each response waits for a delayed ACK.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::warn!(%err, "Mock upstream could not set TCP_NODELAY.");
        }
        let bodies = Arc::clone(&bodies);
        let service = service_fn(move |req| handle(req, Arc::clone(&bodies)));
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        tracker.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%err, "Mock upstream connection ended with an error.");
            }
        });
    }
    drop(listener);
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("Mock upstream stopped with connections still open.");
    }
    Ok(())
}

/// Routes one request. Never fails: every error is an OpenAI-shaped error response.
async fn handle(req: Request<Incoming>, bodies: Arc<Bodies>) -> Result<Response<Body>, Infallible> {
    let route = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => Route::Chat,
        (&Method::POST, "/v1/embeddings") => Route::Embeddings,
        (&Method::GET, "/healthz") => return Ok(text(StatusCode::OK, "ok\n")),
        _ => return Ok(error(StatusCode::NOT_FOUND, "Unknown route.")),
    };
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "Could not read the body.")),
    };
    if bodies.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(bodies.latency_ms)).await;
    }
    Ok(match route {
        Route::Chat => chat(&body, &bodies),
        Route::Embeddings => embeddings(&body),
    })
}

enum Route {
    Chat,
    Embeddings,
}

/// The only fields of a chat request that change the answer; serde skips the rest.
#[derive(Deserialize)]
struct ChatProbe {
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

fn chat(body: &[u8], bodies: &Bodies) -> Response<Body> {
    let probe: ChatProbe = match serde_json::from_slice(body) {
        Ok(probe) => probe,
        Err(_) => return error(StatusCode::BAD_REQUEST, "The body is not a chat request."),
    };
    if !probe.stream {
        return json(StatusCode::OK, bodies.completion.clone());
    }
    let include_usage = probe.stream_options.is_some_and(|o| o.include_usage);
    let frames = if include_usage {
        bodies.with_usage.clone()
    } else {
        bodies.without_usage.clone()
    };
    let delay = Duration::from_millis(bodies.chunk_delay_ms);
    let stream = futures::stream::unfold(0usize, move |index| {
        let frames = Arc::clone(&frames);
        async move {
            let frame = frames.get(index)?.clone();
            // Why only between content chunks: the first byte must not wait, and the
            // trailing finish/usage/[DONE] events go out right after the last chunk.
            if index > 0 && index < frames.content_chunks && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(frame)), index + 1))
        }
    });
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Embeddings `input`: one string, a list (of strings or token arrays), or one token array.
#[derive(Deserialize)]
struct EmbedProbe {
    input: serde_json::Value,
}

fn embeddings(body: &[u8]) -> Response<Body> {
    let probe: EmbedProbe = match serde_json::from_slice(body) {
        Ok(probe) => probe,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "The body is not an embeddings request.",
            )
        }
    };
    let count = match &probe.input {
        serde_json::Value::Array(items) if !items.first().is_some_and(|v| v.is_number()) => {
            items.len()
        }
        _ => 1,
    };
    let data: Vec<serde_json::Value> = (0..count)
        .map(|index| serde_json::json!({"object": "embedding", "index": index, "embedding": EMBEDDING}))
        .collect();
    let tokens = 4 * count;
    let value = serde_json::json!({
        "object": "list",
        "data": data,
        "model": MODEL,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    json(StatusCode::OK, Bytes::from(value.to_string()))
}

/// Every body the mock sends, rendered once at startup.
struct Bodies {
    completion: Bytes,
    with_usage: Arc<StreamFrames>,
    without_usage: Arc<StreamFrames>,
    chunk_delay_ms: u64,
    latency_ms: u64,
}

/// The SSE events of one streamed answer, in order: `content_chunks` content chunks,
/// then the finish chunk, the usage chunk when asked, and `data: [DONE]`.
struct StreamFrames {
    frames: Vec<Bytes>,
    content_chunks: usize,
}

impl StreamFrames {
    fn get(&self, index: usize) -> Option<&Bytes> {
        self.frames.get(index)
    }
}

impl Bodies {
    fn render(opts: MockUpstreamOptions) -> Self {
        let completion = serde_json::json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": REPLY_TEXT, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage(REPLY_PROMPT_TOKENS, REPLY_COMPLETION_TOKENS),
            "system_fingerprint": "fp_bench",
        });
        Self {
            completion: Bytes::from(completion.to_string()),
            with_usage: Arc::new(stream_frames(opts.chunks, true)),
            without_usage: Arc::new(stream_frames(opts.chunks, false)),
            chunk_delay_ms: opts.chunk_delay_ms,
            latency_ms: opts.latency_ms,
        }
    }
}

fn usage(prompt: u32, completion: u32) -> serde_json::Value {
    serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

fn stream_frames(chunks: u32, include_usage: bool) -> StreamFrames {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let mut event = serde_json::json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        // Why: with include_usage, OpenAI sends `"usage": null` on every chunk but the last.
        if include_usage {
            event["usage"] = serde_json::Value::Null;
        }
        sse(&event)
    };
    let mut frames = Vec::with_capacity(chunks as usize + 3);
    for index in 0..chunks {
        let delta = if index == 0 {
            serde_json::json!({"role": "assistant", "content": CHUNK_TEXT})
        } else {
            serde_json::json!({"content": CHUNK_TEXT})
        };
        frames.push(chunk(delta, None));
    }
    frames.push(chunk(serde_json::json!({}), Some("stop")));
    if include_usage {
        frames.push(sse(&serde_json::json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [],
            "usage": usage(REPLY_PROMPT_TOKENS, chunks),
        })));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    StreamFrames {
        frames,
        content_chunks: chunks as usize,
    }
}

fn sse(event: &serde_json::Value) -> Bytes {
    Bytes::from(format!("data: {event}\n\n"))
}

fn json(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// An OpenAI-shaped error body, so that the gateway's error mapping sees a real shape.
fn error(status: StatusCode, message: &str) -> Response<Body> {
    let kind = if status == StatusCode::NOT_FOUND {
        "not_found_error"
    } else {
        "invalid_request_error"
    };
    let body = serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": null},
    });
    json(status, Bytes::from(body.to_string()))
}
