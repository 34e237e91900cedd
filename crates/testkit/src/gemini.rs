//! Gemini API (Google AI, `v1beta`) wire format, from the API reference: `models/{m}:
//! generateContent`, `:streamGenerateContent` (`alt=sse` gives `data:` lines, otherwise a
//! streamed JSON array), `:batchEmbedContents` / `:embedContent`, the key in `x-goog-api-key`
//! or `?key=`, `GenerateContentResponse` with `candidates[].content.parts` (text parts,
//! `functionCall` parts whole), `usageMetadata` (`promptTokenCount` includes
//! `cachedContentTokenCount`; `candidatesTokenCount` excludes `thoughtsTokenCount`), and the
//! Google RPC error body `{"error":{code,message,status}}`.

use serde_json::{json, Value};

use crate::wire::{
    embedding_values, parse_args, text_of_parts, Answer, Ctx, Ending, Endpoint, ErrorReply, Ev,
    StreamPlan,
};
use crate::{MockKind, MockUsage, RecordedRequest};

pub(crate) fn route(req: &RecordedRequest, seq: usize) -> Result<(Endpoint, Ctx), ErrorReply> {
    let not_found = || {
        error_reply(
            404,
            &format!("Requested entity was not found: {}", req.path),
        )
    };
    let rest = req
        .path
        .strip_prefix("/v1beta/models/")
        .or_else(|| req.path.strip_prefix("/v1/models/"))
        .ok_or_else(not_found)?;
    let (model, method) = rest.rsplit_once(':').ok_or_else(not_found)?;
    if req.method != "POST" || model.is_empty() {
        return Err(not_found());
    }
    let endpoint = match method {
        "generateContent" => Endpoint::Chat { stream: false },
        "streamGenerateContent" => Endpoint::Chat { stream: true },
        "batchEmbedContents" | "embedContent" => Endpoint::Embed,
        _ => return Err(not_found()),
    };
    let query_has = |name: &str| -> Option<String> {
        req.query.as_deref().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .map(str::to_owned)
        })
    };
    let key = req
        .header("x-goog-api-key")
        .is_some_and(|k| !k.trim().is_empty())
        || query_has("key").is_some_and(|k| !k.is_empty());
    if !key {
        // What Google answers a call without any API key.
        return Err(error_reply(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        ));
    }
    let body = &req.body;
    if !body.is_object() {
        return Err(error_reply(400, "Invalid JSON payload received."));
    }
    let required = match (endpoint, method) {
        (Endpoint::Chat { .. }, _) => "contents",
        (_, "batchEmbedContents") => "requests",
        _ => "content",
    };
    if body.get(required).is_none() {
        return Err(error_reply(
            400,
            &format!("* GenerateContentRequest.{required}: must be specified\n"),
        ));
    }
    let ctx = Ctx {
        kind: MockKind::Gemini,
        model: model.to_owned(),
        seq,
        include_usage: false,
        sse: query_has("alt").as_deref() == Some("sse"),
        body: body.clone(),
    };
    Ok((endpoint, ctx))
}

/// The canonical Google RPC status name for an HTTP status.
fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if s >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

fn error_body(status: u16, message: &str) -> Value {
    json!({"error": {"code": status, "message": message, "status": status_name(status)}})
}

pub(crate) fn error_reply(status: u16, message: &str) -> ErrorReply {
    ErrorReply::new(status, error_body(status, message))
}

pub(crate) fn scripted_error_message(status: u16) -> &'static str {
    match status {
        429 => "Resource has been exhausted (e.g. check quota).",
        503 => "The model is overloaded. Please try again later.",
        s if s >= 500 => "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        _ => "Request contains an invalid argument.",
    }
}

/// Google reports an overloaded model as 503 UNAVAILABLE.
pub(crate) const MIDSTREAM_STATUS: u16 = 503;

/// Text of the last user turn (`role` "user" or absent) in `contents`.
pub(crate) fn echo_text(body: &Value) -> String {
    body.get("contents")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .rev()
                .find(|c| c.get("role").is_none_or(|r| r == "user"))
        })
        .map(|c| text_of_parts(&c["parts"]))
        .unwrap_or_default()
}

