//! Decoder of Chat Completions streams (`chat.completion.chunk` events, ended by `[DONE]`) into
//! canonical [`ChatEvent`]s, tolerant of what OpenAI-compatible servers do differently:
//!
//! - Azure sends a first chunk with empty `id`/`model`, `choices: []` and
//!   `prompt_filter_results`, and annotation chunks without `delta`. `Start` is emitted on the
//!   first chunk that has an `id` or a `model` (so Azure's real id and model are used), or,
//!   failing that, on the first chunk that carries anything to emit, with whatever it has.
//! - Tool calls: the `id` and `name` usually come in the first delta of a call and the
//!   arguments in later ones, but some servers send name and arguments together, repeat the
//!   `id` on every delta, omit `index`, or give every call `index` 0 with distinct ids. Upstream
//!   `(choice, index)` pairs are therefore mapped to canonical indices assigned in start order,
//!   and a new distinct `id` at an index already in use starts a new call. Arguments seen
//!   before the name are held until `ToolCallStart` can be sent.
//! - `reasoning_content` (DeepSeek, vLLM) and `reasoning` (some others) are reasoning deltas.
//! - `refusal` deltas become text: the canonical stream has no refusal event, and showing the
//!   refusal beats dropping it.
//! - `usage` may come in its own chunk (`choices: []`) or beside a finish; it is emitted after
//!   the chunk's deltas and finish. A repeated `finish_reason` for a choice is ignored.

use super::error::in_band_error;
use super::wire::{InChunk, InChunkChoice, InToolCallDelta};
use crate::codec::{ResponseMode, StreamDecoder};
use crate::error::DecodeError;
use crate::sse::SseEvent;
use switchboard_types::{ChatEvent, FinishReason};

/// Decodes an OpenAI-compatible chat stream. See the module docs for what it tolerates.
#[derive(Debug)]
pub struct ChatStreamDecoder {
    /// The tool whose arguments are the answer text (`ResponseMode::JsonViaTool`).
    json_tool: Option<String>,
    started: bool,
    done: bool,
    skipped: u64,
    choices: Vec<ChoiceState>,
}

#[derive(Debug)]
struct ChoiceState {
    choice: u32,
    calls: Vec<CallSlot>,
    next_index: u32,
    finished: bool,
    /// A call to the JSON tool was turned into text, so `tool_calls` finishes as `Stop`.
    answered_via_tool: bool,
}

#[derive(Debug)]
struct CallSlot {
    wire_index: u32,
    id: String,
    name: String,
    /// Arguments received before the call could be started.
    pending: String,
    state: CallState,
}

#[derive(Debug, PartialEq)]
enum CallState {
    Waiting,
    /// Started with this canonical index.
    Started(u32),
    /// The JSON-mode tool: its arguments are emitted as text.
    AsText,
}

impl ChatStreamDecoder {
    pub fn new(mode: ResponseMode) -> Self {
        ChatStreamDecoder {
            json_tool: match mode {
                ResponseMode::Plain => None,
                ResponseMode::JsonViaTool { tool_name } => Some(tool_name),
            },
            started: false,
            done: false,
            skipped: 0,
            choices: Vec::new(),
        }
    }

    fn choice_state(&mut self, choice: u32) -> &mut ChoiceState {
        let pos = match self.choices.iter().position(|c| c.choice == choice) {
            Some(pos) => pos,
            None => {
                self.choices.push(ChoiceState {
                    choice,
                    calls: Vec::new(),
                    next_index: 0,
                    finished: false,
                    answered_via_tool: false,
                });
                self.choices.len() - 1
            }
        };
        &mut self.choices[pos]
    }

    fn choice_events(&mut self, c: InChunkChoice, out: &mut Vec<ChatEvent>) {
        let choice = c.index;
        let json_tool = self.json_tool.clone();
        let state = self.choice_state(choice);
        if state.finished {
            // Deltas after a finish (Azure annotations, a repeated finish) carry nothing new.
            return;
        }
        if let Some(delta) = c.delta {
            if let Some(text) = delta
                .reasoning_content
                .or(delta.reasoning)
                .filter(|t| !t.is_empty())
            {
                out.push(ChatEvent::ReasoningDelta { choice, text });
            }
            for text in [delta.content, delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    out.push(ChatEvent::TextDelta { choice, text });
                }
            }
            for call in delta.tool_calls.unwrap_or_default() {
                state.tool_call(choice, call, json_tool.as_deref(), out);
            }
        }
        if let Some(reason) = c.finish_reason.filter(|r| !r.is_empty()) {
            state.flush_waiting(choice, out);
            let mut reason = super::finish_from_wire(&reason);
            if state.answered_via_tool && reason == FinishReason::ToolCalls {
                reason = FinishReason::Stop;
            }
            state.finished = true;
            out.push(ChatEvent::Finish { choice, reason });
        }
    }
}

