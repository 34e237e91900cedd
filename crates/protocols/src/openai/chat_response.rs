//! Whole (non-streamed) Chat Completions responses: decoding an upstream's `chat.completion`
//! into the canonical [`ChatResponse`], and rendering a canonical response for an OpenAI client.

use super::chat_request::arguments_text;
use super::error::in_band_error;
use super::wire::{
    InChoice, InResponse, InResponseHead, OutChoice, OutFunctionCall, OutRespMessage, OutResponse,
    OutToolCall,
};
use crate::codec::ResponseMode;
use crate::error::DecodeError;
use bytes::Bytes;
use serde_json::Value;
use switchboard_types::{
    ChatResponse, Choice, ContentPart, FinishReason, Message, Protocol, RawBytes, Role, ToolCall,
};

/// Decodes an upstream `chat.completion` body. Keeps the body in `resp.raw` for the
/// same-protocol fast path (except in `JsonViaTool` mode, where the body does not say what the
/// client will be told).
///
/// An `error` object in a 200 body (some compatible servers do that) is
/// `DecodeError::Upstream`.
pub fn parse_chat_response(body: Bytes, mode: &ResponseMode) -> Result<ChatResponse, DecodeError> {
    let wire: InResponse = crate::from_json(&body)
        .map_err(|e| DecodeError::Malformed(format!("chat completion: {e}")))?;
    if let Some(error) = wire.error.as_ref().filter(|e| !e.is_null()) {
        return Err(in_band_error(error));
    }
    let Some(choices) = wire.choices else {
        return Err(DecodeError::Malformed(
            "chat completion without `choices`".to_owned(),
        ));
    };
    let mut converted = false;
    let choices = choices
        .into_iter()
        .map(|c| choice(c, mode, &mut converted))
        .collect();
    Ok(ChatResponse {
        id: wire.id.unwrap_or_default(),
        model: wire.model.unwrap_or_default(),
        created: wire.created.unwrap_or(0),
        choices,
        usage: wire.usage.as_ref().map(super::usage_from_wire),
        system_fingerprint: wire.system_fingerprint,
        raw: (!converted).then_some(RawBytes {
            protocol: Protocol::OpenAi,
            body,
        }),
    })
}

/// Decodes only what the gateway itself needs (id, model, usage, an in-band error) from an
/// upstream `chat.completion` that goes back to an OpenAI client byte for byte: the choices are
/// skipped, not decoded, and the result has none. For the same-protocol fast path only, where
/// the client gets `resp.raw` as is; anything that needs the content decodes `raw` with
/// [`parse_chat_response`].
pub fn parse_chat_response_passthrough(body: Bytes) -> Result<ChatResponse, DecodeError> {
    let head: InResponseHead = crate::from_json(&body)
        .map_err(|e| DecodeError::Malformed(format!("chat completion: {e}")))?;
    if let Some(error) = head.error.as_ref().filter(|e| !e.is_null()) {
        return Err(in_band_error(error));
    }
    if head.choices.is_none() {
        return Err(DecodeError::Malformed(
            "chat completion without `choices`".to_owned(),
        ));
    }
    Ok(ChatResponse {
        id: head.id.unwrap_or_default(),
        model: head.model.unwrap_or_default(),
        created: head.created.unwrap_or(0),
        choices: Vec::new(),
        usage: head.usage.as_ref().map(super::usage_from_wire),
        system_fingerprint: head.system_fingerprint,
        raw: Some(RawBytes {
            protocol: Protocol::OpenAi,
            body,
        }),
    })
}

