//! Decoder for `streamGenerateContent?alt=sse`. Each SSE `data:` is a whole
//! `GenerateContentResponse` holding the *new* parts since the previous chunk; there are no
//! event names and no `[DONE]`.
//!
//! - The first chunk yields `Start` (id = `responseId`, model = `modelVersion`, else the
//!   configured model; `created` = when the decoder was made, Gemini sends no timestamp).
//! - Text parts yield `TextDelta`, `thought: true` parts `ReasoningDelta`.
//! - Gemini sends each function call whole: it yields `ToolCallStart` and one `ToolCallDelta`
//!   with all the arguments. Ids are the part's `id`, else `call_<choice>_<n>` as in
//!   non-streamed responses.
//! - `finishReason` yields `Finish` once per choice (`ToolCalls` if that choice called a
//!   function).
//! - `usageMetadata` is cumulative and may be partial in early chunks: the decoder keeps the
//!   latest non-zero value of each raw counter and emits the normalised `Usage` whenever it
//!   changes, so the last `Usage` event (and the merge of all of them) is the final count.
//! - Done once every choice seen has finished (the provider then ends the body).
//! - `{"error": {...}}` events (also as a one-element array) become `DecodeError::Upstream`.

use serde_json::Value;
use switchboard_types::{ChatEvent, FinishReason};

use super::response::{
    arguments_text, choice_index, finish_reason, in_band_error, prompt_blocked, to_usage,
    tool_call_id,
};
use super::wire::{GenerateContentResponse, UsageMetadata};
use crate::codec::StreamDecoder;
use crate::error::DecodeError;
use crate::sse::SseEvent;

/// Per-choice progress.
#[derive(Debug, Default)]
struct ChoiceState {
    index: u32,
    tool_calls: usize,
    finished: bool,
}

/// Decodes Gemini SSE chunks into canonical events.
#[derive(Debug)]
pub struct GenerateStreamDecoder {
    model: String,
    created: i64,
    started: bool,
    choices: Vec<ChoiceState>,
    usage_raw: UsageMetadata,
    last_usage: Option<switchboard_types::Usage>,
    done: bool,
    skipped: u64,
}

impl GenerateStreamDecoder {
    /// `model` is the upstream model the request went to, used when chunks carry no
    /// `modelVersion`.
    pub fn new(model: &str) -> Self {
        Self::with_created(model, crate::unix_now())
    }

    /// Like `new` with a fixed `created` timestamp (deterministic tests, replays).
    pub fn with_created(model: &str, created: i64) -> Self {
        GenerateStreamDecoder {
            model: model.to_owned(),
            created,
            started: false,
            choices: Vec::new(),
            usage_raw: UsageMetadata::default(),
            last_usage: None,
            done: false,
            skipped: 0,
        }
    }

    fn choice(&mut self, index: u32) -> &mut ChoiceState {
        let pos = match self.choices.iter().position(|c| c.index == index) {
            Some(pos) => pos,
            None => {
                self.choices.push(ChoiceState {
                    index,
                    ..ChoiceState::default()
                });
                self.choices.len() - 1
            }
        };
        &mut self.choices[pos]
    }

    fn chunk(&mut self, chunk: GenerateContentResponse, out: &mut Vec<ChatEvent>) {
        if !self.started {
            self.started = true;
            out.push(ChatEvent::Start {
                id: chunk.response_id.clone().unwrap_or_default(),
                model: chunk
                    .model_version
                    .clone()
                    .unwrap_or_else(|| self.model.clone()),
                created: self.created,
            });
        }
        for (position, candidate) in chunk.candidates.iter().enumerate() {
            let index = choice_index(candidate, position);
            for part in candidate.content.iter().flat_map(|c| c.parts.iter()) {
                if let Some(call) = &part.function_call {
                    let state = self.choice(index);
                    let n = state.tool_calls;
                    state.tool_calls += 1;
                    let tool_index = u32::try_from(n).unwrap_or(u32::MAX);
                    out.push(ChatEvent::ToolCallStart {
                        choice: index,
                        index: tool_index,
                        id: tool_call_id(call.id.as_deref(), index, n),
                        name: call.name.clone(),
                    });
                    out.push(ChatEvent::ToolCallDelta {
                        choice: index,
                        index: tool_index,
                        arguments: arguments_text(call.args.as_ref()),
                    });
                    continue;
                }
                let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) else {
                    continue;
                };
                // Registers the choice so that `is_done` waits for its finish.
                self.choice(index);
                let text = text.to_owned();
                out.push(if part.thought {
                    ChatEvent::ReasoningDelta {
                        choice: index,
                        text,
                    }
                } else {
                    ChatEvent::TextDelta {
                        choice: index,
                        text,
                    }
                });
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let state = self.choice(index);
                let has_calls = state.tool_calls > 0;
                if let Some(reason) = finish_reason(reason, has_calls) {
                    if !state.finished {
                        state.finished = true;
                        out.push(ChatEvent::Finish {
                            choice: index,
                            reason,
                        });
                    }
                }
            }
        }
        if chunk.candidates.is_empty() && prompt_blocked(&chunk) {
            let state = self.choice(0);
            if !state.finished {
                state.finished = true;
                out.push(ChatEvent::Finish {
                    choice: 0,
                    reason: FinishReason::ContentFilter,
                });
            }
        }
        if let Some(meta) = &chunk.usage_metadata {
            self.merge_usage(meta, out);
        }
        self.done = !self.choices.is_empty() && self.choices.iter().all(|c| c.finished);
    }

    fn merge_usage(&mut self, meta: &UsageMetadata, out: &mut Vec<ChatEvent>) {
        fn pick(acc: &mut u64, later: u64) {
            if later != 0 {
                *acc = later;
            }
        }
        let raw = &mut self.usage_raw;
        pick(&mut raw.prompt_token_count, meta.prompt_token_count);
        pick(
            &mut raw.cached_content_token_count,
            meta.cached_content_token_count,
        );
        pick(&mut raw.candidates_token_count, meta.candidates_token_count);
        pick(&mut raw.thoughts_token_count, meta.thoughts_token_count);
        pick(
            &mut raw.tool_use_prompt_token_count,
            meta.tool_use_prompt_token_count,
        );
        let usage = to_usage(raw);
        if self.last_usage != Some(usage) {
            self.last_usage = Some(usage);
            out.push(ChatEvent::Usage(usage));
        }
    }
}

impl StreamDecoder for GenerateStreamDecoder {
    fn decode(&mut self, event: &SseEvent) -> Result<Vec<ChatEvent>, DecodeError> {
        let data = event.data.trim();
        if data.is_empty() {
            self.skipped += 1;
            return Ok(Vec::new());
        }
        let value: Value = serde_json::from_str(data)
            .map_err(|e| DecodeError::Malformed(format!("stream chunk is not JSON: {e}")))?;
        if let Some(err) = in_band_error(&value) {
            return Err(err);
        }
        // Without `alt=sse` Gemini streams a JSON array of chunks; tolerate one per event.
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        let mut out = Vec::new();
        for item in items {
            let known = [
                "candidates",
                "usageMetadata",
                "promptFeedback",
                "responseId",
            ]
            .iter()
            .any(|k| item.get(k).is_some());
            if !known {
                self.skipped += 1;
                continue;
            }
            let chunk: GenerateContentResponse = serde_json::from_value(item)
                .map_err(|e| DecodeError::Malformed(format!("unexpected chunk shape: {e}")))?;
            self.chunk(chunk, &mut out);
        }
        Ok(out)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}
