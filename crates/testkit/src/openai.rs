//! OpenAI and Azure OpenAI wire format (they share it), from the OpenAI API reference: chat
//! completion and `chat.completion.chunk` objects, `stream_options.include_usage`, embeddings
//! (float or base64), the `{"error":{message,type,param,code}}` body. Azure adds its routing
//! (`/openai/deployments/{d}/...?api-version=`), the `api-key` header, gateway-style
//! `{"error":{"code":"401","message":..}}` bodies, and content-filter annotations
//! (`prompt_filter_results`, per-choice `content_filter_results`, a first chunk with empty
//! `choices`).

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::wire::{
    embedding_values, fragments, rough_tokens, Answer, Ctx, Ending, Endpoint, ErrorReply, Ev,
    StreamPlan, CREATED,
};
use crate::{MockKind, MockUsage, RecordedRequest};

/// Routes, authenticates and validates a request like the real API would.
pub(crate) fn route(
    kind: MockKind,
    req: &RecordedRequest,
    seq: usize,
) -> Result<(Endpoint, Ctx), ErrorReply> {
    let azure = kind == MockKind::AzureOpenAi;
    let (op, deployment) = if azure {
        azure_operation(req)?
    } else {
        let op = match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/v1/chat/completions") => "chat",
            ("POST", "/v1/embeddings") => "embed",
            _ => {
                let msg = format!("Invalid URL ({} {})", req.method, req.path);
                return Err(error_reply(kind, 404, &msg));
            }
        };
        let bearer = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| !k.trim().is_empty());
        if !bearer {
            return Err(ErrorReply::new(401, openai_error_body(
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
                None,
            )));
        }
        (op, None)
    };
    let body = &req.body;
    if !body.is_object() {
        return Err(ErrorReply::new(
            400,
            openai_error_body(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                "invalid_request_error",
                None,
                None,
            ),
        ));
    }
    let required = if op == "chat" { "messages" } else { "input" };
    if body.get(required).is_none() {
        let msg = format!("Missing required parameter: '{required}'.");
        return Err(ErrorReply::new(
            400,
            openai_error_body(
                &msg,
                "invalid_request_error",
                Some(required),
                Some("missing_required_parameter"),
            ),
        ));
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(deployment)
        .unwrap_or_else(|| "gpt-4o-mini".to_owned());
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = stream
        && body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true);
    let endpoint = if op == "chat" {
        Endpoint::Chat { stream }
    } else {
        Endpoint::Embed
    };
    let ctx = Ctx {
        kind,
        model,
        seq,
        include_usage,
        sse: true,
        body: body.clone(),
    };
    Ok((endpoint, ctx))
}

/// Azure: `/openai/deployments/{d}/{chat/completions|embeddings}`, `api-version` required
/// (404 without, like Azure), then `api-key` (or an Entra ID bearer token).
fn azure_operation(req: &RecordedRequest) -> Result<(&'static str, Option<String>), ErrorReply> {
    let not_found = || ErrorReply::new(404, azure_gateway_error(404, "Resource not found"));
    let rest = req
        .path
        .strip_prefix("/openai/deployments/")
        .ok_or_else(not_found)?;
    let (deployment, op) = rest.split_once('/').ok_or_else(not_found)?;
    let op = match (req.method.as_str(), op) {
        ("POST", "chat/completions") => "chat",
        ("POST", "embeddings") => "embed",
        _ => return Err(not_found()),
    };
    let has_version = req.query.as_deref().is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.strip_prefix("api-version=")
                .is_some_and(|v| !v.is_empty())
        })
    });
    if deployment.is_empty() || !has_version {
        return Err(not_found());
    }
    let key = req.header("api-key").is_some_and(|k| !k.trim().is_empty())
        || req
            .header("authorization")
            .is_some_and(|v| v.starts_with("Bearer "));
    if !key {
        return Err(ErrorReply::new(
            401,
            azure_gateway_error(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.",
            ),
        ));
    }
    Ok((op, Some(deployment.to_owned())))
}

pub(crate) fn openai_error_body(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

/// Azure's front door answers auth, routing and throttling errors with a string `code`.
fn azure_gateway_error(status: u16, message: &str) -> Value {
    json!({"error": {"code": status.to_string(), "message": message}})
}

/// The body of a scripted `Reply::Error` (or of a rejection) for `status`.
pub(crate) fn error_reply(kind: MockKind, status: u16, message: &str) -> ErrorReply {
    let azure = kind == MockKind::AzureOpenAi;
    let body = match status {
        401 | 404 | 429 if azure => azure_gateway_error(status, message),
        401 => openai_error_body(
            message,
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
        404 => openai_error_body(message, "invalid_request_error", None, None),
        429 => openai_error_body(message, "requests", None, Some("rate_limit_exceeded")),
        s if s >= 500 => openai_error_body(message, "server_error", None, None),
        _ => openai_error_body(message, "invalid_request_error", None, None),
    };
    ErrorReply::new(status, body)
}

pub(crate) fn scripted_error_message(status: u16) -> &'static str {
    match status {
        401 => "Incorrect API key provided.",
        404 => "The model does not exist or you do not have access to it.",
        429 => "Rate limit reached for requests. Please try again later.",
        s if s >= 500 => "The server had an error while processing your request. Sorry about that!",
        _ => "Invalid request.",
    }
}

/// The status a non-streaming request gets for `Reply::StreamThenError`.
pub(crate) const MIDSTREAM_STATUS: u16 = 500;

fn usage_json(u: &MockUsage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": u.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn safe_filters() -> Value {
    let safe = json!({"filtered": false, "severity": "safe"});
    json!({"hate": safe, "self_harm": safe, "sexual": safe, "violence": safe})
}

fn prompt_filter_results() -> Value {
    json!([{"prompt_index": 0, "content_filter_results": safe_filters()}])
}

fn id(ctx: &Ctx) -> String {
    format!("chatcmpl-mock{}", ctx.seq)
}

fn finish_reason(answer: &Answer) -> &'static str {
    if answer.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    }
}

