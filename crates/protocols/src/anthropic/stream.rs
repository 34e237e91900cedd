//! Provider side: Anthropic's Messages stream (`message_start`, `content_block_*`,
//! `message_delta`, `message_stop`, `ping`, `error`) into canonical `ChatEvent`s.
//!
//! Anthropic numbers content blocks (text, thinking and tool_use alike); canonical tool call
//! indexes count tool calls only, so the decoder remembers what each block index holds.
//! Usage arrives in pieces (input counts in `message_start`, cumulative output in
//! `message_delta`); the decoder keeps the Anthropic counts and emits the whole canonical usage
//! each time, so that cache counts are folded into `input_tokens` correctly whatever the order.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use switchboard_types::{ChatEvent, FinishReason};

use super::wire::{finish_from_wire, upstream_error, WireUsage};
use crate::codec::{ResponseMode, StreamDecoder};
use crate::error::DecodeError;
use crate::sse::SseEvent;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: WireDelta,
    },
    ContentBlockStop,
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error,
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    /// `signature_delta`, `citations_delta` and later kinds: nothing canonical to say.
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

/// What a content block index holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Block {
    Text,
    Thinking,
    /// A tool call with its canonical index.
    Tool(u32),
    /// The forced tool of `ResponseMode::JsonViaTool`: its input is the answer text.
    JsonAnswer,
    /// A block with no canonical form (redacted thinking, server tools, ...).
    Ignored,
}

/// Decoder of an Anthropic Messages stream (see the module documentation).
#[derive(Debug)]
pub struct MessagesStreamDecoder {
    json_tool: Option<String>,
    blocks: HashMap<u32, Block>,
    tool_calls: u32,
    usage: WireUsage,
    started: bool,
    finished: bool,
    answered_by_json_tool: bool,
    done: bool,
    skipped: u64,
}

impl MessagesStreamDecoder {
    pub fn new(mode: ResponseMode) -> Self {
        let json_tool = match mode {
            ResponseMode::JsonViaTool { tool_name } => Some(tool_name),
            ResponseMode::Plain => None,
        };
        MessagesStreamDecoder {
            json_tool,
            blocks: HashMap::new(),
            tool_calls: 0,
            usage: WireUsage::default(),
            started: false,
            finished: false,
            answered_by_json_tool: false,
            done: false,
            skipped: 0,
        }
    }

    fn block_start(&mut self, index: u32, block: StartBlock, out: &mut Vec<ChatEvent>) {
        let kind = match block {
            StartBlock::Text { text } => {
                if !text.is_empty() {
                    out.push(ChatEvent::TextDelta { choice: 0, text });
                }
                Block::Text
            }
            StartBlock::Thinking { thinking } => {
                if !thinking.is_empty() {
                    out.push(ChatEvent::ReasoningDelta {
                        choice: 0,
                        text: thinking,
                    });
                }
                Block::Thinking
            }
            StartBlock::ToolUse { name, .. } if Some(&name) == self.json_tool.as_ref() => {
                self.answered_by_json_tool = true;
                Block::JsonAnswer
            }
            StartBlock::ToolUse { id, name, input } => {
                let index = self.tool_calls;
                self.tool_calls += 1;
                out.push(ChatEvent::ToolCallStart {
                    choice: 0,
                    index,
                    id,
                    name,
                });
                // Anthropic opens tool_use blocks with `input: {}` and streams the input as
                // deltas; an input given up front is passed on as the first fragment.
                if input.as_object().is_some_and(|o| !o.is_empty()) {
                    out.push(ChatEvent::ToolCallDelta {
                        choice: 0,
                        index,
                        arguments: input.to_string(),
                    });
                }
                Block::Tool(index)
            }
            StartBlock::Other => Block::Ignored,
        };
        self.blocks.insert(index, kind);
    }

    fn block_delta(&mut self, index: u32, delta: WireDelta, out: &mut Vec<ChatEvent>) {
        let block = self.blocks.get(&index).copied();
        match delta {
            WireDelta::TextDelta { text } => out.push(ChatEvent::TextDelta { choice: 0, text }),
            WireDelta::ThinkingDelta { thinking } => out.push(ChatEvent::ReasoningDelta {
                choice: 0,
                text: thinking,
            }),
            // Anthropic often sends an empty first fragment: nothing to pass on.
            WireDelta::InputJsonDelta { partial_json } if partial_json.is_empty() => {}
            WireDelta::InputJsonDelta { partial_json } => match block {
                Some(Block::Tool(index)) => out.push(ChatEvent::ToolCallDelta {
                    choice: 0,
                    index,
                    arguments: partial_json,
                }),
                Some(Block::JsonAnswer) => out.push(ChatEvent::TextDelta {
                    choice: 0,
                    text: partial_json,
                }),
                // Server tool input, or a delta for a block never started.
                _ => {}
            },
            WireDelta::Other => {}
        }
    }

    fn message_delta(
        &mut self,
        delta: MessageDeltaBody,
        usage: Option<WireUsage>,
        out: &mut Vec<ChatEvent>,
    ) {
        if let Some(reason) = delta.stop_reason.filter(|_| !self.finished) {
            self.finished = true;
            let reason = match finish_from_wire(&reason, delta.stop_sequence) {
                FinishReason::ToolCalls if self.answered_by_json_tool => FinishReason::Stop,
                other => other,
            };
            out.push(ChatEvent::Finish { choice: 0, reason });
        }
        if let Some(usage) = usage {
            self.usage.merge(&usage);
            out.push(ChatEvent::Usage(self.usage.to_canonical()));
        }
    }
}

impl StreamDecoder for MessagesStreamDecoder {
    fn decode(&mut self, event: &SseEvent) -> Result<Vec<ChatEvent>, DecodeError> {
        let mut out = Vec::new();
        if event.data.trim().is_empty() {
            return Ok(out);
        }
        let value: Value = serde_json::from_str(&event.data)
            .map_err(|e| DecodeError::Malformed(format!("stream event: {e}")))?;
        if value.get("type").and_then(Value::as_str) == Some("error") {
            return Err(upstream_error(&value));
        }
        let wire: WireEvent = serde_json::from_value(value)
            .map_err(|e| DecodeError::Malformed(format!("stream event: {e}")))?;
        match wire {
            WireEvent::MessageStart { message } => {
                if !self.started {
                    self.started = true;
                    out.push(ChatEvent::Start {
                        id: message.id,
                        model: message.model,
                        created: 0,
                    });
                }
                if let Some(usage) = message.usage {
                    self.usage.merge(&usage);
                    out.push(ChatEvent::Usage(self.usage.to_canonical()));
                }
            }
            WireEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_start(index, content_block, &mut out),
            WireEvent::ContentBlockDelta { index, delta } => {
                self.block_delta(index, delta, &mut out)
            }
            WireEvent::ContentBlockStop | WireEvent::Ping => {}
            WireEvent::MessageDelta { delta, usage } => self.message_delta(delta, usage, &mut out),
            WireEvent::MessageStop => self.done = true,
            // Handled above from the raw value; kept so that the match stays exhaustive.
            WireEvent::Error => return Err(upstream_error(&Value::Null)),
            WireEvent::Unknown => self.skipped += 1,
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