/// Full usage; zero optional counts are omitted, as proto3 JSON does.
fn usage_json(u: &MockUsage) -> Value {
    let mut m = json!({
        "promptTokenCount": u.input,
        "candidatesTokenCount": u.output.saturating_sub(u.reasoning),
        "totalTokenCount": u.input + u.output
    });
    if u.cached > 0 {
        m["cachedContentTokenCount"] = json!(u.cached);
    }
    if u.reasoning > 0 {
        m["thoughtsTokenCount"] = json!(u.reasoning);
    }
    m
}

/// What intermediate stream chunks carry: the prompt count only.
fn partial_usage(u: &MockUsage) -> Value {
    json!({"promptTokenCount": u.input, "totalTokenCount": u.input})
}

fn response(ctx: &Ctx, parts: Vec<Value>, finish: bool, usage: Value) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if finish {
        candidate["finishReason"] = json!("STOP");
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": ctx.model,
        "responseId": format!("mockresp{}", ctx.seq)
    })
}

fn call_parts(answer: &Answer) -> Vec<Value> {
    answer
        .calls
        .iter()
        .map(|c| json!({"functionCall": {"name": c.name, "args": parse_args(&c.arguments)}}))
        .collect()
}

/// A non-streaming `GenerateContentResponse`. Gemini ends tool turns with `STOP` too.
pub(crate) fn chat_json(ctx: &Ctx, answer: &Answer) -> Value {
    let mut parts = Vec::new();
    if let Some(text) = &answer.text {
        parts.push(json!({"text": text}));
    }
    parts.extend(call_parts(answer));
    response(ctx, parts, true, usage_json(&answer.usage))
}

/// The chunk sequence of a stream; the last chunk has `finishReason` and the full usage.
pub(crate) fn stream_events(ctx: &Ctx, plan: &StreamPlan) -> Vec<Ev> {
    let answer = &plan.answer;
    let mut evs = Vec::new();
    if plan.unknown_event {
        evs.push(Ev::json(json!({
            "usageMetadata": partial_usage(&answer.usage),
            "modelVersion": ctx.model,
            "responseId": format!("mockresp{}", ctx.seq),
            "mockFutureField": {"note": "unknown to clients"}
        })));
    }
    let calls = call_parts(answer);
    let done = plan.ending == Ending::Done;
    let n = plan.pieces.len();
    for (i, piece) in plan.pieces.iter().enumerate() {
        let last = done && calls.is_empty() && i + 1 == n;
        let usage = if last {
            usage_json(&answer.usage)
        } else {
            partial_usage(&answer.usage)
        };
        evs.push(Ev::Tick);
        evs.push(Ev::json(response(
            ctx,
            vec![json!({"text": piece})],
            last,
            usage,
        )));
    }
    match plan.ending {
        Ending::Done => {
            if !calls.is_empty() || n == 0 {
                let parts = if calls.is_empty() {
                    vec![json!({"text": ""})]
                } else {
                    calls
                };
                evs.push(Ev::json(response(
                    ctx,
                    parts,
                    true,
                    usage_json(&answer.usage),
                )));
            }
        }
        Ending::Error => evs.push(Ev::json(error_body(
            503,
            "The model is overloaded. Please try again later.",
        ))),
        Ending::Drop => evs.push(Ev::Abort),
    }
    evs
}

/// `batchEmbedContents` (`{"embeddings":[{"values"}]}`) or `embedContent`
/// (`{"embedding":{"values"}}`), depending on the request body.
pub(crate) fn embed_json(ctx: &Ctx, dims: Option<usize>) -> Value {
    let one = |req: &Value| -> Value {
        let text = text_of_parts(&req["content"]["parts"]);
        let d = dims
            .or_else(|| {
                req.get("outputDimensionality")
                    .and_then(Value::as_u64)
                    .and_then(|d| usize::try_from(d).ok())
            })
            .unwrap_or(8);
        json!({"values": embedding_values(&text, d)})
    };
    match ctx.body.get("requests").and_then(Value::as_array) {
        Some(reqs) => json!({"embeddings": reqs.iter().map(one).collect::<Vec<_>>()}),
        None => json!({"embedding": one(&ctx.body)}),
    }
}

#[cfg(test)]
mod tests;
