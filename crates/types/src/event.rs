//! Canonical stream events. Every provider's stream decoder produces these and every client
//! format's encoder consumes them.

use crate::{FinishReason, Usage};

/// One step of a streamed chat completion.
///
/// Order guarantees a decoder must give:
/// - `Start` comes first, exactly once.
/// - For a tool call, `ToolCallStart` for a given `(choice, index)` comes before any
///   `ToolCallDelta` with the same pair. Tool call `index` counts tool calls within a choice,
///   from 0, in the order they started.
/// - `Finish` comes at most once per choice, after that choice's deltas.
/// - `Usage` may come several times (partial reports); consumers `merge` them.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatEvent {
    Start {
        id: String,
        /// The upstream model that serves the stream.
        model: String,
        created: i64,
    },
    TextDelta {
        choice: u32,
        text: String,
    },
    /// Hidden or summarised reasoning (Anthropic thinking, `reasoning_content` of
    /// OpenAI-compatible servers).
    ReasoningDelta {
        choice: u32,
        text: String,
    },
    ToolCallStart {
        choice: u32,
        index: u32,
        id: String,
        name: String,
    },
    ToolCallDelta {
        choice: u32,
        index: u32,
        /// A fragment of the JSON arguments text.
        arguments: String,
    },
    Finish {
        choice: u32,
        reason: FinishReason,
    },
    Usage(Usage),
}