impl ChoiceState {
    fn tool_call(
        &mut self,
        choice: u32,
        delta: InToolCallDelta,
        json_tool: Option<&str>,
        out: &mut Vec<ChatEvent>,
    ) {
        let id = delta.id.filter(|s| !s.is_empty());
        let (name, args) = match delta.function {
            Some(f) => (
                f.name.filter(|s| !s.is_empty()),
                f.arguments.unwrap_or_default(),
            ),
            None => (None, String::new()),
        };
        // Without an index, a delta with a new id is a new call; one without continues the last.
        let wire_index = delta
            .index
            .unwrap_or_else(|| match (&id, self.calls.last()) {
                (None, Some(last)) => last.wire_index,
                (Some(id), Some(last)) if &last.id == id => last.wire_index,
                _ => self
                    .calls
                    .iter()
                    .map(|c| c.wire_index + 1)
                    .max()
                    .unwrap_or(0),
            });
        let existing = self.calls.iter().rposition(|c| c.wire_index == wire_index);
        let slot = match existing {
            Some(pos)
                if id.as_ref().is_none_or(|id| {
                    self.calls[pos].id.is_empty() || &self.calls[pos].id == id
                }) =>
            {
                pos
            }
            _ => {
                self.calls.push(CallSlot {
                    wire_index,
                    id: String::new(),
                    name: String::new(),
                    pending: String::new(),
                    state: CallState::Waiting,
                });
                self.calls.len() - 1
            }
        };
        let next_index = &mut self.next_index;
        let call = &mut self.calls[slot];
        if call.state == CallState::Waiting {
            if let Some(id) = id {
                call.id = id;
            }
            if let Some(name) = name {
                call.name = name;
                call.start(choice, next_index, json_tool, out);
            }
        }
        if call.state == CallState::AsText {
            self.answered_via_tool = true;
        }
        call.push_args(choice, args, out);
    }

    /// At the finish, calls still waiting for a name are started with what they have, so that
    /// their arguments are not lost.
    fn flush_waiting(&mut self, choice: u32, out: &mut Vec<ChatEvent>) {
        for call in &mut self.calls {
            if call.state == CallState::Waiting && (!call.id.is_empty() || !call.pending.is_empty())
            {
                call.start(choice, &mut self.next_index, None, out);
            }
        }
    }
}

impl CallSlot {
    fn start(
        &mut self,
        choice: u32,
        next_index: &mut u32,
        json_tool: Option<&str>,
        out: &mut Vec<ChatEvent>,
    ) {
        if json_tool == Some(self.name.as_str()) {
            self.state = CallState::AsText;
        } else {
            let index = *next_index;
            *next_index += 1;
            self.state = CallState::Started(index);
            if self.id.is_empty() {
                // Some local servers send no id; clients need one to answer the call.
                self.id = format!("call_{choice}_{index}");
            }
            out.push(ChatEvent::ToolCallStart {
                choice,
                index,
                id: self.id.clone(),
                name: self.name.clone(),
            });
        }
        let pending = std::mem::take(&mut self.pending);
        self.push_args(choice, pending, out);
    }

    fn push_args(&mut self, choice: u32, args: String, out: &mut Vec<ChatEvent>) {
        if args.is_empty() {
            return;
        }
        match self.state {
            CallState::Waiting => self.pending.push_str(&args),
            CallState::Started(index) => out.push(ChatEvent::ToolCallDelta {
                choice,
                index,
                arguments: args,
            }),
            CallState::AsText => out.push(ChatEvent::TextDelta { choice, text: args }),
        }
    }
}

impl StreamDecoder for ChatStreamDecoder {
    fn decode(&mut self, event: &SseEvent) -> Result<Vec<ChatEvent>, DecodeError> {
        if self.done {
            return Ok(Vec::new());
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        if data.is_empty() {
            self.skipped += 1;
            return Ok(Vec::new());
        }
        let chunk: InChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            // Valid JSON of another shape is an unknown event; anything else is broken.
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                self.skipped += 1;
                return Ok(Vec::new());
            }
            Err(e) => return Err(DecodeError::Malformed(format!("stream chunk: {e}"))),
        };
        if let Some(error) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(in_band_error(error));
        }
        if chunk.choices.is_none() && chunk.usage.is_none() && chunk.prompt_filter_results.is_none()
        {
            self.skipped += 1;
            return Ok(Vec::new());
        }
        let id = chunk.id.unwrap_or_default();
        let model = chunk.model.unwrap_or_default();
        let created = chunk.created.unwrap_or(0);
        let mut out = Vec::new();
        if !self.started && (!id.is_empty() || !model.is_empty()) {
            self.started = true;
            out.push(ChatEvent::Start { id, model, created });
            return Ok(self.rest(chunk.choices, chunk.usage, out));
        }
        let mut events = self.rest(chunk.choices, chunk.usage, Vec::new());
        if !self.started && !events.is_empty() {
            self.started = true;
            events.insert(0, ChatEvent::Start { id, model, created });
        }
        Ok(events)
    }

    fn is_done(&self) -> bool {
        self.done
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl ChatStreamDecoder {
    fn rest(
        &mut self,
        choices: Option<Vec<InChunkChoice>>,
        usage: Option<super::wire::InUsage>,
        mut out: Vec<ChatEvent>,
    ) -> Vec<ChatEvent> {
        for c in choices.unwrap_or_default() {
            self.choice_events(c, &mut out);
        }
        if let Some(u) = usage {
            if u.prompt_tokens.is_some() || u.completion_tokens.is_some() {
                out.push(ChatEvent::Usage(super::usage_from_wire(&u)));
            }
        }
        out
    }
}
