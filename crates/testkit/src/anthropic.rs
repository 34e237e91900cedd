//! Anthropic Messages API wire format, from the API reference: `x-api-key` +
//! `anthropic-version` headers, required `max_tokens`, the message object with content blocks,
//! the named SSE events (`message_start`, `ping`, `content_block_start/delta/stop` with
//! `text_delta` / `input_json_delta`, `message_delta`, `message_stop`, `error`), usage where
//! `input_tokens` excludes cache reads, and `{"type":"error","error":{type,message}}` errors.

use serde_json::{json, Value};

use crate::wire::{
    fragments, parse_args, Answer, Ctx, Ending, Endpoint, ErrorReply, Ev, StreamPlan,
};
use crate::{MockKind, MockUsage, RecordedRequest};

pub(crate) fn route(req: &RecordedRequest, seq: usize) -> Result<(Endpoint, Ctx), ErrorReply> {
    let endpoint = match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/messages") => Endpoint::Chat { stream: false },
        ("POST", "/v1/messages/count_tokens") => Endpoint::CountTokens,
        _ => return Err(error_reply(404, "Not found")),
    };
    if req.header("x-api-key").is_none_or(|k| k.trim().is_empty()) {
        return Err(error_reply(401, "x-api-key header is required"));
    }
    if req.header("anthropic-version").is_none() {
        return Err(error_reply(400, "anthropic-version: header is required"));
    }
    let body = &req.body;
    if !body.is_object() {
        return Err(error_reply(400, "The request body is not valid JSON."));
    }
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(error_reply(400, "messages: Field required"));
    }
    let endpoint = match endpoint {
        Endpoint::Chat { .. } => {
            if body.get("max_tokens").and_then(Value::as_u64).is_none() {
                return Err(error_reply(400, "max_tokens: Field required"));
            }
            Endpoint::Chat {
                stream: body.get("stream").and_then(Value::as_bool) == Some(true),
            }
        }
        other => other,
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-sonnet-4-5")
        .to_owned();
    let ctx = Ctx {
        kind: MockKind::Anthropic,
        model,
        seq,
        include_usage: false,
        sse: true,
        body: body.clone(),
    };
    Ok((endpoint, ctx))
}

/// The documented error type for each status.
fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

pub(crate) fn error_reply(status: u16, message: &str) -> ErrorReply {
    ErrorReply::new(status, error_body(error_type(status), message))
}

fn error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

pub(crate) fn scripted_error_message(status: u16) -> &'static str {
    match status {
        401 => "invalid x-api-key",
        429 => "Number of request tokens has exceeded your per-minute rate limit.",
        529 => "Overloaded",
        s if s >= 500 => "Internal server error",
        _ => "Invalid request.",
    }
}

/// Anthropic signals overload (not a plain 500) when a request fails mid-flight.
pub(crate) const MIDSTREAM_STATUS: u16 = 529;

/// Anthropic's `input_tokens` is what was neither read from nor written to the cache.
fn usage_json(u: &MockUsage, output: u64) -> Value {
    json!({
        "input_tokens": u.input.saturating_sub(u.cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached,
        "output_tokens": output
    })
}

fn id(ctx: &Ctx) -> String {
    format!("msg_mock{}", ctx.seq)
}

fn stop_reason(answer: &Answer) -> &'static str {
    if answer.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    }
}

/// A non-streaming message object.
pub(crate) fn chat_json(ctx: &Ctx, answer: &Answer) -> Value {
    let mut content = Vec::new();
    if let Some(text) = &answer.text {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in &answer.calls {
        content.push(json!({
            "type": "tool_use", "id": call.id, "name": call.name, "input": parse_args(&call.arguments)
        }));
    }
    json!({
        "id": id(ctx),
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop_reason(answer),
        "stop_sequence": null,
        "usage": usage_json(&answer.usage, answer.usage.output)
    })
}

/// `/v1/messages/count_tokens` answer.
pub(crate) fn count_tokens_json(input_tokens: u64) -> Value {
    json!({"input_tokens": input_tokens})
}

/// The named-event sequence of a stream.
pub(crate) fn stream_events(ctx: &Ctx, plan: &StreamPlan) -> Vec<Ev> {
    let answer = &plan.answer;
    let mut evs = vec![
        Ev::named(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id(ctx), "type": "message", "role": "assistant", "model": ctx.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": usage_json(&answer.usage, 1)
            }}),
        ),
        Ev::named("ping", json!({"type": "ping"})),
    ];
    if plan.unknown_event {
        // The docs ask clients to ignore event types they do not know.
        evs.push(Ev::named(
            "mock_future_event",
            json!({"type": "mock_future_event", "detail": {"note": "unknown to clients"}}),
        ));
    }
    let mut index = 0usize;
    if !plan.pieces.is_empty() {
        evs.push(Ev::named(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        for piece in &plan.pieces {
            evs.push(Ev::Tick);
            evs.push(Ev::named(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        match plan.ending {
            Ending::Done => {}
            Ending::Error => {
                evs.push(Ev::named(
                    "error",
                    error_body("overloaded_error", "Overloaded"),
                ));
                return evs;
            }
            Ending::Drop => {
                evs.push(Ev::Abort);
                return evs;
            }
        }
        evs.push(Ev::named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for call in &answer.calls {
        evs.push(Ev::named(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": call.id, "name": call.name, "input": {}
            }}),
        ));
        for frag in fragments(&call.arguments) {
            evs.push(Ev::named(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": frag}}),
            ));
        }
        evs.push(Ev::named(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    match plan.ending {
        Ending::Done => {
            evs.push(Ev::named(
                "message_delta",
                json!({"type": "message_delta",
                       "delta": {"stop_reason": stop_reason(answer), "stop_sequence": null},
                       "usage": {"output_tokens": answer.usage.output}}),
            ));
            evs.push(Ev::named("message_stop", json!({"type": "message_stop"})));
        }
        Ending::Error => evs.push(Ev::named(
            "error",
            error_body("overloaded_error", "Overloaded"),
        )),
        Ending::Drop => evs.push(Ev::Abort),
    }
    evs
}

#[cfg(test)]
mod tests;
