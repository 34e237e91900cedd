//! The meter of one request: started at admission with a reserved slot in the usage queue and
//! the request's limit [`Admission`]; told what happened (served by which target, events of a
//! stream, the final usage, an error); and on `Drop` it prices the usage, settles the
//! admission with the actual tokens and cost, and sends the record. Dropping is the only way
//! out, so a request whose client went away mid-stream is recorded (as `cancelled`, with what
//! was generated so far) exactly like one that finished. The drop also records the request's
//! metrics and, when the request is traced, hands its spans to the exporter.

use super::queue::UsageSlot;
use super::record::{AttemptLog, CallDetails, CallKind, Caller, Outcome, UsageRecord, UsageSource};
use crate::alias_metrics::AliasMetrics;
use crate::config::Price;
use crate::error::GatewayError;
use crate::limits::Admission;
use crate::pricing;
use crate::routing::Attempt;
use crate::trace::CallTrace;
use std::sync::Arc;
use switchboard_types::{ChatEvent, ChatResponse, MicroUsd, TargetId, Usage};
use tokio::time::Instant;

/// What is known of a request when it is admitted.
#[derive(Debug)]
pub struct MeterStart {
    pub request_id: String,
    pub caller: Caller,
    pub kind: CallKind,
    pub alias: String,
    pub stream: bool,
    pub tags: Vec<(String, String)>,
    /// Bytes of the request's text (an input estimate when the provider reports no usage).
    pub input_bytes: u64,
    /// Where the request came from, for the call log; `None` when the call log's own columns
    /// are off (`logging.metadata: false`): the meter then records none of them (no client,
    /// attempts or trace id), only the usage record.
    pub client: Option<ClientInfo>,
}

/// What the HTTP edge knows of a request's origin, for the call log (`CallDetails`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The TCP peer's address.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The path called, e.g. `/v1/chat/completions`.
    pub route: Option<String>,
}

/// The meter of one request (see the module docs). Its state is boxed: a meter is moved
/// through every step of the pipeline (admission, routing, the handler, a stream's body), and
/// moving a pointer instead of ~1 KB of state saved ~2k instructions of `memcpy` a request.
#[derive(Debug)]
pub struct Meter(Box<MeterState>);

/// What a [`Meter`] holds; reached through the meter (`Deref`), never made on its own.
#[derive(Debug)]
pub struct MeterState {
    /// `None` when no store is attached: the record is then only priced and settled.
    slot: Option<UsageSlot>,
    record: UsageRecord,
    started: Instant,
    admission: Admission,
    /// The serving target's own limit counters.
    target_hold: Admission,
    price: Option<Price>,
    input_bytes: u64,
    /// Bytes of text the stream delivered, for an output estimate when no usage is reported.
    streamed_bytes: u64,
    reported: bool,
    /// An upstream call was made (so an estimate is due even without a report).
    called: bool,
    finished: bool,
    failed: bool,
    /// The request's spans to be, when it is traced.
    trace: Option<Box<CallTrace>>,
    /// The alias's cached metric series, once routing reached it.
    series: Option<Arc<AliasMetrics>>,
    /// The call log's own columns are recorded (`MeterStart::client` was given).
    details: bool,
}

impl Meter {
    pub fn start(slot: Option<UsageSlot>, start: MeterStart, admission: Admission) -> Meter {
        Meter(Box::new(MeterState::start(slot, start, admission)))
    }
}

impl std::ops::Deref for Meter {
    type Target = MeterState;
    fn deref(&self) -> &MeterState {
        &self.0
    }
}

impl std::ops::DerefMut for Meter {
    fn deref_mut(&mut self) -> &mut MeterState {
        &mut self.0
    }
}