/// A non-streaming `chat.completion` object.
pub(crate) fn chat_json(ctx: &Ctx, answer: &Answer) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": answer.text,
        "refusal": null,
        "annotations": []
    });
    if !answer.calls.is_empty() {
        let calls: Vec<Value> = answer
            .calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        message["tool_calls"] = Value::Array(calls);
    }
    let mut choice = json!({
        "index": 0,
        "message": message,
        "logprobs": null,
        "finish_reason": finish_reason(answer)
    });
    let mut out = json!({
        "id": id(ctx),
        "object": "chat.completion",
        "created": CREATED,
        "model": ctx.model,
        "choices": [],
        "usage": usage_json(&answer.usage),
        "system_fingerprint": "fp_mock"
    });
    if ctx.kind == MockKind::AzureOpenAi {
        choice["content_filter_results"] = safe_filters();
        out["prompt_filter_results"] = prompt_filter_results();
    } else {
        out["service_tier"] = json!("default");
    }
    out["choices"] = json!([choice]);
    out
}

/// The `chat.completion.chunk` sequence of a stream.
pub(crate) fn stream_events(ctx: &Ctx, plan: &StreamPlan) -> Vec<Ev> {
    let azure = ctx.kind == MockKind::AzureOpenAi;
    let chunk = |delta: Value, finish: Option<&str>, filters: Option<Value>| -> Value {
        let mut choice =
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish});
        if let Some(f) = filters {
            choice["content_filter_results"] = f;
        }
        let mut c = json!({
            "id": id(ctx),
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": ctx.model,
            "system_fingerprint": "fp_mock",
            "choices": [choice]
        });
        // Documented: with include_usage every chunk carries `usage: null` but the last.
        if ctx.include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let filters = |on: bool| azure.then(|| if on { safe_filters() } else { json!({}) });

    let mut evs = Vec::new();
    if azure {
        // Azure's prompt annotation frame: empty choices, empty id/model/object.
        evs.push(Ev::json(json!({
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": prompt_filter_results()
        })));
    }
    let answer = &plan.answer;
    let first_content = if plan.pieces.is_empty() && !answer.calls.is_empty() {
        Value::Null
    } else {
        json!("")
    };
    evs.push(Ev::json(chunk(
        json!({"role": "assistant", "content": first_content, "refusal": null}),
        None,
        filters(false),
    )));
    if plan.unknown_event {
        evs.push(Ev::Comment("keep-alive"));
        let mut odd = Map::new();
        odd.insert("id".into(), json!(id(ctx)));
        odd.insert("object".into(), json!("chat.completion.chunk"));
        odd.insert("created".into(), json!(CREATED));
        odd.insert("model".into(), json!(ctx.model));
        odd.insert("choices".into(), json!([]));
        odd.insert(
            "x_mock_unknown".into(),
            json!({"kind": "future_annotation"}),
        );
        evs.push(Ev::json(Value::Object(odd)));
    }
    for piece in &plan.pieces {
        evs.push(Ev::Tick);
        evs.push(Ev::json(chunk(
            json!({"content": piece}),
            None,
            filters(true),
        )));
    }
    // Tool calls: a header per call (index, id, type, name, empty arguments), with the
    // argument fragments of different calls interleaved, as OpenAI-compatible servers may do.
    let frags: Vec<Vec<String>> = answer
        .calls
        .iter()
        .map(|c| fragments(&c.arguments))
        .collect();
    let rounds = frags.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        for (i, call) in answer.calls.iter().enumerate() {
            if round == 0 {
                let header = json!({"tool_calls": [{
                    "index": i, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}
                }]});
                evs.push(Ev::json(chunk(header, None, filters(true))));
            }
            if let Some(f) = frags[i].get(round) {
                let d = json!({"tool_calls": [{"index": i, "function": {"arguments": f}}]});
                evs.push(Ev::json(chunk(d, None, filters(true))));
            }
        }
    }
    match plan.ending {
        Ending::Done => {
            evs.push(Ev::json(chunk(
                json!({}),
                Some(finish_reason(answer)),
                filters(true),
            )));
            if ctx.include_usage {
                evs.push(Ev::json(json!({
                    "id": id(ctx),
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": ctx.model,
                    "system_fingerprint": "fp_mock",
                    "choices": [],
                    "usage": usage_json(&answer.usage)
                })));
            }
            evs.push(Ev::Data("[DONE]"));
        }
        Ending::Error => evs.push(Ev::json(openai_error_body(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ))),
        Ending::Drop => evs.push(Ev::Abort),
    }
    evs
}

/// Embedding inputs: a string, an array of strings, a token array, or an array of them.
fn inputs(body: &Value) -> Vec<String> {
    match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The embeddings list object; `encoding_format: "base64"` gets little-endian f32 bytes.
pub(crate) fn embed_json(ctx: &Ctx, dims: usize) -> Value {
    let base64 = ctx.body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let texts = inputs(&ctx.body);
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let values = embedding_values(t, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(values)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = texts.iter().map(|t| rough_tokens(t)).sum();
    json!({
        "object": "list",
        "data": data,
        "model": ctx.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    })
}

/// The dimensions an unscripted embeddings answer uses: the request's `dimensions`, else 8.
pub(crate) fn default_dims(body: &Value) -> usize {
    body.get("dimensions")
        .and_then(Value::as_u64)
        .and_then(|d| usize::try_from(d).ok())
        .unwrap_or(8)
}

#[cfg(test)]
mod tests;
