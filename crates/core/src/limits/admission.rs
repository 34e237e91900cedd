//! What an admitted request holds: its counters, what it reserved, and the numbers for the
//! `x-ratelimit-*` headers. Dropping the [`Admission`] settles it (in the background): tokens
//! counted with the actual total, the concurrency slot freed, the budget reservation replaced
//! by the actual cost. A request that never reached a provider gives everything back.

use super::backend::{Counter, CounterKind, CounterState, Demand, Settle, SettleKind};
use super::limiter::Plan;
use super::rules::{BudgetAction, Scope};
use super::state::{BudgetAlerting, Held, LimitState, SettleJob};
use std::sync::Arc;

/// What a counter means, for errors, headers and alerts. Built once per cached plan (see
/// `Limiter::plan`) and shared by every request that uses it, hence the `Arc`s.
#[derive(Clone, Debug)]
pub(crate) struct CounterMeta {
    /// The rule's name.
    pub rule: Arc<str>,
    pub scope: Scope,
    /// The counter's owner within the scope (see `limits::subject`).
    pub subject: Arc<str>,
    pub kind: MetaKind,
}

impl CounterMeta {
    /// The limit of `counter` (the counter this meta describes) in words: "600 requests per
    /// minute for team acme/research". Only a refusal needs it, so it is formatted then.
    pub fn what(&self, counter: &CounterKind) -> String {
        let (scope, subject) = (self.scope.as_str(), &self.subject);
        let (amount, unit) = match (*counter, &self.kind) {
            (CounterKind::Budget { limit, .. }, MetaKind::Budget { period, .. }) => {
                let dollars = super::alerts::micros_text(limit);
                return format!("${dollars} per {period} for {scope} {subject}");
            }
            // The limiter makes request windows of a second or a minute only.
            (
                CounterKind::Requests {
                    limit,
                    window_ms: 1000,
                },
                _,
            ) => (limit, "requests per second"),
            (CounterKind::Requests { limit, .. }, _) => (limit, "requests per minute"),
            (CounterKind::Tokens { limit, .. }, _) => (limit, "tokens per minute"),
            (CounterKind::Concurrent { limit, .. }, _) => (limit, "concurrent requests"),
            // Not built (budget counters always come with budget metas); still worded.
            (CounterKind::Budget { limit, .. }, _) => {
                let dollars = super::alerts::micros_text(limit);
                return format!("${dollars} for {scope} {subject}");
            }
        };
        format!("{amount} {unit} for {scope} {subject}")
    }
}

#[derive(Clone, Debug)]
pub(crate) enum MetaKind {
    Requests,
    Tokens,
    Concurrent,
    Budget {
        period: &'static str,
        resets_ms: Option<i64>,
        action: BudgetAction,
        downgrade_to: Option<String>,
        thresholds: Arc<[u32]>,
    },
}

/// The tightest request and token limits of a request, for the `x-ratelimit-*` headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub requests: Option<HeaderTriple>,
    pub tokens: Option<HeaderTriple>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderTriple {
    pub limit: i64,
    pub remaining: i64,
    /// Milliseconds until the window resets.
    pub reset_ms: u64,
}

#[derive(Debug)]
struct Holding {
    state: Arc<LimitState>,
    held: Held,
    request_id: String,
    counters: Arc<[Counter]>,
    states: Vec<CounterState>,
    /// Shared with the limiter's cached plan, not copied per request.
    metas: Arc<[CounterMeta]>,
    reserved_tokens: u64,
    reserved_cost: i64,
    webhook: Option<Arc<str>>,
    /// Tokens and cost actually used, once known.
    actual: (u64, i64),
}

/// The counters one request holds until it ends.
#[derive(Debug, Default)]
pub struct Admission {
    held: Option<Holding>,
}

impl Admission {
    /// An admission that holds nothing (no rule applied).
    pub fn none() -> Admission {
        Admission::default()
    }

    pub(crate) fn new(
        state: Arc<LimitState>,
        held: Held,
        demand: &Demand<'_>,
        plan: Plan,
        states: Vec<CounterState>,
        webhook: Option<Arc<str>>,
    ) -> Admission {
        Admission {
            held: Some(Holding {
                state,
                held,
                request_id: demand.request_id.to_owned(),
                counters: plan.counters,
                states,
                metas: plan.metas,
                reserved_tokens: demand.tokens,
                reserved_cost: demand.cost,
                webhook,
                actual: (0, 0),
            }),
        }
    }

    /// Records what the request really used; settled when the admission is dropped.
    pub fn record(&mut self, tokens: u64, cost: i64) {
        if let Some(held) = &mut self.held {
            held.actual = (tokens, cost);
        }
    }

    /// The tightest requests and tokens counters (least remaining).
    pub fn headers(&self) -> RateHeaders {
        let Some(held) = &self.held else {
            return RateHeaders::default();
        };
        let mut out = RateHeaders::default();
        for (counter, state) in held.counters.iter().zip(&held.states) {
            let slot = match counter.kind {
                CounterKind::Requests { .. } => &mut out.requests,
                CounterKind::Tokens { .. } => &mut out.tokens,
                _ => continue,
            };
            let triple = HeaderTriple {
                limit: state.limit,
                remaining: state.remaining(),
                reset_ms: state.reset_ms,
            };
            if slot.is_none_or(|t| triple.remaining < t.remaining) {
                *slot = Some(triple);
            }
        }
        out
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let (tokens, cost) = held.actual;
        let mut entries = Vec::with_capacity(held.counters.len());
        let mut alerting = Vec::new();
        for ((counter, state), meta) in held.counters.iter().zip(&held.states).zip(&*held.metas) {
            let kind = match counter.kind {
                CounterKind::Requests { .. } => continue,
                CounterKind::Tokens { .. } => SettleKind::Tokens {
                    window: state.window,
                    delta: i64::try_from(tokens).unwrap_or(i64::MAX)
                        - i64::try_from(held.reserved_tokens).unwrap_or(i64::MAX),
                },
                CounterKind::Concurrent { .. } => SettleKind::Release {
                    bucket: state.window,
                },
                CounterKind::Budget { limit, .. } => {
                    if let MetaKind::Budget {
                        period, thresholds, ..
                    } = &meta.kind
                    {
                        if !thresholds.is_empty() {
                            alerting.push(BudgetAlerting {
                                entry: entries.len(),
                                budget: meta.rule.clone(),
                                scope: meta.scope,
                                subject: meta.subject.clone(),
                                period,
                                limit,
                                thresholds: thresholds.clone(),
                            });
                        }
                    }
                    SettleKind::Budget {
                        reserved: held.reserved_cost,
                        actual: cost,
                    }
                }
            };
            entries.push(Settle {
                counter: counter.clone(),
                kind,
            });
        }
        if entries.is_empty() {
            return;
        }
        held.state.settle(SettleJob {
            request_id: held.request_id,
            held: held.held,
            entries,
            alerting,
            webhook: held.webhook,
        });
    }
}