fn choice(c: InChoice, mode: &ResponseMode, converted: &mut bool) -> Choice {
    let mut message = Message::new(Role::Assistant, Vec::new());
    let mut finish_reason = c.finish_reason.as_deref().map(super::finish_from_wire);
    if let Some(m) = c.message {
        if let Some(reasoning) = m
            .reasoning_content
            .or(m.reasoning)
            .filter(|r| !r.is_empty())
        {
            message.content.push(ContentPart::Thinking {
                text: reasoning,
                signature: None,
            });
        }
        match m.content {
            Value::String(text) => message.content.push(ContentPart::Text { text }),
            // Some servers answer with an array of text parts.
            Value::Array(parts) => {
                for part in parts {
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        message.content.push(ContentPart::text(text));
                    }
                }
            }
            _ => {}
        }
        message.refusal = m.refusal;
        for call in m.tool_calls.unwrap_or_default() {
            message.tool_calls.push(ToolCall {
                id: call.id,
                name: call.function.name.clone(),
                arguments: arguments_text(call.function),
            });
        }
        if let Some(f) = m.function_call {
            message.tool_calls.push(ToolCall {
                id: format!("call_{}", c.index),
                name: f.name.clone(),
                arguments: arguments_text(f),
            });
        }
    }
    if let ResponseMode::JsonViaTool { tool_name } = mode {
        if let Some(pos) = message.tool_calls.iter().position(|t| &t.name == tool_name) {
            let call = message.tool_calls.remove(pos);
            message.content.push(ContentPart::Text {
                text: call.arguments,
            });
            finish_reason = Some(FinishReason::Stop);
            *converted = true;
        }
    }
    Choice {
        index: c.index,
        message,
        finish_reason,
        logprobs: c.logprobs.filter(|l| !l.is_null()),
    }
}

/// Renders a `chat.completion` for an OpenAI client. Fast path: a response decoded from an
/// OpenAI-compatible upstream is returned byte for byte.
///
/// Responses from other providers get what OpenAI clients rely on: a `chatcmpl-` id when they
/// have none, `created` now when unknown, `content: null` when the turn is only tool calls.
/// Reasoning (Anthropic thinking) is shown as `reasoning_content`, the field DeepSeek and vLLM
/// use; OpenAI SDKs ignore it.
pub fn render_chat_response(resp: &ChatResponse) -> Vec<u8> {
    if let Some(raw) = resp.raw.as_ref().filter(|r| r.protocol == Protocol::OpenAi) {
        return raw.body.to_vec();
    }
    let id = if resp.id.is_empty() {
        super::new_completion_id()
    } else {
        resp.id.clone()
    };
    let created = if resp.created > 0 {
        resp.created
    } else {
        crate::unix_now()
    };
    let out = OutResponse {
        id: &id,
        object: "chat.completion",
        created,
        model: &resp.model,
        choices: resp.choices.iter().map(out_choice).collect(),
        usage: resp.usage.as_ref().map(super::usage_to_wire),
        system_fingerprint: resp.system_fingerprint.as_deref(),
    };
    super::to_json(&out)
}

fn out_choice(c: &Choice) -> OutChoice<'_> {
    let mut text = String::new();
    let mut reasoning = String::new();
    for part in &c.message.content {
        match part {
            ContentPart::Text { text: t } => text.push_str(t),
            ContentPart::Thinking { text: t, .. } => reasoning.push_str(t),
            // Assistant images have no OpenAI field.
            ContentPart::Image { .. } => {}
        }
    }
    let has_text = c
        .message
        .content
        .iter()
        .any(|p| matches!(p, ContentPart::Text { .. }));
    let content = if has_text || c.message.tool_calls.is_empty() && c.message.refusal.is_none() {
        Some(text)
    } else {
        None
    };
    OutChoice {
        index: c.index,
        message: OutRespMessage {
            role: "assistant",
            content,
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            tool_calls: c
                .message
                .tool_calls
                .iter()
                .map(|t| OutToolCall {
                    id: &t.id,
                    kind: "function",
                    function: OutFunctionCall {
                        name: &t.name,
                        arguments: &t.arguments,
                    },
                })
                .collect(),
            refusal: c.message.refusal.as_deref(),
        },
        logprobs: c.logprobs.as_ref(),
        finish_reason: c.finish_reason.as_ref().map(super::finish_to_wire),
    }
}
