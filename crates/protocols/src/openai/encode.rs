//! Encoder of canonical [`ChatEvent`]s into an OpenAI Chat Completions stream for a client:
//! `data: {chat.completion.chunk}` events ended by `data: [DONE]`, or by an error event and no
//! `[DONE]` when the stream fails.
//!
//! Shape, as OpenAI streams it: each choice's first chunk carries `role: assistant` (with
//! `content: ""` at `Start`); a tool call's first delta has `index`, `id`, `type` and
//! `function.name` with empty arguments, later deltas only `index` and `function.arguments`;
//! a finish is a chunk with an empty delta and `finish_reason`; usage, when the client asked
//! for it, is one chunk with `choices: []` written just before `[DONE]` (usage reports are
//! merged until then, since canonical streams may report usage in pieces).

use super::wire::{OutChunk, OutChunkChoice, OutDelta, OutFunctionDelta, OutToolCallDelta};
use crate::codec::StreamEncoder;
use crate::error::ClientError;
use crate::sse::write_event;
use switchboard_types::{ChatEvent, Usage};

/// Writes an OpenAI chat stream. `include_usage` is the client's
/// `stream_options.include_usage`.
#[derive(Debug)]
pub struct ChatStreamEncoder {
    include_usage: bool,
    /// `id`, `model`, `created` of every chunk, from `Start` (or made up if it never came).
    meta: Option<(String, String, i64)>,
    /// Choices whose first chunk (with the role) has been written.
    announced: Vec<u32>,
    usage: Option<Usage>,
    ended: bool,
}

impl ChatStreamEncoder {
    pub fn new(include_usage: bool) -> Self {
        ChatStreamEncoder {
            include_usage,
            meta: None,
            announced: Vec::new(),
            usage: None,
            ended: false,
        }
    }

    fn meta(&mut self) -> (String, String, i64) {
        self.meta
            .get_or_insert_with(|| (super::new_completion_id(), String::new(), crate::unix_now()))
            .clone()
    }

    fn write(
        &mut self,
        out: &mut Vec<u8>,
        choice: u32,
        mut delta: OutDelta<'_>,
        finish: Option<&str>,
    ) {
        if !self.announced.contains(&choice) {
            self.announced.push(choice);
            delta.role = Some("assistant");
        }
        let (id, model, created) = self.meta();
        let chunk = OutChunk {
            id: &id,
            object: "chat.completion.chunk",
            created,
            model: &model,
            choices: vec![OutChunkChoice {
                index: choice,
                delta,
                finish_reason: finish,
            }],
            usage: None,
        };
        write_event(out, None, &super::to_json(&chunk));
    }
}

impl StreamEncoder for ChatStreamEncoder {
    fn encode(&mut self, event: &ChatEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            ChatEvent::Start { id, model, created } => {
                if self.meta.is_some() {
                    return;
                }
                let id = if id.is_empty() {
                    super::new_completion_id()
                } else {
                    id.clone()
                };
                let created = if *created > 0 {
                    *created
                } else {
                    crate::unix_now()
                };
                self.meta = Some((id, model.clone(), created));
                let delta = OutDelta {
                    content: Some(""),
                    ..OutDelta::default()
                };
                self.write(out, 0, delta, None);
            }
            ChatEvent::TextDelta { choice, text } => {
                let delta = OutDelta {
                    content: Some(text),
                    ..OutDelta::default()
                };
                self.write(out, *choice, delta, None);
            }
            ChatEvent::ReasoningDelta { choice, text } => {
                let delta = OutDelta {
                    reasoning_content: Some(text),
                    ..OutDelta::default()
                };
                self.write(out, *choice, delta, None);
            }
            ChatEvent::ToolCallStart {
                choice,
                index,
                id,
                name,
            } => {
                let delta = OutDelta {
                    tool_calls: Some([OutToolCallDelta {
                        index: *index,
                        id: Some(id),
                        kind: Some("function"),
                        function: OutFunctionDelta {
                            name: Some(name),
                            arguments: "",
                        },
                    }]),
                    ..OutDelta::default()
                };
                self.write(out, *choice, delta, None);
            }
            ChatEvent::ToolCallDelta {
                choice,
                index,
                arguments,
            } => {
                let delta = OutDelta {
                    tool_calls: Some([OutToolCallDelta {
                        index: *index,
                        id: None,
                        kind: None,
                        function: OutFunctionDelta {
                            name: None,
                            arguments,
                        },
                    }]),
                    ..OutDelta::default()
                };
                self.write(out, *choice, delta, None);
            }
            ChatEvent::Finish { choice, reason } => {
                let reason = super::finish_to_wire(reason);
                self.write(out, *choice, OutDelta::default(), Some(reason));
            }
            ChatEvent::Usage(usage) => {
                self.usage.get_or_insert_with(Usage::default).merge(usage);
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(usage) = self.usage.filter(|_| self.include_usage) {
            let (id, model, created) = self.meta();
            let chunk = OutChunk {
                id: &id,
                object: "chat.completion.chunk",
                created,
                model: &model,
                choices: Vec::new(),
                usage: Some(super::usage_to_wire(&usage)),
            };
            write_event(out, None, &super::to_json(&chunk));
        }
        write_event(out, None, b"[DONE]");
    }

    fn error(&mut self, error: &ClientError, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.ended = true;
        write_event(out, None, &super::render_error(error));
    }
}
