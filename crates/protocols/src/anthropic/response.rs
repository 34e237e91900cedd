//! Whole (non-streamed) Messages responses: decoding an Anthropic target's body into the
//! canonical `ChatResponse`, and rendering a canonical response (from any provider) for an
//! Anthropic client.
//!
//! `created` is left 0 when decoding: Anthropic bodies carry no timestamp and this crate reads
//! no clock, so the server fills it in before rendering for OpenAI clients.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_types::{
    ChatResponse, Choice, ContentPart, Message, Protocol, RawBytes, Role, ToolCall,
};

use super::wire::{
    finish_from_wire, finish_to_wire, message_id, upstream_error, usage_to_wire, WireUsage,
};
use crate::codec::ResponseMode;
use crate::error::DecodeError;
use switchboard_types::FinishReason;

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// `redacted_thinking`, server tool blocks and any later block type: no canonical form.
    #[serde(other)]
    Other,
}

/// Decodes an Anthropic Messages response. With `ResponseMode::JsonViaTool` the forced tool's
/// input becomes the text content and the finish reason `Stop`.
pub fn parse_messages_response(
    body: Bytes,
    mode: &ResponseMode,
) -> Result<ChatResponse, DecodeError> {
    let value: Value =
        crate::from_json(&body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if value.get("type").and_then(Value::as_str) == Some("error") {
        return Err(upstream_error(&value));
    }
    let wire: WireMessage =
        serde_json::from_value(value).map_err(|e| DecodeError::Malformed(e.to_string()))?;

    let json_tool = match mode {
        ResponseMode::JsonViaTool { tool_name } => Some(tool_name.as_str()),
        ResponseMode::Plain => None,
    };
    let mut message = Message::new(Role::Assistant, Vec::new());
    let mut answered_by_json_tool = false;
    for block in wire.content {
        match block {
            WireBlock::Text { text } => message.content.push(ContentPart::Text { text }),
            WireBlock::Thinking {
                thinking,
                signature,
            } => message.content.push(ContentPart::Thinking {
                text: thinking,
                signature,
            }),
            WireBlock::ToolUse { name, input, .. } if Some(name.as_str()) == json_tool => {
                message.content.push(ContentPart::text(input.to_string()));
                answered_by_json_tool = true;
            }
            WireBlock::ToolUse { id, name, input } => message.tool_calls.push(ToolCall {
                id,
                name,
                arguments: input.to_string(),
            }),
            WireBlock::Other => {}
        }
    }
    let finish_reason = wire.stop_reason.as_deref().map(|reason| {
        match finish_from_wire(reason, wire.stop_sequence.clone()) {
            FinishReason::ToolCalls if answered_by_json_tool => FinishReason::Stop,
            other => other,
        }
    });
    Ok(ChatResponse {
        id: wire.id,
        model: wire.model,
        created: 0,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason,
            logprobs: None,
        }],
        usage: wire.usage.map(WireUsage::to_canonical),
        system_fingerprint: None,
        // The body is only a faithful rendering of the canonical response in plain mode.
        raw: match mode {
            ResponseMode::Plain => Some(RawBytes {
                protocol: Protocol::Anthropic,
                body,
            }),
            ResponseMode::JsonViaTool { .. } => None,
        },
    })
}

/// What the gateway needs of a Messages body that goes back to an Anthropic client byte for byte:
/// the content blocks are skipped, not decoded.
#[derive(Deserialize)]
struct WireHead {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Decodes only id, model and usage (and an in-band error) of an Anthropic Messages body that
/// an Anthropic client gets as is: the result has no choices and `raw` is the answer. For the
/// same-protocol fast path only; anything that needs the content decodes `raw` with
/// [`parse_messages_response`].
pub fn parse_messages_response_passthrough(body: Bytes) -> Result<ChatResponse, DecodeError> {
    let head: WireHead =
        crate::from_json(&body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if head.kind.as_deref() == Some("error") {
        let value: Value =
            crate::from_json(&body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        return Err(upstream_error(&value));
    }
    Ok(ChatResponse {
        id: head.id,
        model: head.model,
        created: 0,
        choices: Vec::new(),
        usage: head.usage.map(WireUsage::to_canonical),
        system_fingerprint: None,
        raw: Some(RawBytes {
            protocol: Protocol::Anthropic,
            body,
        }),
    })
}

/// Renders a canonical response as an Anthropic Messages body. Only choice 0 is rendered: an
/// Anthropic client cannot ask for more. Tool call arguments that are not a JSON object (e.g.
/// cut short by `max_tokens` upstream) are rendered as `{}`, since `input` must be an object.
pub fn render_messages_response(resp: &ChatResponse) -> Vec<u8> {
    if let Some(raw) = resp
        .raw
        .as_ref()
        .filter(|r| r.protocol == Protocol::Anthropic)
    {
        return raw.body.to_vec();
    }
    let choice = resp.choices.first();
    let mut content = Vec::new();
    if let Some(choice) = choice {
        let message = &choice.message;
        // Anthropic puts thinking before the answer.
        for part in &message.content {
            if let ContentPart::Thinking { text, signature } = part {
                content.push(json!({
                    "type": "thinking",
                    "thinking": text,
                    "signature": signature.as_deref().unwrap_or(""),
                }));
            }
        }
        for part in &message.content {
            if let ContentPart::Text { text } = part {
                content.push(json!({"type": "text", "text": text}));
            }
        }
        if let Some(refusal) = message.refusal.as_deref().filter(|r| !r.is_empty()) {
            content.push(json!({"type": "text", "text": refusal}));
        }
        for call in &message.tool_calls {
            let input = match serde_json::from_str::<Value>(&call.arguments) {
                Ok(value @ Value::Object(_)) => value,
                _ => json!({}),
            };
            content.push(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": input,
            }));
        }
    }
    let (stop_reason, stop_sequence) = match choice.and_then(|c| c.finish_reason.as_ref()) {
        Some(reason) => {
            let (r, s) = finish_to_wire(reason);
            (Value::from(r), s.map_or(Value::Null, Value::from))
        }
        None => (Value::Null, Value::Null),
    };
    let usage = resp.usage.unwrap_or_default();
    let body = json!({
        "id": message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_to_wire(&usage),
    });
    body.to_string().into_bytes()
}
