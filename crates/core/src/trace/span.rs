//! The spans of one request, built when it ends: a server span for the request (`chat
//! {alias}`) and a client span per upstream attempt (`chat {model}`), with the ids handed out
//! while it ran and the OpenTelemetry GenAI semantic conventions' attributes
//! (docs/observability.md lists them).

use super::export::Telemetry;
use super::ids::TraceIds;
use crate::routing::Attempt;
use crate::usage::{Outcome, UsageRecord};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchboard_types::{ChatRequest, FinishReason, Protocol, RawBytes};
use tokio::time::Instant;

/// What the request asked for, as the GenAI conventions record it.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    /// `chat` or `embeddings` (`gen_ai.operation.name`).
    pub operation: &'static str,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
}

impl RequestFacts {
    pub fn chat(req: &ChatRequest) -> RequestFacts {
        RequestFacts {
            operation: "chat",
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
        }
    }

    pub fn embeddings() -> RequestFacts {
        RequestFacts {
            operation: "embeddings",
            ..RequestFacts::default()
        }
    }
}

/// A traced request, from admission to its end (kept by its meter).
#[derive(Debug)]
pub struct CallTrace {
    telemetry: Arc<Telemetry>,
    ids: TraceIds,
    facts: RequestFacts,
    attempts: Vec<Attempt>,
    response_model: Option<String>,
    finish_reasons: Vec<String>,
}

impl CallTrace {
    /// Ids for a request that continues `traceparent` (the client's), if any.
    pub fn start(
        telemetry: Arc<Telemetry>,
        traceparent: Option<&str>,
        facts: RequestFacts,
    ) -> CallTrace {
        let ids = TraceIds::start(traceparent, telemetry.config().sample_ratio);
        CallTrace {
            telemetry,
            ids,
            facts,
            attempts: Vec::new(),
            response_model: None,
            finish_reasons: Vec::new(),
        }
    }

    pub fn ids(&self) -> TraceIds {
        self.ids
    }

    /// The upstream attempts, as the router made them.
    pub fn attempts(&mut self, attempts: Vec<Attempt>) {
        self.attempts = attempts;
    }

    /// The model that answered, as the provider named it.
    pub fn response_model(&mut self, model: &str) {
        if self.response_model.is_none() {
            self.response_model = Some(model.to_owned());
        }
    }

    /// A choice's finish reason.
    pub fn finish_reason(&mut self, reason: &FinishReason) {
        self.finish_reasons.push(finish_reason(reason).to_owned());
    }

    /// The finish reasons of a whole answer that goes back to the client undecoded (the
    /// same-protocol fast path): read from the provider's body, only for sampled traces.
    pub fn raw_response(&mut self, raw: &RawBytes) {
        if !self.ids.sampled {
            return;
        }
        /// The few fields that carry finish reasons in each API's answer.
        #[derive(serde::Deserialize)]
        struct Reasons {
            #[serde(default)]
            choices: Vec<OpenAiChoice>,
            stop_reason: Option<String>,
            #[serde(default, rename = "candidates")]
            candidates: Vec<GeminiCandidate>,
        }
        #[derive(serde::Deserialize)]
        struct OpenAiChoice {
            finish_reason: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct GeminiCandidate {
            #[serde(rename = "finishReason")]
            finish_reason: Option<String>,
        }
        let Ok(body) = serde_json::from_slice::<Reasons>(&raw.body) else {
            return;
        };
        let reasons = match raw.protocol {
            Protocol::OpenAi => body
                .choices
                .into_iter()
                .filter_map(|c| c.finish_reason)
                .collect(),
            Protocol::Anthropic => body.stop_reason.into_iter().collect(),
            Protocol::Gemini => body
                .candidates
                .into_iter()
                .filter_map(|c| c.finish_reason)
                .collect(),
        };
        self.finish_reasons = reasons;
    }

    /// Builds the spans of the ended request and queues them for export (when sampled).
    /// `started` is when the request was admitted.
    pub fn end(self, record: &UsageRecord, started: Instant) {
        if !self.ids.sampled {
            return;
        }
        // Instants mapped to wall-clock time through one reading of both clocks.
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        let wall = |at: Instant| {
            wall_now
                .checked_sub(now.saturating_duration_since(at))
                .unwrap_or(wall_now)
        };
        let request_span = self.request_span(record, wall(started), wall_now);
        let request_context = request_span.span_context.clone();
        self.telemetry.emit(request_span);
        let last = self.attempts.len().saturating_sub(1);
        for (index, attempt) in self.attempts.iter().enumerate() {
            let start = wall(attempt.started);
            // The serving attempt lasts as long as its answer: a stream until its end.
            let served = index == last && attempt.error_code.is_none();
            let end = if served {
                wall_now
            } else {
                start + attempt.latency.max(Duration::from_nanos(1))
            };
            let span = self.attempt_span(record, attempt, served, &request_context, (start, end));
            self.telemetry.emit(span);
        }
    }

    fn request_span(&self, record: &UsageRecord, start: SystemTime, end: SystemTime) -> SpanData {
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", self.facts.operation),
            KeyValue::new("gen_ai.request.model", record.alias.clone()),
            KeyValue::new("http.response.status_code", i64::from(record.status)),
            KeyValue::new("switchboard.request_id", record.request_id.clone()),
            KeyValue::new("switchboard.alias", record.alias.clone()),
            KeyValue::new("switchboard.attempts", i64::from(record.attempts)),
            KeyValue::new("switchboard.outcome", record.outcome.as_str()),
            KeyValue::new("switchboard.stream", record.stream),
        ];
        self.request_attributes(&mut attributes);
        if let Some(served) = &record.served_alias {
            attributes.push(KeyValue::new("switchboard.served_alias", served.clone()));
        }
        if let (Some(provider), Some(model)) = (&record.provider, &record.model) {
            attributes.push(KeyValue::new(
                "switchboard.target",
                format!("{provider}/{model}"),
            ));
        }
        if let Some(attempt) = self.attempts.last() {
            attributes.push(KeyValue::new(
                "gen_ai.provider.name",
                provider_name(attempt.protocol),
            ));
        }
        if record.priced {
            attributes.push(KeyValue::new("switchboard.cost_micro_usd", record.cost.0));
        }
        if let Some(ttft) = record.ttft_ms {
            attributes.push(KeyValue::new(
                "switchboard.ttft_ms",
                i64::try_from(ttft).unwrap_or(i64::MAX),
            ));
        }
        self.response_attributes(record, &mut attributes);
        let parent = SpanId::from(self.ids.parent_span_id);
        SpanData {
            span_context: self.context(self.ids.span_id),
            parent_span_id: parent,
            parent_span_is_remote: self.ids.parent_span_id != 0,
            span_kind: SpanKind::Server,
            name: format!("{} {}", self.facts.operation, record.alias).into(),
            start_time: start,
            end_time: end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: status(record),
            instrumentation_scope: self.telemetry.scope.clone(),
        }
    }

