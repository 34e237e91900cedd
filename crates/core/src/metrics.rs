//! Metric names, in one typed place. The data plane records through the `metrics` facade; the
//! server renders them as Prometheus text at `/metrics`. Labels are low-cardinality (a limit
//! kind, a policy), never rule names, keys or error text.

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
    /// Call bodies dropped because the body queue was full (the call's row is kept).
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
            Counter::LogRowsDropped => "Logged call bodies dropped because their queue was full.",
        }
    }

    pub const ALL: [Counter; 6] = [
        Counter::LimitBackendErrors,
        Counter::RateLimited,
        Counter::BudgetRejections,
        Counter::BudgetDowngrades,
        Counter::UsageShed,
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
}

/// A gauge read at scrape time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gauge {
    /// Usage records waiting for the writer.
    UsageQueueDepth,
    /// Usage records committed to storage since start.
    UsageRecordsWritten,
    /// Call bodies waiting for their writer.
    LogQueueDepth,
}

impl Gauge {
    pub fn name(self) -> &'static str {
        match self {
            Gauge::UsageQueueDepth => "switchboard_usage_queue_depth",
            Gauge::UsageRecordsWritten => "switchboard_usage_records_written",
            Gauge::LogQueueDepth => "switchboard_log_queue_depth",
        }
    }

    pub fn set(self, value: f64) {
        metrics::gauge!(self.name()).set(value);
    }
}
