//! Gemini `GenerateContentResponse` -> canonical `ChatResponse`, and the pieces the stream
//! decoder shares with it: finish reasons, usage normalisation, tool call ids, in-band errors.
//!
//! - Text parts are concatenated; parts marked `thought: true` become `Thinking` content.
//! - `functionCall` parts become tool calls. Gemini often sends no call id: a deterministic
//!   `call_<choice>_<n>` is made up (the same in streams), so that tool results can refer to it.
//! - `STOP` becomes `ToolCalls` when the candidate called a function (Gemini says `STOP`).
//! - A prompt blocked before generation (`promptFeedback.blockReason`, no candidates) becomes one
//!   empty choice finished by `ContentFilter`.
//! - Gemini sends no creation time: `created` is the time the response was decoded.

use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_types::{
    ChatResponse, Choice, ContentPart, FinishReason, Message, Role, ToolCall, Usage,
};

use super::wire::{Candidate, ErrorBody, GenerateContentResponse, LogprobsResult, UsageMetadata};
use crate::error::DecodeError;

/// Decodes a whole `generateContent` response body.
pub fn parse_generate_response(body: Bytes, model: &str) -> Result<ChatResponse, DecodeError> {
    let value: Value = crate::from_json(&body)
        .map_err(|e| DecodeError::Malformed(format!("response is not JSON: {e}")))?;
    if let Some(err) = in_band_error(&value) {
        return Err(err);
    }
    let resp: GenerateContentResponse = serde_json::from_value(value)
        .map_err(|e| DecodeError::Malformed(format!("unexpected response shape: {e}")))?;

    let mut choices: Vec<Choice> = resp
        .candidates
        .iter()
        .enumerate()
        .map(|(i, candidate)| candidate_to_choice(candidate, i))
        .collect();
    if choices.is_empty() && prompt_blocked(&resp) {
        choices.push(Choice {
            index: 0,
            message: Message::new(Role::Assistant, Vec::new()),
            finish_reason: Some(FinishReason::ContentFilter),
            logprobs: None,
        });
    }
    Ok(ChatResponse {
        id: resp.response_id.clone().unwrap_or_default(),
        model: resp
            .model_version
            .clone()
            .unwrap_or_else(|| model.to_owned()),
        created: crate::unix_now(),
        choices,
        usage: resp.usage_metadata.as_ref().map(to_usage),
        system_fingerprint: None,
        raw: None,
    })
}

fn candidate_to_choice(candidate: &Candidate, position: usize) -> Choice {
    let index = choice_index(candidate, position);
    let mut content: Vec<ContentPart> = Vec::new();
    let mut tool_calls: Vec<ToolCall> = Vec::new();
    for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
        if let Some(call) = &part.function_call {
            tool_calls.push(ToolCall {
                id: tool_call_id(call.id.as_deref(), index, tool_calls.len()),
                name: call.name.clone(),
                arguments: arguments_text(call.args.as_ref()),
            });
            continue;
        }
        let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) else {
            continue;
        };
        // Adjacent parts of the same kind join into one canonical part.
        match (content.last_mut(), part.thought) {
            (Some(ContentPart::Thinking { text: acc, .. }), true)
            | (Some(ContentPart::Text { text: acc }), false) => acc.push_str(text),
            (_, true) => content.push(ContentPart::Thinking {
                text: text.to_owned(),
                signature: None,
            }),
            (_, false) => content.push(ContentPart::text(text)),
        }
    }
    let has_calls = !tool_calls.is_empty();
    let mut message = Message::new(Role::Assistant, content);
    message.tool_calls = tool_calls;
    Choice {
        index,
        message,
        finish_reason: candidate
            .finish_reason
            .as_deref()
            .and_then(|r| finish_reason(r, has_calls)),
        logprobs: candidate.logprobs_result.as_ref().map(to_openai_logprobs),
    }
}

/// The candidate's own `index`, else its position in the list.
pub(crate) fn choice_index(candidate: &Candidate, position: usize) -> u32 {
    candidate
        .index
        .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX))
}

pub(crate) fn tool_call_id(id: Option<&str>, choice: u32, n: usize) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("call_{choice}_{n}"),
    }
}

/// Gemini sends `args` as an object; canonical arguments are JSON text. Absent args are `{}`.
pub(crate) fn arguments_text(args: Option<&Value>) -> String {
    match args {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(value) => value.to_string(),
    }
}

/// Maps a Gemini `finishReason`. `None` for the "unspecified" placeholder.
pub(crate) fn finish_reason(reason: &str, has_calls: bool) -> Option<FinishReason> {
    Some(match reason {
        "FINISH_REASON_UNSPECIFIED" | "" => return None,
        "STOP" if has_calls => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_ascii_lowercase()),
    })
}

pub(crate) fn prompt_blocked(resp: &GenerateContentResponse) -> bool {
    resp.prompt_feedback
        .as_ref()
        .is_some_and(|f| f.block_reason.as_deref().is_some_and(|r| !r.is_empty()))
}

/// Normalises Gemini's counts to the canonical invariants: input includes cached content (it
/// already does) and tool-use prompt tokens (it does not); output includes thoughts (it does
/// not).
pub(crate) fn to_usage(meta: &UsageMetadata) -> Usage {
    let input_tokens = meta.prompt_token_count + meta.tool_use_prompt_token_count;
    let output_tokens = meta.candidates_token_count + meta.thoughts_token_count;
    Usage {
        input_tokens,
        output_tokens,
        cached_input_tokens: meta.cached_content_token_count.min(input_tokens),
        cache_write_tokens: 0,
        reasoning_tokens: meta.thoughts_token_count,
    }
}

/// `{"error": {...}}` (or a one-element array of it) inside a 200 body or an SSE event.
pub(crate) fn in_band_error(value: &Value) -> Option<DecodeError> {
    let object = match value {
        Value::Array(items) => items.first()?,
        other => other,
    };
    let error = object.get("error")?;
    let body: ErrorBody = serde_json::from_value(error.clone()).unwrap_or_default();
    let kind = body
        .status
        .clone()
        .or_else(|| body.code.map(|c| c.to_string()))
        .unwrap_or_else(|| "UNKNOWN".to_owned());
    let retryable = matches!(
        kind.as_str(),
        "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED"
    ) || body.code.is_some_and(|c| c == 429 || c >= 500);
    Some(DecodeError::Upstream {
        kind,
        message: body.message,
        retryable,
    })
}

/// Gemini `logprobsResult` in OpenAI's `logprobs` shape (`content[]` of token, logprob,
/// top_logprobs), which is what `Choice::logprobs` carries.
fn to_openai_logprobs(result: &LogprobsResult) -> Value {
    let content: Vec<Value> = result
        .chosen_candidates
        .iter()
        .enumerate()
        .map(|(i, chosen)| {
            let top: Vec<Value> = result
                .top_candidates
                .get(i)
                .map(|t| {
                    t.candidates
                        .iter()
                        .map(|c| json!({"token": c.token, "logprob": c.log_probability, "bytes": null}))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "token": chosen.token,
                "logprob": chosen.log_probability,
                "bytes": null,
                "top_logprobs": top,
            })
        })
        .collect();
    json!({ "content": content })
}
