//! The HTTP side of a mock: an accept loop that owns its connection tasks (so dropping the
//! mock closes everything), one axum fallback handler that records the request, routes it per
//! provider and plays the next scripted `Reply`, and the streaming body that writes every SSE
//! event as its own chunk and counts abandoned streams.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::state::{Shared, StreamGuard};
use crate::wire::{
    echo_answer, numbered_pieces, split_text, Answer, Ctx, Ending, Endpoint, ErrorReply, Ev,
    StreamPlan,
};
use crate::{anthropic, gemini, openai, MockKind, MockUsage, RecordedRequest, Reply};

/// Accepts connections until shutdown. Connection tasks live in a `JoinSet` owned by this
/// future: when it ends or is aborted, they are aborted too.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let router = Router::new().fallback(handle).with_state(shared);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Transient accept errors (fd exhaustion): back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let router = router.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: axum::http::Request<Incoming>| {
                        router.clone().oneshot(req)
                    });
                    // Errors here are client disconnects or deliberate aborts: nothing to do.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    let seq = shared.record(recorded.clone());
    let kind = shared.kind;
    let routed = match kind {
        MockKind::OpenAi | MockKind::AzureOpenAi => openai::route(kind, &recorded, seq),
        MockKind::Anthropic => anthropic::route(&recorded, seq),
        MockKind::Gemini => gemini::route(&recorded, seq),
    };
    let mut resp = match routed {
        Ok((endpoint, ctx)) => {
            let reply = shared.next_reply();
            play(Arc::clone(&shared), endpoint, ctx, reply).await
        }
        Err(e) => error_response(&e),
    };
    let request_id = match kind {
        MockKind::OpenAi | MockKind::AzureOpenAi => Some("x-request-id"),
        MockKind::Anthropic => Some("request-id"),
        MockKind::Gemini => None,
    };
    if let (Some(name), Ok(value)) = (request_id, HeaderValue::from_str(&format!("req_mock{seq}")))
    {
        resp.headers_mut().insert(name, value);
    }
    resp
}

