//! Small pieces of the Anthropic wire format shared by the request, response and stream code:
//! stop reasons, usage counts, error types and message ids. Keeping each mapping in one place
//! means the decoder and the encoder cannot drift apart.

use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_types::{FinishReason, Usage};

use crate::error::{DecodeError, ErrorKind};

/// Anthropic's `usage` object as it appears in responses, `message_start` and `message_delta`.
/// Every field is optional because `message_delta` usually carries only `output_tokens`, and
/// `cache_*` fields may be `null`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Overlays the fields present in a later report. Anthropic's later counts are cumulative,
    /// so a present value replaces the earlier one.
    pub fn merge(&mut self, later: &WireUsage) {
        fn pick(a: &mut Option<u64>, b: Option<u64>) {
            if b.is_some() {
                *a = b;
            }
        }
        pick(&mut self.input_tokens, later.input_tokens);
        pick(&mut self.output_tokens, later.output_tokens);
        pick(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        pick(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
    }

    /// Canonical usage: Anthropic's `input_tokens` excludes both cache counts, the canonical
    /// `input_tokens` is the whole prompt (see the invariants of `Usage`).
    pub fn to_canonical(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0) + read + write,
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        }
    }
}

/// Anthropic's `usage` object from canonical usage (the inverse of `to_canonical`).
pub(super) fn usage_to_wire(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.uncached_input_tokens(),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    })
}

/// Canonical finish reason of an Anthropic `stop_reason`.
pub(super) fn finish_from_wire(stop_reason: &str, stop_sequence: Option<String>) -> FinishReason {
    match stop_reason {
        "end_turn" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "stop_sequence" => FinishReason::StopSequence(stop_sequence),
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// Anthropic `stop_reason` and `stop_sequence` of a canonical finish reason. Reasons Anthropic
/// clients would not recognise (another provider's own strings) become `end_turn`, the only
/// reason that claims nothing beyond "the turn ended".
pub(super) fn finish_to_wire(reason: &FinishReason) -> (&str, Option<&str>) {
    match reason {
        FinishReason::Stop => ("end_turn", None),
        FinishReason::StopSequence(seq) => ("stop_sequence", seq.as_deref()),
        FinishReason::Length => ("max_tokens", None),
        FinishReason::ToolCalls => ("tool_use", None),
        FinishReason::ContentFilter => ("refusal", None),
        FinishReason::Other(other) => match other.as_str() {
            "pause_turn"
            | "end_turn"
            | "max_tokens"
            | "tool_use"
            | "refusal"
            | "model_context_window_exceeded" => (other.as_str(), None),
            _ => ("end_turn", None),
        },
    }
}

/// Anthropic's error `type` string of a client-facing error kind.
pub(super) fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::Upstream | ErrorKind::Internal => "api_error",
        ErrorKind::Overloaded => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

/// The in-band error of a stream `error` event or of a 200 body of `{"type":"error",...}`.
/// Transient types (overloaded, rate limited, server side, timeout) are retryable.
pub(super) fn upstream_error(value: &Value) -> DecodeError {
    let error = value.get("error");
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("api_error")
        .to_owned();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let retryable = matches!(
        kind.as_str(),
        "overloaded_error" | "api_error" | "rate_limit_error" | "timeout_error"
    );
    DecodeError::Upstream {
        kind,
        message,
        retryable,
    }
}

/// A message id as Anthropic clients expect it (`msg_...`): ids of other providers
/// (`chatcmpl-...`) are prefixed rather than replaced, so that logs can still be matched.
pub(super) fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}
