//! Metric names, in one typed place. The data plane records through the `metrics` facade; the
//! server renders them as Prometheus text at `/metrics` (docs/observability.md lists them).
//! Labels are low-cardinality: an alias, a target (`provider/model`), a team, a status class,
//! an error code, a limit kind. Never key ids, request ids, rule names or error text.
//!
//! Per-request facts are recorded once, when the request's meter is dropped
//! ([`record_call`]); per-attempt facts by the router, through handles it registers when it
//! is built (so an attempt pays no label lookup).

use crate::usage::{Outcome, UsageRecord};
use std::time::Duration;

/// A counter the data plane increments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Shared limit counters (Redis) failed or timed out; label `fallback` = `local` | `reject`.
    LimitBackendErrors,
    /// Requests refused by a rate limit; label `kind` = `requests` | `tokens` | `concurrent`.
    RateLimited,
    /// Requests refused by a spent budget.
    BudgetRejections,
    /// Requests served by a budget's `downgrade_to` alias instead.
    BudgetDowngrades,
    /// Requests shed at admission because the usage queue was full.
    UsageShed,
    /// Admitted requests, once ended; labels `alias`, `target`, `status` (`2xx` | `4xx` |
    /// `5xx` | `499`), `code` (the error code, `none` when it succeeded).
    Requests,
    /// Requests refused before admission (no key, bad JSON, unknown model...); labels
    /// `status` (the HTTP status) and `code`.
    Refused,
    /// Upstream attempts after the first within one alias; label `alias` (the one retried).
    Retries,
    /// Requests handed to a fallback alias; label `alias` (the one that failed).
    Fallbacks,
    /// Tokens billed; labels `alias`, `team`, `type` (`input` | `output` | `cached_input` |
    /// `cache_write` | `reasoning`).
    Tokens,
    /// Cost billed in micro-dollars (1e-6 USD); labels `alias`, `team`.
    CostMicroUsd,
    /// Call bodies not stored: dropped because the body queue was full, or lost because their
    /// batch could not be written (the call's row is kept either way).
    LogRowsDropped,
}

impl Counter {
    pub fn name(self) -> &'static str {
        match self {
            Counter::LimitBackendErrors => "switchboard_limit_backend_errors_total",
            Counter::RateLimited => "switchboard_rate_limited_total",
            Counter::BudgetRejections => "switchboard_budget_rejections_total",
            Counter::BudgetDowngrades => "switchboard_budget_downgrades_total",
            Counter::UsageShed => "switchboard_usage_shed_total",
            Counter::Requests => "switchboard_requests_total",
            Counter::Refused => "switchboard_refused_total",
            Counter::Retries => "switchboard_retries_total",
            Counter::Fallbacks => "switchboard_fallbacks_total",
            Counter::Tokens => "switchboard_tokens_total",
            Counter::CostMicroUsd => "switchboard_cost_micro_usd_total",
            Counter::LogRowsDropped => "switchboard_log_rows_dropped_total",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Counter::LimitBackendErrors => {
                "Shared limit counter (Redis) failures, by fallback policy."
            }
            Counter::RateLimited => "Requests refused by a rate limit, by limit kind.",
            Counter::BudgetRejections => "Requests refused because a budget was spent.",
            Counter::BudgetDowngrades => "Requests served by a budget's cheaper alias.",
            Counter::UsageShed => "Requests shed because the usage queue was full.",
            Counter::LogRowsDropped => {
                "Logged call bodies not stored: dropped because their queue was full, or lost \
                 because their batch could not be written."
            }
            Counter::Requests => {
                "Admitted requests by alias, serving target, status class and error code."
            }
            Counter::Refused => "Requests refused before admission, by status and error code.",
            Counter::Retries => "Upstream retries within an alias.",
            Counter::Fallbacks => "Requests passed on to a fallback alias.",
            Counter::Tokens => "Tokens billed, by alias, team and token type.",
            Counter::CostMicroUsd => "Cost billed in micro-dollars, by alias and team.",
        }
    }

    pub const ALL: [Counter; 12] = [
        Counter::LimitBackendErrors,
        Counter::RateLimited,
        Counter::BudgetRejections,
        Counter::BudgetDowngrades,
        Counter::UsageShed,
        Counter::Requests,
        Counter::Refused,
        Counter::Retries,
        Counter::Fallbacks,
        Counter::Tokens,
        Counter::CostMicroUsd,
        Counter::LogRowsDropped,
    ];

    /// Adds one.
    pub fn increment(self) {
        metrics::counter!(self.name()).increment(1);
    }

    /// Adds one under `label = value`.
    pub fn increment_with(self, label: &'static str, value: &'static str) {
        metrics::counter!(self.name(), label => value).increment(1);
    }

    /// A handle for `label = value`, registered once (see the router).
    pub fn handle(self, label: &'static str, value: String) -> metrics::Counter {
        metrics::counter!(self.name(), label => value)
    }
}

/// A histogram, in seconds. Its buckets are set where the recorder is installed
/// ([`Histogram::BUCKETS`]); without them Prometheus would get a summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Histogram {
    /// Admission to the last byte (or the error) of admitted requests; label `alias`.
    RequestDuration,
    /// Admission to the first streamed event; label `alias`.
    TimeToFirstToken,
    /// One upstream attempt, from sending to the answer's head (or the error); labels `target`
    /// and `outcome` (`ok` | `error`).
    UpstreamDuration,
}