impl MeterState {
    fn start(slot: Option<UsageSlot>, start: MeterStart, admission: Admission) -> MeterState {
        let details = start.client.is_some();
        let client = start.client.unwrap_or_default();
        MeterState {
            slot,
            record: UsageRecord {
                request_id: start.request_id,
                started_at_ms: crate::clock::now_ms(),
                caller: start.caller,
                kind: start.kind,
                alias: start.alias,
                served_alias: None,
                provider: None,
                model: None,
                stream: start.stream,
                usage: Usage::default(),
                usage_source: UsageSource::None,
                cost: MicroUsd::ZERO,
                priced: false,
                latency_ms: 0,
                ttft_ms: None,
                attempts: 0,
                outcome: Outcome::Ok,
                status: 200,
                error_code: None,
                tags: start.tags,
                details: CallDetails {
                    client_ip: client.ip,
                    user_agent: client.user_agent,
                    route: client.route,
                    ..CallDetails::default()
                },
            },
            started: Instant::now(),
            admission,
            target_hold: Admission::none(),
            price: None,
            input_bytes: start.input_bytes,
            streamed_bytes: 0,
            reported: false,
            called: false,
            finished: false,
            failed: false,
            trace: None,
            series: None,
            details,
        }
    }

    /// The alias the client asked for.
    pub fn alias(&self) -> &str {
        &self.record.alias
    }

    /// Records the request's metrics through the alias's cached series (instead of looking
    /// each series up by its labels).
    pub fn set_metrics(&mut self, series: Arc<AliasMetrics>) {
        self.series = Some(series);
    }

    /// Traces the request: its spans are built and exported when the meter is dropped.
    pub fn trace(&mut self, trace: CallTrace) {
        self.set_trace_id(trace.ids().trace_id);
        self.trace = Some(Box::new(trace));
    }

    /// The W3C trace id the request belongs to (the call log's `trace_id`).
    pub fn set_trace_id(&mut self, trace_id: u128) {
        if self.details {
            self.record.details.trace_id = Some(format!("{trace_id:032x}"));
        }
    }

    /// The upstream attempts routing made, in order (the call log's `attempts`).
    pub fn attempts(&mut self, attempts: Vec<Attempt>) {
        if self.details {
            self.record.details.attempts = attempts
                .iter()
                .map(|a| AttemptLog {
                    target: a.target.label(),
                    status: a.status,
                    latency_ms: u64::try_from(a.latency.as_millis()).unwrap_or(u64::MAX),
                    error_code: a.error_code.map(str::to_owned),
                })
                .collect();
        }
        if let Some(trace) = &mut self.trace {
            trace.attempts(attempts);
        }
    }

    /// A whole answer's model and finish reasons (for the trace).
    pub fn response(&mut self, response: &ChatResponse) {
        if let Some(trace) = &mut self.trace {
            trace.response_model(&response.model);
            if let Some(raw) = response
                .raw
                .as_ref()
                .filter(|_| response.choices.is_empty())
            {
                trace.raw_response(raw);
            }
            for choice in &response.choices {
                if let Some(reason) = &choice.finish_reason {
                    trace.finish_reason(reason);
                }
            }
        }
    }

    /// The admission's `x-ratelimit-*` numbers.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Holds the serving target's limit counters until the call ends.
    pub fn hold(&mut self, held: Admission) {
        self.target_hold = held;
    }

    /// The alias that was served when it differs from the one asked for (budget downgrade).
    pub fn set_served_alias(&mut self, alias: &str) {
        if alias != self.record.alias {
            self.record.served_alias = Some(alias.to_owned());
        }
    }

    /// A target answered (for a stream: its first event is in hand).
    pub fn served(&mut self, target: &TargetId, attempts: u32, price: Option<Price>) {
        self.called = true;
        // `String::from`, not `to_string`: `Display` of an `Arc<str>` goes through the
        // formatter's padding logic, on every call.
        self.record.provider = Some(String::from(&*target.provider));
        self.record.model = Some(String::from(&*target.model));
        self.record.attempts = attempts;
        self.price = price;
        if self.record.stream {
            self.record.ttft_ms = Some(elapsed_ms(self.started));
        }
    }

    /// One event of a stream on its way to the client.
    pub fn observe(&mut self, event: &ChatEvent) {
        match event {
            ChatEvent::Usage(usage) => {
                self.record.usage.merge(usage);
                self.reported = true;
            }
            ChatEvent::TextDelta { text, .. } | ChatEvent::ReasoningDelta { text, .. } => {
                self.streamed_bytes += text.len() as u64;
            }
            ChatEvent::ToolCallDelta { arguments, .. } => {
                self.streamed_bytes += arguments.len() as u64;
            }
            ChatEvent::ToolCallStart { name, .. } => self.streamed_bytes += name.len() as u64,
            ChatEvent::Start { model, .. } => {
                if let Some(trace) = &mut self.trace {
                    trace.response_model(model);
                }
            }
            ChatEvent::Finish { reason, .. } => {
                if let Some(trace) = &mut self.trace {
                    trace.finish_reason(reason);
                }
            }
        }
    }

