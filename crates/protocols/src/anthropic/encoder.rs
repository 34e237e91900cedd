//! Client side: canonical `ChatEvent`s (from any provider) into an Anthropic Messages stream.
//!
//! Anthropic streams are strictly block-sequential: one content block is open at a time, and
//! block indexes run from 0 without gaps. Canonical events need not be: an OpenAI upstream may
//! interleave argument fragments of several tool calls, and reports usage after the finish
//! reason. The encoder therefore:
//! - writes `message_start` lazily, at the first content (or at the end), so that input usage
//!   reported right after `Start` (as Anthropic and Gemini upstreams do) is included;
//! - opens a block when its first content arrives, closing the open block first;
//! - streams the arguments of the open tool call live and buffers fragments of other tool
//!   calls. Another tool's block opens (in the order the calls started) once the open call's
//!   arguments form a complete JSON value, which is how a sequential stream moves on, or when
//!   text, reasoning or the end of the stream forces the open block to close. Fragments for a
//!   call whose block was already closed cannot be placed and are dropped; only malformed
//!   upstream output produces them (a complete JSON value has nothing after it but whitespace);
//! - writes `message_delta` (stop reason and usage, including usage that came after `Finish`)
//!   and `message_stop` in `finish`.
//!
//! Only choice 0 is encoded: an Anthropic client cannot ask for more.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use switchboard_types::{ChatEvent, FinishReason, Usage};

use super::wire::{error_type, finish_to_wire, message_id, usage_to_wire};
use crate::codec::StreamEncoder;
use crate::error::ClientError;
use crate::sse::write_event;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Open {
    Text,
    Thinking,
    Tool(u32),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ToolState {
    /// Started upstream, no block yet; fragments wait in `pending`.
    Queued,
    Open,
    Closed,
}

#[derive(Debug)]
struct ToolSlot {
    id: String,
    name: String,
    state: ToolState,
    /// Fragments received before the block opened.
    pending: String,
    /// Fragments written so far, to tell when the arguments are complete.
    sent: String,
}

/// Encoder of an Anthropic Messages stream (see the module documentation).
#[derive(Debug, Default)]
pub struct MessagesStreamEncoder {
    id: String,
    model: String,
    started: bool,
    terminated: bool,
    next_block: u32,
    open: Option<Open>,
    /// Tool calls by canonical index.
    tools: BTreeMap<u32, ToolSlot>,
    /// Canonical indexes in the order their `ToolCallStart` arrived.
    tool_order: Vec<u32>,
    finish: Option<FinishReason>,
    usage: Usage,
}

impl MessagesStreamEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(out: &mut Vec<u8>, event: &str, data: &Value) {
        write_event(out, Some(event), data.to_string().as_bytes());
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = if self.id.is_empty() {
            "msg_switchboard".to_owned()
        } else {
            message_id(&self.id)
        };
        let mut usage = usage_to_wire(&self.usage);
        usage["output_tokens"] = json!(0);
        let data = json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage,
            },
        });
        Self::emit(out, "message_start", &data);
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<u8>) {
        self.ensure_started(out);
        self.close_open(out);
        let data = json!({"type": "content_block_start", "index": self.next_block, "content_block": block});
        Self::emit(out, "content_block_start", &data);
        self.open = Some(kind);
    }

    fn delta(&self, delta: Value, out: &mut Vec<u8>) {
        let data = json!({"type": "content_block_delta", "index": self.next_block, "delta": delta});
        Self::emit(out, "content_block_delta", &data);
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else {
            return;
        };
        if let Open::Tool(index) = open {
            if let Some(slot) = self.tools.get_mut(&index) {
                slot.state = ToolState::Closed;
            }
        }
        let data = json!({"type": "content_block_stop", "index": self.next_block});
        Self::emit(out, "content_block_stop", &data);
        self.next_block += 1;
    }

    /// Text or reasoning: continues the open block of the same kind, or opens one.
    fn text_like(&mut self, kind: Open, text: &str, out: &mut Vec<u8>) {
        // OpenAI's first chunk carries empty content; an empty block helps nobody.
        if text.is_empty() {
            return;
        }
        if self.open != Some(kind) {
            self.close_open(out);
            self.flush_queued_tools(out);
            let block = match kind {
                Open::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                _ => json!({"type": "text", "text": ""}),
            };
            self.open_block(kind, block, out);
        }
        let delta = match kind {
            Open::Thinking => json!({"type": "thinking_delta", "thinking": text}),
            _ => json!({"type": "text_delta", "text": text}),
        };
        self.delta(delta, out);
    }

    fn first_queued(&self) -> Option<u32> {
        self.tool_order.iter().copied().find(|i| {
            self.tools
                .get(i)
                .is_some_and(|t| t.state == ToolState::Queued)
        })
    }

    /// Opens the block of a queued tool call and writes its buffered fragments.
    fn open_tool(&mut self, index: u32, out: &mut Vec<u8>) {
        let Some(slot) = self.tools.get_mut(&index) else {
            return;
        };
        slot.state = ToolState::Open;
        let pending = std::mem::take(&mut slot.pending);
        slot.sent.push_str(&pending);
        let block = json!({"type": "tool_use", "id": slot.id, "name": slot.name, "input": {}});
        self.open_block(Open::Tool(index), block, out);
        if !pending.is_empty() {
            self.delta(
                json!({"type": "input_json_delta", "partial_json": pending}),
                out,
            );
        }
    }

    /// Writes every queued tool call as a whole block (the open block must be closed first).
    fn flush_queued_tools(&mut self, out: &mut Vec<u8>) {
        while let Some(index) = self.first_queued() {
            self.open_tool(index, out);
            self.close_open(out);
        }
    }

    /// Moves on from the open tool call to the next queued one while the open call's
    /// arguments are complete, or when no block is open at all.
    fn advance_tools(&mut self, out: &mut Vec<u8>) {
        loop {
            let Some(next) = self.first_queued() else {
                return;
            };
            let can_switch = match self.open {
                None | Some(Open::Text) | Some(Open::Thinking) => true,
                Some(Open::Tool(open)) => self
                    .tools
                    .get(&open)
                    .is_some_and(|slot| arguments_complete(&slot.sent)),
            };
            if !can_switch {
                return;
            }
            self.open_tool(next, out);
        }
    }

    fn tool_start(&mut self, index: u32, id: &str, name: &str, out: &mut Vec<u8>) {
        if self.tools.contains_key(&index) {
            return;
        }
        self.tools.insert(
            index,
            ToolSlot {
                id: id.to_owned(),
                name: name.to_owned(),
                state: ToolState::Queued,
                pending: String::new(),
                sent: String::new(),
            },
        );
        self.tool_order.push(index);
        self.advance_tools(out);
    }

    fn tool_delta(&mut self, index: u32, arguments: &str, out: &mut Vec<u8>) {
        let Some(slot) = self.tools.get_mut(&index) else {
            // A fragment for a call never started breaks the event order guarantees.
            return;
        };
        match slot.state {
            ToolState::Open => {
                slot.sent.push_str(arguments);
                self.delta(
                    json!({"type": "input_json_delta", "partial_json": arguments}),
                    out,
                );
            }
            ToolState::Queued => {
                slot.pending.push_str(arguments);
                self.advance_tools(out);
            }
            // See the module documentation: nothing valid can be written for it.
            ToolState::Closed => {}
        }
    }
}