    fn attempt_span(
        &self,
        record: &UsageRecord,
        attempt: &Attempt,
        served: bool,
        parent: &SpanContext,
        (start, end): (SystemTime, SystemTime),
    ) -> SpanData {
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", self.facts.operation),
            KeyValue::new("gen_ai.provider.name", provider_name(attempt.protocol)),
            KeyValue::new("gen_ai.request.model", attempt.target.model.to_string()),
            KeyValue::new("switchboard.target", attempt.target.to_string()),
        ];
        self.request_attributes(&mut attributes);
        if attempt.status != 0 {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(attempt.status),
            ));
        }
        let mut span_status = Status::Unset;
        if let Some(code) = attempt.error_code {
            attributes.push(KeyValue::new("error.type", code));
            span_status = Status::error(code);
        } else if served {
            self.response_attributes(record, &mut attributes);
            if record.outcome == Outcome::Error {
                span_status = status(record);
            }
        }
        SpanData {
            span_context: self.context(attempt.span_id),
            parent_span_id: parent.span_id(),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: format!("{} {}", self.facts.operation, attempt.target.model).into(),
            start_time: start,
            end_time: end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: span_status,
            instrumentation_scope: self.telemetry.scope.clone(),
        }
    }

    /// `gen_ai.request.*` parameters the client set.
    fn request_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if let Some(max) = self.facts.max_tokens {
            attributes.push(KeyValue::new("gen_ai.request.max_tokens", i64::from(max)));
        }
        if let Some(temperature) = self.facts.temperature {
            attributes.push(KeyValue::new("gen_ai.request.temperature", temperature));
        }
        if let Some(top_p) = self.facts.top_p {
            attributes.push(KeyValue::new("gen_ai.request.top_p", top_p));
        }
    }

    /// What the answer said: model, usage, finish reasons, error.
    fn response_attributes(&self, record: &UsageRecord, attributes: &mut Vec<KeyValue>) {
        let model = self.response_model.clone().or_else(|| record.model.clone());
        if let Some(model) = model {
            attributes.push(KeyValue::new("gen_ai.response.model", model));
        }
        if record.usage.total_tokens() > 0 {
            let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            attributes.push(KeyValue::new(
                "gen_ai.usage.input_tokens",
                tokens(record.usage.input_tokens),
            ));
            attributes.push(KeyValue::new(
                "gen_ai.usage.output_tokens",
                tokens(record.usage.output_tokens),
            ));
        }
        if !self.finish_reasons.is_empty() {
            let reasons: Vec<StringValue> = self
                .finish_reasons
                .iter()
                .map(|r| StringValue::from(r.clone()))
                .collect();
            attributes.push(KeyValue::new(
                "gen_ai.response.finish_reasons",
                Value::Array(Array::String(reasons)),
            ));
        }
        if let Some(code) = &record.error_code {
            attributes.push(KeyValue::new("error.type", code.clone()));
        }
    }

    fn context(&self, span_id: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(self.ids.trace_id),
            SpanId::from(span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        )
    }
}

/// Error for requests that failed; a cancelled request is not the gateway's error.
fn status(record: &UsageRecord) -> Status {
    match (&record.outcome, &record.error_code) {
        (Outcome::Error, Some(code)) => Status::error(code.clone()),
        _ => Status::Unset,
    }
}

/// `gen_ai.provider.name`: the conventions' name for the API the target speaks.
fn provider_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::OpenAi => "openai",
        Protocol::Anthropic => "anthropic",
        Protocol::Gemini => "gcp.gemini",
    }
}

/// The conventions' finish reasons are the provider's words; ours are normalised to
/// OpenAI's (`stop`, `length`, `tool_calls`, `content_filter`).
fn finish_reason(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::Other(other) => other,
    }
}