    /// The usage of a whole (non-streamed) answer, as the provider reported it.
    pub fn usage(&mut self, usage: Option<&Usage>) {
        if let Some(usage) = usage {
            self.record.usage = *usage;
            self.reported = true;
        }
    }

    /// The answer reached the client whole.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The request failed with `error` after `attempts` upstream attempts; `status` is what the
    /// client got (200 when a stream had already begun).
    pub fn fail(
        &mut self,
        error: &GatewayError,
        attempts: u32,
        last: Option<&TargetId>,
        status: u16,
    ) {
        self.failed = true;
        self.record.error_code = Some(error.code().to_owned());
        self.record.status = status;
        if attempts > 0 {
            self.called = true;
            self.record.attempts = attempts;
        }
        if let Some(target) = last {
            self.record
                .provider
                .get_or_insert_with(|| String::from(&*target.provider));
            self.record
                .model
                .get_or_insert_with(|| String::from(&*target.model));
        }
    }

    /// The usage to bill: the provider's report, else an estimate when a call was made.
    fn settle_usage(&mut self) {
        if self.reported {
            self.record.usage_source = UsageSource::Reported;
            // A stream cut short may have sent only a partial report (Anthropic's
            // `message_start` says 1 output token; the final count comes at the end): bill at
            // least what the client received.
            let received = self.streamed_bytes.div_ceil(4);
            if self.record.stream && !self.finished && received > self.record.usage.output_tokens {
                self.record.usage.output_tokens = received;
                self.record.usage_source = UsageSource::Estimated;
            }
            return;
        }
        if !self.called {
            return;
        }
        // No report (a provider that sends none, or a stream cut short): about four bytes of
        // text per token, in and out (docs/usage-and-limits.md).
        self.record.usage = Usage {
            input_tokens: self.input_bytes.div_ceil(4),
            output_tokens: self.streamed_bytes.div_ceil(4),
            ..Usage::default()
        };
        self.record.usage_source = UsageSource::Estimated;
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Drop for MeterState {
    fn drop(&mut self) {
        self.settle_usage();
        self.record.outcome = if self.failed {
            Outcome::Error
        } else if self.finished {
            Outcome::Ok
        } else {
            // Gone before the end: 499 as nginx logs a client that closed the connection.
            self.record.status = 499;
            self.record.error_code = Some("client_closed".to_owned());
            Outcome::Cancelled
        };
        let elapsed = self.started.elapsed();
        self.record.latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if let Some(price) = &self.price {
            self.record.cost = pricing::cost(&self.record.usage, price);
            self.record.priced = true;
        }
        let tokens = self.record.usage.total_tokens();
        self.admission.record(tokens, self.record.cost.0);
        self.target_hold.record(tokens, self.record.cost.0);
        // Settles the counters now (in the background), not when the record is written.
        drop(std::mem::take(&mut self.admission));
        drop(std::mem::take(&mut self.target_hold));
        match &self.series {
            Some(series) => series.record(&self.record, elapsed),
            None => crate::metrics::record_call(&self.record, elapsed),
        }
        if let Some(trace) = self.trace.take() {
            trace.end(&self.record, self.started);
        }
        if let Some(slot) = self.slot.take() {
            let record = std::mem::replace(&mut self.record, empty_record());
            slot.send(record);
        }
    }
}

fn empty_record() -> UsageRecord {
    UsageRecord {
        request_id: String::new(),
        started_at_ms: 0,
        caller: Caller::default(),
        kind: CallKind::Chat,
        alias: String::new(),
        served_alias: None,
        provider: None,
        model: None,
        stream: false,
        usage: Usage::default(),
        usage_source: UsageSource::None,
        cost: MicroUsd::ZERO,
        priced: false,
        latency_ms: 0,
        ttft_ms: None,
        attempts: 0,
        outcome: Outcome::Ok,
        status: 0,
        error_code: None,
        tags: Vec::new(),
        details: CallDetails::default(),
    }
}