type BoxResponse = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Plays one scripted reply for a routed request (boxed: `Delay` recurses).
fn play(shared: Arc<Shared>, endpoint: Endpoint, ctx: Ctx, reply: Reply) -> BoxResponse {
    Box::pin(async move {
        let kind = ctx.kind;
        match reply {
            Reply::Delay { before, then } => {
                tokio::time::sleep(before).await;
                return play(shared, endpoint, ctx, *then).await;
            }
            Reply::Error {
                status,
                retry_after_secs,
            } => {
                let mut e = scripted_error(kind, status);
                e.retry_after = retry_after_secs;
                return error_response(&e);
            }
            Reply::Hang => {
                // Counted as an open stream; hyper drops this future when the client leaves.
                let _guard = StreamGuard::new(shared);
                return std::future::pending::<Response>().await;
            }
            _ => {}
        }
        let streaming = endpoint == Endpoint::Chat { stream: true };
        match reply {
            Reply::StreamThenError { .. } if !streaming => {
                return error_response(&scripted_error(kind, midstream_status(kind)));
            }
            Reply::StreamThenDrop { .. } if !streaming => return truncated_json(),
            _ => {}
        }
        match endpoint {
            Endpoint::Embed => {
                let dims = match reply {
                    Reply::Embedding { dims } => Some(dims),
                    _ => None,
                };
                let body = match kind {
                    MockKind::Gemini => gemini::embed_json(&ctx, dims),
                    _ => openai::embed_json(&ctx, dims.unwrap_or(openai::default_dims(&ctx.body))),
                };
                json_response(&body)
            }
            Endpoint::CountTokens => {
                let input = match &reply {
                    Reply::Text { usage, .. } | Reply::ToolCalls { usage, .. } => usage.input,
                    _ => 10,
                };
                json_response(&anthropic::count_tokens_json(input))
            }
            Endpoint::Chat { stream: false } => {
                if let Reply::SlowStream { chunks, interval } = &reply {
                    tokio::time::sleep(interval.saturating_mul(saturating_u32(*chunks))).await;
                }
                let plan = plan_for(&ctx, reply);
                let body = match kind {
                    MockKind::OpenAi | MockKind::AzureOpenAi => {
                        openai::chat_json(&ctx, &plan.0.answer)
                    }
                    MockKind::Anthropic => anthropic::chat_json(&ctx, &plan.0.answer),
                    MockKind::Gemini => gemini::chat_json(&ctx, &plan.0.answer),
                };
                json_response(&body)
            }
            Endpoint::Chat { stream: true } => {
                let (plan, interval) = plan_for(&ctx, reply);
                let evs = match kind {
                    MockKind::OpenAi | MockKind::AzureOpenAi => openai::stream_events(&ctx, &plan),
                    MockKind::Anthropic => anthropic::stream_events(&ctx, &plan),
                    MockKind::Gemini => gemini::stream_events(&ctx, &plan),
                };
                let frames = encode(kind, ctx.sse, evs);
                let content_type = if kind == MockKind::Gemini && !ctx.sse {
                    "application/json"
                } else {
                    "text/event-stream"
                };
                stream_response(frames, interval, StreamGuard::new(shared), content_type)
            }
        }
    })
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn echo_of(ctx: &Ctx) -> Answer {
    let text = match ctx.kind {
        MockKind::OpenAi | MockKind::AzureOpenAi | MockKind::Anthropic => {
            crate::wire::last_user_text(&ctx.body)
        }
        MockKind::Gemini => gemini::echo_text(&ctx.body),
    };
    echo_answer(&text)
}

/// Turns a chat reply into the answer, its text deltas, its ending and the slow-stream pace.
fn plan_for(ctx: &Ctx, reply: Reply) -> (StreamPlan, Option<Duration>) {
    let numbered = |chunks: usize| Answer {
        text: Some(numbered_pieces(chunks).concat()),
        calls: Vec::new(),
        usage: MockUsage {
            input: 10,
            output: chunks as u64,
            cached: 0,
            reasoning: 0,
        },
    };
    let (answer, ending, unknown_event, interval, chunks) = match reply {
        Reply::Text { text, usage } => (
            Answer {
                text: Some(text),
                calls: Vec::new(),
                usage,
            },
            Ending::Done,
            false,
            None,
            None,
        ),
        Reply::ToolCalls { text, calls, usage } => (
            Answer { text, calls, usage },
            Ending::Done,
            false,
            None,
            None,
        ),
        Reply::WithUnknownEvent => (echo_of(ctx), Ending::Done, true, None, None),
        Reply::SlowStream { chunks, interval } => (
            numbered(chunks),
            Ending::Done,
            false,
            Some(interval),
            Some(chunks),
        ),
        Reply::StreamThenError { chunks } => {
            (numbered(chunks), Ending::Error, false, None, Some(chunks))
        }
        Reply::StreamThenDrop { chunks } => {
            (numbered(chunks), Ending::Drop, false, None, Some(chunks))
        }
        // Echo, and replies meaningless for chat (Embedding), echo.
        _ => (echo_of(ctx), Ending::Done, false, None, None),
    };
    let pieces = match chunks {
        Some(n) => numbered_pieces(n),
        None => split_text(answer.text.as_deref().unwrap_or(""), 3),
    };
    let plan = StreamPlan {
        answer,
        pieces,
        ending,
        unknown_event,
    };
    (plan, interval)
}

fn scripted_error(kind: MockKind, status: u16) -> ErrorReply {
    match kind {
        MockKind::OpenAi | MockKind::AzureOpenAi => {
            openai::error_reply(kind, status, openai::scripted_error_message(status))
        }
        MockKind::Anthropic => {
            anthropic::error_reply(status, anthropic::scripted_error_message(status))
        }
        MockKind::Gemini => gemini::error_reply(status, gemini::scripted_error_message(status)),
    }
}

fn midstream_status(kind: MockKind) -> u16 {
    match kind {
        MockKind::OpenAi | MockKind::AzureOpenAi => openai::MIDSTREAM_STATUS,
        MockKind::Anthropic => anthropic::MIDSTREAM_STATUS,
        MockKind::Gemini => gemini::MIDSTREAM_STATUS,
    }
}

fn json_response(body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: &ErrorReply) -> Response {
    let mut resp = json_response(&e.body);
    *resp.status_mut() =
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    resp
}

/// A 200 JSON response whose body is cut after a few bytes.
fn truncated_json() -> Response {
    let parts: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"id\":\"trunc")),
        Err(std::io::Error::other("mock: connection dropped mid-body")),
    ];
    let mut resp = Response::new(Body::from_stream(futures::stream::iter(parts)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// One step of a streaming body.
enum Frame {
    Bytes(Bytes),
    Tick,
    Abort,
}

/// Renders abstract events in the provider's framing. OpenAI: `data:` lines (and `[DONE]`);
/// Anthropic: `event:` + `data:`; Gemini with `alt=sse`: `data:` lines ended with CRLF, as
/// Google's front end writes them; Gemini without it: a JSON array streamed element by element.
fn encode(kind: MockKind, sse: bool, evs: Vec<Ev>) -> Vec<Frame> {
    let gemini_array = kind == MockKind::Gemini && !sse;
    let eol = if kind == MockKind::Gemini {
        "\r\n"
    } else {
        "\n"
    };
    let mut frames = Vec::with_capacity(evs.len() + 1);
    let mut first = true;
    let mut aborted = false;
    for ev in evs {
        let text = match ev {
            Ev::Tick => {
                frames.push(Frame::Tick);
                continue;
            }
            Ev::Abort => {
                aborted = true;
                frames.push(Frame::Abort);
                continue;
            }
            Ev::Json { data, .. } if gemini_array => {
                let sep = if first { "[" } else { ",\r\n" };
                first = false;
                format!("{sep}{data}")
            }
            Ev::Json { event, data } => {
                let named = match (kind, event) {
                    (MockKind::Anthropic, Some(name)) => format!("event: {name}{eol}"),
                    _ => String::new(),
                };
                format!("{named}data: {data}{eol}{eol}")
            }
            Ev::Data(s) => format!("data: {s}{eol}{eol}"),
            Ev::Comment(s) => format!(": {s}{eol}{eol}"),
        };
        frames.push(Frame::Bytes(Bytes::from(text)));
    }
    if gemini_array && !aborted {
        frames.push(Frame::Bytes(Bytes::from_static(b"]")));
    }
    frames
}

/// A body yielding each frame as its own chunk. The guard is finished when the last frame is
/// handed over (or the mock aborts on purpose); dropped earlier, it counts a cancellation.
fn stream_response(
    frames: Vec<Frame>,
    interval: Option<Duration>,
    guard: StreamGuard,
    content_type: &'static str,
) -> Response {
    // The first tick passes at once: the first delta goes out immediately and the next ones
    // `interval` apart, so a slow stream has begun before it goes quiet.
    let state = (VecDeque::from(frames), guard, true, true);
    let stream = futures::stream::unfold(
        state,
        move |(mut frames, mut guard, first, mut first_tick)| async move {
            loop {
                let frame = frames.pop_front()?;
                if !first && !matches!(frame, Frame::Tick) {
                    // One `Pending` between events makes hyper flush what it has buffered, so each
                    // event goes out on its own (and an abort follows data the client received).
                    tokio::task::yield_now().await;
                }
                match frame {
                    Frame::Tick => {
                        if let Some(d) = interval.filter(|_| !first_tick) {
                            tokio::time::sleep(d).await;
                        }
                        first_tick = false;
                    }
                    Frame::Bytes(b) => {
                        if frames.iter().all(|f| matches!(f, Frame::Tick)) {
                            guard.finish();
                        }
                        return Some((Ok(b), (frames, guard, false, first_tick)));
                    }
                    Frame::Abort => {
                        guard.finish();
                        frames.clear();
                        let err = std::io::Error::other("mock: connection dropped mid-stream");
                        return Some((Err(err), (frames, guard, false, first_tick)));
                    }
                }
            }
        },
    );
    let mut resp = Response::new(Body::from_stream(stream));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
