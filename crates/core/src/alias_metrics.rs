//! The per-request series of one alias, cached. Recording a labelled metric through the
//! `metrics` macros builds and hashes its label set each time (a few allocations per series);
//! the router keeps one [`AliasMetrics`] per alias instead, whose handles are registered on
//! first use and then found by a short scan under a read lock. Bounded: past
//! [`MAX_SERIES`] label sets an alias records through the macros, uncached.

use crate::metrics::{record_call, status_class, team_label, Counter, Histogram};
use crate::usage::UsageRecord;
use parking_lot::RwLock;
use std::time::Duration;

/// Label sets cached per alias and kind; real aliases see a handful (targets x codes).
const MAX_SERIES: usize = 64;

#[derive(Debug)]
pub struct AliasMetrics {
    alias: String,
    duration: metrics::Histogram,
    ttft: metrics::Histogram,
    requests: RwLock<Vec<RequestSeries>>,
    teams: RwLock<Vec<TeamSeries>>,
}

/// `switchboard_requests_total` of one target, status class and code.
#[derive(Debug)]
struct RequestSeries {
    provider: Option<String>,
    model: Option<String>,
    status: &'static str,
    code: Option<String>,
    counter: metrics::Counter,
}

/// Tokens by type and cost of one team.
#[derive(Debug)]
struct TeamSeries {
    org: Option<String>,
    team: Option<String>,
    /// input, output, cached_input, cache_write, reasoning.
    tokens: [metrics::Counter; 5],
    cost: metrics::Counter,
}

const TOKEN_TYPES: [&str; 5] = [
    "input",
    "output",
    "cached_input",
    "cache_write",
    "reasoning",
];

impl AliasMetrics {
    pub fn new(alias: &str) -> AliasMetrics {
        AliasMetrics {
            alias: alias.to_owned(),
            duration: metrics::histogram!(Histogram::RequestDuration.name(), "alias" => alias.to_owned()),
            ttft: metrics::histogram!(Histogram::TimeToFirstToken.name(), "alias" => alias.to_owned()),
            requests: RwLock::default(),
            teams: RwLock::default(),
        }
    }

    /// [`record_call`] for a request of this alias.
    pub fn record(&self, record: &UsageRecord, elapsed: Duration) {
        if record.alias != self.alias {
            return record_call(record, elapsed);
        }
        self.duration.record(elapsed.as_secs_f64());
        if let Some(ttft) = record.ttft_ms {
            self.ttft.record(ttft as f64 / 1000.0);
        }
        match self.request_counter(record) {
            Some(counter) => counter.increment(1),
            None => crate::metrics::count_request(record),
        }
        let usage = &record.usage;
        if usage.total_tokens() == 0 && record.cost.0 == 0 {
            return;
        }
        let counts = [
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
            usage.reasoning_tokens,
        ];
        let cost = u64::try_from(record.cost.0).unwrap_or(0);
        match self.team_series(record, |series| {
            for (counter, n) in series.tokens.iter().zip(counts) {
                if n > 0 {
                    counter.increment(n);
                }
            }
            if cost > 0 {
                series.cost.increment(cost);
            }
        }) {
            Some(()) => {}
            None => crate::metrics::count_tokens(record),
        }
    }

    fn request_counter(&self, record: &UsageRecord) -> Option<metrics::Counter> {
        let status = status_class(record);
        let matches = |s: &RequestSeries| {
            s.status == status
                && s.provider == record.provider
                && s.model == record.model
                && s.code == record.error_code
        };
        if let Some(series) = self.requests.read().iter().find(|s| matches(s)) {
            return Some(series.counter.clone());
        }
        let mut all = self.requests.write();
        if let Some(series) = all.iter().find(|s| matches(s)) {
            return Some(series.counter.clone());
        }
        if all.len() >= MAX_SERIES {
            return None;
        }
        let counter = crate::metrics::request_counter(record);
        all.push(RequestSeries {
            provider: record.provider.clone(),
            model: record.model.clone(),
            status,
            code: record.error_code.clone(),
            counter: counter.clone(),
        });
        Some(counter)
    }

    fn team_series(&self, record: &UsageRecord, add: impl Fn(&TeamSeries)) -> Option<()> {
        let (org, team) = (&record.caller.org, &record.caller.team);
        let matches = |s: &TeamSeries| &s.org == org && &s.team == team;
        if let Some(series) = self.teams.read().iter().find(|s| matches(s)) {
            add(series);
            return Some(());
        }
        let mut all = self.teams.write();
        if !all.iter().any(&matches) {
            if all.len() >= MAX_SERIES {
                return None;
            }
            let label = team_label(record);
            let tokens = TOKEN_TYPES.map(|kind| {
                metrics::counter!(Counter::Tokens.name(),
                    "alias" => self.alias.clone(), "team" => label.clone(), "type" => kind)
            });
            let cost = metrics::counter!(Counter::CostMicroUsd.name(),
                "alias" => self.alias.clone(), "team" => label);
            all.push(TeamSeries {
                org: org.clone(),
                team: team.clone(),
                tokens,
                cost,
            });
        }
        all.iter().find(|s| matches(s)).map(add)
    }
}
