//! Where limit counters live: [`LimitBackend`] is implemented in memory (`local.rs`, one
//! instance) and in Redis (the store crate, shared by every instance through atomic Lua
//! scripts). Both give the same answers for the same calls; `limits/tests` runs one suite
//! against each.
//!
//! The limiter turns a request and the rules that match it into a list of [`Counter`]s; the
//! backend checks and takes them all or none in one step (so a request refused by one rule
//! does not use up another rule's allowance), and later settles them with what the request
//! actually used.

use async_trait::async_trait;
use std::fmt::Debug;
use std::sync::Arc;

/// One counter a request must pass. `key` names it identically on every instance; it is shared
/// (`Arc`) because the limiter keeps each caller's counters and hands them to every request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Counter {
    pub key: Arc<str>,
    pub kind: CounterKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterKind {
    /// At most `limit` requests per fixed window of `window_ms` (windows are aligned to the
    /// epoch on the backend's clock: Redis's own clock when shared).
    Requests { limit: u64, window_ms: u64 },
    /// At most `limit` tokens per fixed window. Admission counts the request's estimated input
    /// tokens and refuses when they would not fit; settling adds what was really used.
    Tokens { limit: u64, window_ms: u64 },
    /// At most `limit` requests in flight. Each is a lease that expires after `lease_ms`, so
    /// an instance that dies does not hold its slots forever.
    Concurrent { limit: u64, lease_ms: u64 },
    /// Spend in micro-dollars over a budget period: admission reserves the request's
    /// worst-case cost and refuses (when `enforce`) if spent + reserved + cost would exceed
    /// `limit`; settling releases the reservation and adds the actual cost. The counter is
    /// created with `seed` as spent (spend already recorded in storage for the period) and
    /// lives `ttl_ms` (0: forever).
    Budget {
        limit: i64,
        enforce: bool,
        seed: i64,
        ttl_ms: u64,
    },
}

/// What one request asks of its counters.
#[derive(Clone, Copy, Debug)]
pub struct Demand<'a> {
    pub request_id: &'a str,
    /// Estimated input tokens (for `Tokens` counters).
    pub tokens: u64,
    /// Worst-case cost in micro-dollars (for `Budget` counters).
    pub cost: i64,
}

/// A counter as it stands after an admission (or a peek).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterState {
    pub limit: i64,
    /// Requests in the window, tokens in the window, requests in flight, or spent + reserved
    /// micro-dollars, including this request when it was admitted.
    pub used: i64,
    /// Milliseconds until the window starts afresh (0 for `Concurrent` and `Budget`, whose
    /// reset the limiter knows).
    pub reset_ms: u64,
    /// The window the request was counted in, for settling `Tokens` (0 for other kinds).
    pub window: u64,
}

impl CounterState {
    pub fn remaining(&self) -> i64 {
        (self.limit - self.used).max(0)
    }
}

/// The backend's answer to an admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every counter was taken; one state per counter, in order.
    Admitted(Vec<CounterState>),
    /// Counter `index` is full; nothing was taken. `retry_after_ms` is when it has room again
    /// as far as the backend knows (0 when it cannot tell, as for budgets and concurrency).
    Refused {
        index: usize,
        retry_after_ms: u64,
        state: CounterState,
    },
}

/// What a finished request gives back to one of its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settle {
    pub counter: Counter,
    pub kind: SettleKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleKind {
    /// Add `delta` (actual minus estimated, may be negative) to the tokens of `window`.
    Tokens { window: u64, delta: i64 },
    /// Free the request's slot.
    Release,
    /// Drop the reservation of `reserved` and add `actual` to spent.
    Budget { reserved: i64, actual: i64 },
}

/// Spend of a budget counter before and after a settlement, for threshold alerts: exactly one
/// settlement sees a given threshold crossed, on whichever instance it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpendChange {
    pub before: i64,
    pub after: i64,
}

/// The backend could not answer (Redis down or slow). The message is for the log.
#[derive(Clone, Debug, thiserror::Error)]
#[error("limit backend: {0}")]
pub struct BackendError(pub String);

/// Counter storage. Implementations must make `acquire` all-or-nothing and atomic with respect
/// to every other call on the same keys, from any instance.
#[async_trait]
pub trait LimitBackend: Send + Sync + Debug {
    /// Checks every counter and, if all have room, takes them; otherwise takes none.
    async fn acquire(
        &self,
        counters: &[Counter],
        demand: &Demand<'_>,
    ) -> Result<Verdict, BackendError>;

    /// Settles a finished request's counters. Returns, per entry in order, the spend change of
    /// `Budget` entries (`None` for other kinds).
    async fn settle(
        &self,
        request_id: &str,
        entries: &[Settle],
    ) -> Result<Vec<Option<SpendChange>>, BackendError>;

    /// Settles several finished requests at once (the settle worker batches what queued up).
    /// Same results as calling [`LimitBackend::settle`] for each, in order; a backend where one
    /// call per request is cheap keeps this default.
    async fn settle_many(
        &self,
        jobs: &[(&str, &[Settle])],
    ) -> Result<Vec<Vec<Option<SpendChange>>>, BackendError> {
        let mut out = Vec::with_capacity(jobs.len());
        for (request_id, entries) in jobs {
            out.push(self.settle(request_id, entries).await?);
        }
        Ok(out)
    }

    /// The counters as they stand, taking nothing (for `GET /v1/key` and the admin API).
    async fn peek(&self, counters: &[Counter]) -> Result<Vec<CounterState>, BackendError>;
}
