//! Whole (non-streamed) Chat Completions responses: decoding an upstream's `chat.completion`
//! into the canonical [`ChatResponse`], and rendering a canonical response for an OpenAI client.

use super::chat_request::arguments_text;
use super::error::in_band_error;
use super::wire::{
    InChoice, InCompletionDetails, InPromptDetails, InResponse, InUsage, OutChoice,
    OutFunctionCall, OutRespMessage, OutResponse, OutToolCall,
};
use crate::codec::ResponseMode;
use crate::error::DecodeError;
use crate::json_scan;
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
    let wire: InResponse = serde_json::from_slice(&body)
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
///
/// The body is walked once at the top level (`json_scan`) and only the wanted values are
/// decoded, from their own bytes: this runs on every same-protocol request, and serde's
/// visitors over the skipped choices cost several times more. What it accepts and what it
/// extracts are those of `serde_json` with the `InResponseHead` skeleton (a duplicated field is
/// an error, as serde's derive makes it), except that the body must be an object (serde would
/// also take a struct written as an array).
pub fn parse_chat_response_passthrough(body: Bytes) -> Result<ChatResponse, DecodeError> {
    let head =
        scan_head(&body).map_err(|e| DecodeError::Malformed(format!("chat completion: {e}")))?;
    if let Some(error) = head.error.as_ref().filter(|e| !e.is_null()) {
        return Err(in_band_error(error));
    }
    if !head.choices {
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

/// The top-level fields of a `chat.completion` the gateway reads.
#[derive(Default)]
struct Head {
    id: Option<String>,
    model: Option<String>,
    created: Option<i64>,
    /// `choices` is present and not null.
    choices: bool,
    usage: Option<InUsage>,
    system_fingerprint: Option<String>,
    error: Option<Value>,
}

fn scan_head(body: &[u8]) -> Result<Head, String> {
    const FIELDS: [&str; 7] = [
        "id",
        "model",
        "created",
        "choices",
        "usage",
        "system_fingerprint",
        "error",
    ];
    let mut head = Head::default();
    // Fields already met: serde's derive refuses a duplicated field, and so does this.
    let mut seen = [false; FIELDS.len()];
    json_scan::for_each_member(body, |member| {
        let Some(field) = json_scan::field_index(&member, &FIELDS)? else {
            return Ok(());
        };
        if std::mem::replace(&mut seen[field], true) {
            return Err(format!("duplicate field `{}`", FIELDS[field]));
        }
        let value = member.value;
        let field_error = |e: serde_json::Error| format!("`{}`: {e}", FIELDS[field]);
        match field {
            0 => head.id = json_scan::opt_string(value).map_err(field_error)?,
            1 => head.model = json_scan::opt_string(value).map_err(field_error)?,
            2 => head.created = json_scan::opt_i64(value).map_err(field_error)?,
            3 => head.choices = value != b"null",
            4 => head.usage = usage(value)?,
            5 => head.system_fingerprint = json_scan::opt_string(value).map_err(field_error)?,
            _ => head.error = serde_json::from_slice(value).map_err(field_error)?,
        }
        Ok(())
    })?;
    Ok(head)
}

/// `usage`, read by hand when it is an object (always, in practice) and by serde otherwise
/// (which then decides, as it did for the whole body before: `null` is none, an array fills
/// the fields in order, anything else is an error).
fn usage(value: &[u8]) -> Result<Option<InUsage>, String> {
    const FIELDS: [&str; 5] = [
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "prompt_cache_hit_tokens",
    ];
    if value.first() != Some(&b'{') {
        return serde_json::from_slice(value).map_err(|e| format!("`usage`: {e}"));
    }
    let mut usage = InUsage::default();
    let mut seen = [false; FIELDS.len()];
    json_scan::for_each_member(value, |member| {
        let Some(field) = json_scan::field_index(&member, &FIELDS)? else {
            return Ok(());
        };
        if std::mem::replace(&mut seen[field], true) {
            return Err(format!("`usage`: duplicate field `{}`", FIELDS[field]));
        }
        let value = member.value;
        let field_error = |e: serde_json::Error| format!("`usage.{}`: {e}", FIELDS[field]);
        match field {
            0 => usage.prompt_tokens = json_scan::opt_u64(value).map_err(field_error)?,
            1 => usage.completion_tokens = json_scan::opt_u64(value).map_err(field_error)?,
            2 => {
                usage.prompt_tokens_details =
                    one_count(value, "cached_tokens")?.map(|cached_tokens| InPromptDetails {
                        cached_tokens,
                    })
            }
            3 => {
                usage.completion_tokens_details = one_count(value, "reasoning_tokens")?
                    .map(|reasoning_tokens| InCompletionDetails { reasoning_tokens })
            }
            _ => usage.prompt_cache_hit_tokens = json_scan::opt_u64(value).map_err(field_error)?,
        }
        Ok(())
    })?;
    Ok(Some(usage))
}

/// A `*_tokens_details` object of which one count is wanted: `None` for `null`, else the count
/// (itself optional). Shapes other than an object or `null` go to serde with the one-field
/// struct they stand for, so that the verdict stays serde's.
fn one_count(value: &[u8], wanted: &str) -> Result<Option<Option<u64>>, String> {
    if value.first() != Some(&b'{') {
        return if wanted == "cached_tokens" {
            serde_json::from_slice::<Option<InPromptDetails>>(value)
                .map(|d| d.map(|d| d.cached_tokens))
        } else {
            serde_json::from_slice::<Option<InCompletionDetails>>(value)
                .map(|d| d.map(|d| d.reasoning_tokens))
        }
        .map_err(|e| format!("`usage`: {e}"));
    }
    let mut count = None;
    let mut seen = false;
    json_scan::for_each_member(value, |member| {
        if json_scan::field_index(&member, &[wanted])?.is_none() {
            return Ok(());
        }
        if std::mem::replace(&mut seen, true) {
            return Err(format!("`usage`: duplicate field `{wanted}`"));
        }
        count = json_scan::opt_u64(member.value).map_err(|e| format!("`usage.{wanted}`: {e}"))?;
        Ok(())
    })?;
    Ok(Some(count))
}

impl From<json_scan::ScanError> for String {
    fn from(e: json_scan::ScanError) -> String {
        e.to_string()
    }
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