impl Histogram {
    /// Seconds, from 5 ms to 2 minutes: LLM calls span three orders of magnitude.
    pub const BUCKETS: [f64; 16] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0,
        120.0,
    ];

    pub const ALL: [Histogram; 3] = [
        Histogram::RequestDuration,
        Histogram::TimeToFirstToken,
        Histogram::UpstreamDuration,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Histogram::RequestDuration => "switchboard_request_duration_seconds",
            Histogram::TimeToFirstToken => "switchboard_time_to_first_token_seconds",
            Histogram::UpstreamDuration => "switchboard_upstream_duration_seconds",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Histogram::RequestDuration => "Admission to the end of admitted requests, by alias.",
            Histogram::TimeToFirstToken => "Admission to the first streamed event, by alias.",
            Histogram::UpstreamDuration => {
                "Upstream attempts, send to answer head or error, by target and outcome."
            }
        }
    }

    /// The handle of one upstream attempt's histogram for `target` (the router keeps it).
    pub fn upstream(target: String, ok: bool) -> metrics::Histogram {
        let outcome = if ok { "ok" } else { "error" };
        metrics::histogram!(Histogram::UpstreamDuration.name(), "target" => target, "outcome" => outcome)
    }
}

/// A gauge read at scrape time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gauge {
    /// Usage records waiting for the writer.
    UsageQueueDepth,
    /// Usage records committed to storage since start.
    UsageRecordsWritten,
    /// A target's circuit breaker: 0 closed, 1 half-open, 2 open; label `target`.
    CircuitState,
    /// Upstream calls in flight (streams until their end); label `target`.
    TargetInFlight,
    /// Call bodies waiting for their writer (set when scraped).
    LogQueueDepth,
}

impl Gauge {
    pub fn name(self) -> &'static str {
        match self {
            Gauge::UsageQueueDepth => "switchboard_usage_queue_depth",
            Gauge::UsageRecordsWritten => "switchboard_usage_records_written",
            Gauge::CircuitState => "switchboard_circuit_state",
            Gauge::TargetInFlight => "switchboard_target_in_flight",
            Gauge::LogQueueDepth => "switchboard_log_queue_depth",
        }
    }

    pub const ALL: [Gauge; 5] = [
        Gauge::UsageQueueDepth,
        Gauge::UsageRecordsWritten,
        Gauge::CircuitState,
        Gauge::TargetInFlight,
        Gauge::LogQueueDepth,
    ];

    pub fn set(self, value: f64) {
        metrics::gauge!(self.name()).set(value);
    }

    /// Sets the gauge under `label = value`.
    pub fn set_with(self, label: &'static str, value: String, to: f64) {
        metrics::gauge!(self.name(), label => value).set(to);
    }
}

/// The `status` label of a request: its HTTP status class, or `499` for a client that went
/// away (as nginx logs it).
pub(crate) fn status_class(record: &UsageRecord) -> &'static str {
    if record.outcome == Outcome::Cancelled {
        return "499";
    }
    match record.status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The `team` label: `org/team` of the caller, empty when it has no team.
pub(crate) fn team_label(record: &UsageRecord) -> String {
    match (&record.caller.org, &record.caller.team) {
        (Some(org), Some(team)) => format!("{org}/{team}"),
        _ => String::new(),
    }
}

/// The `switchboard_requests_total` series of a request.
pub(crate) fn request_counter(record: &UsageRecord) -> metrics::Counter {
    let target = match (&record.provider, &record.model) {
        (Some(provider), Some(model)) => format!("{provider}/{model}"),
        _ => "none".to_owned(),
    };
    let code = record
        .error_code
        .clone()
        .unwrap_or_else(|| "none".to_owned());
    metrics::counter!(Counter::Requests.name(),
        "alias" => record.alias.clone(), "target" => target, "status" => status_class(record), "code" => code)
}

/// Counts a request in `switchboard_requests_total`.
pub(crate) fn count_request(record: &UsageRecord) {
    request_counter(record).increment(1);
}

/// Adds a request's tokens and cost.
pub(crate) fn count_tokens(record: &UsageRecord) {
    let usage = &record.usage;
    let alias = &record.alias;
    let team = team_label(record);
    let kinds = [
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cached_input", usage.cached_input_tokens),
        ("cache_write", usage.cache_write_tokens),
        ("reasoning", usage.reasoning_tokens),
    ];
    for (kind, tokens) in kinds.into_iter().filter(|(_, n)| *n > 0) {
        metrics::counter!(Counter::Tokens.name(),
            "alias" => alias.clone(), "team" => team.clone(), "type" => kind)
        .increment(tokens);
    }
    if record.cost.0 > 0 {
        metrics::counter!(Counter::CostMicroUsd.name(), "alias" => alias.clone(), "team" => team)
            .increment(u64::try_from(record.cost.0).unwrap_or(0));
    }
}

/// Records one ended request: its count, latency, time to first token, tokens and cost.
/// Called by the meter's drop (through the alias's cached series,
/// [`crate::alias_metrics::AliasMetrics`], when routing reached the alias), so every admitted
/// request is counted exactly once.
pub fn record_call(record: &UsageRecord, elapsed: Duration) {
    count_request(record);
    let alias = record.alias.clone();
    metrics::histogram!(Histogram::RequestDuration.name(), "alias" => alias.clone())
        .record(elapsed.as_secs_f64());
    if let Some(ttft) = record.ttft_ms {
        metrics::histogram!(Histogram::TimeToFirstToken.name(), "alias" => alias)
            .record(ttft as f64 / 1000.0);
    }
    if record.usage.total_tokens() > 0 || record.cost.0 != 0 {
        count_tokens(record);
    }
}