/// Whether tool arguments streamed so far form a complete JSON value. Cheap check first: an
/// argument object can only be complete once the text ends with `}`.
fn arguments_complete(arguments: &str) -> bool {
    arguments.trim_end().ends_with('}') && serde_json::from_str::<Value>(arguments).is_ok()
}

impl StreamEncoder for MessagesStreamEncoder {
    fn encode(&mut self, event: &ChatEvent, out: &mut Vec<u8>) {
        if self.terminated {
            return;
        }
        match event {
            ChatEvent::Start { id, model, .. } => {
                if !self.started {
                    self.id.clone_from(id);
                    self.model.clone_from(model);
                }
            }
            ChatEvent::Usage(usage) => self.usage.merge(usage),
            ChatEvent::TextDelta { choice: 0, text } => self.text_like(Open::Text, text, out),
            ChatEvent::ReasoningDelta { choice: 0, text } => {
                self.text_like(Open::Thinking, text, out)
            }
            ChatEvent::ToolCallStart {
                choice: 0,
                index,
                id,
                name,
            } => self.tool_start(*index, id, name, out),
            ChatEvent::ToolCallDelta {
                choice: 0,
                index,
                arguments,
            } => self.tool_delta(*index, arguments, out),
            ChatEvent::Finish { choice: 0, reason } => {
                if self.finish.is_none() {
                    self.finish = Some(reason.clone());
                }
            }
            // Other choices: see the module documentation.
            ChatEvent::TextDelta { .. }
            | ChatEvent::ReasoningDelta { .. }
            | ChatEvent::ToolCallStart { .. }
            | ChatEvent::ToolCallDelta { .. }
            | ChatEvent::Finish { .. } => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        self.ensure_started(out);
        self.close_open(out);
        self.flush_queued_tools(out);
        let reason = match &self.finish {
            Some(reason) => reason.clone(),
            // The upstream ended without saying why: describe what the client received.
            None if !self.tools.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        let (stop_reason, stop_sequence) = finish_to_wire(&reason);
        let data = json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage_to_wire(&self.usage),
        });
        Self::emit(out, "message_delta", &data);
        Self::emit(out, "message_stop", &json!({"type": "message_stop"}));
    }

    fn error(&mut self, error: &ClientError, out: &mut Vec<u8>) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        let data = json!({
            "type": "error",
            "error": {"type": error_type(error.kind), "message": error.message},
        });
        Self::emit(out, "error", &data);
    }
}
