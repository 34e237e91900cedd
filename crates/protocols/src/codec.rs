//! The two stream state machines every API family implements.

use crate::error::{ClientError, DecodeError};
use crate::sse::SseEvent;
use switchboard_types::ChatEvent;

/// Turns a provider's SSE events into canonical events.
///
/// Invariants: pure and synchronous; the same events in yield the same canonical events out
/// whatever the network split them into (the SSE parser reassembles them first). Unknown event
/// types are counted in `skipped()` and skipped, never fatal. An upstream error event becomes
/// `Err(DecodeError::Upstream { .. })`.
pub trait StreamDecoder: Send {
    fn decode(&mut self, event: &SseEvent) -> Result<Vec<ChatEvent>, DecodeError>;
    /// True once the provider's terminal event has been seen (`[DONE]`, `message_stop`, ...).
    fn is_done(&self) -> bool;
    /// How many events were skipped as unknown.
    fn skipped(&self) -> u64;
}

/// Turns canonical events into SSE bytes in a client's format.
///
/// Invariants: writes complete SSE events only (each ends with a blank line), so that each call's
/// output can be flushed to the client at once; emits exactly one terminal event per stream,
/// either through `finish` or through `error`, and nothing after it.
pub trait StreamEncoder: Send {
    fn encode(&mut self, event: &ChatEvent, out: &mut Vec<u8>);
    /// The stream ended normally: write the terminal event(s).
    fn finish(&mut self, out: &mut Vec<u8>);
    /// The stream failed after it began: write an error event in the client's format and end.
    fn error(&mut self, error: &ClientError, out: &mut Vec<u8>);
}

/// A request body for a provider, plus what the response decoder must know about how it was
/// built.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamBody {
    pub body: Vec<u8>,
    pub mode: ResponseMode,
}

/// How the response to an [`UpstreamBody`] must be read back.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ResponseMode {
    #[default]
    Plain,
    /// The target has no native JSON-schema output, so the request forced a call to a tool of
    /// this name whose input schema is the requested schema; the decoder turns that tool call's
    /// arguments back into plain text content (and the finish reason into `Stop`).
    JsonViaTool { tool_name: String },
}
