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
    /// At most `limit` requests in flight. Each admission takes a lease that expires after
    /// `lease_ms` (so an instance that dies, or a release that is lost, does not hold a slot
    /// forever). Leases are counted per time bucket of `lease_ms / 8` rather than kept one by
    /// one: a lease lives at least `lease_ms` and at most one bucket longer (see
    /// [`lease_bucket`]), and each admission takes its own slot whatever its request id.
    Concurrent { limit: u64, lease_ms: u64 },
    /// Spend in micro-dollars over a budget period: admission reserves the request's
    /// worst-case cost and refuses (when `enforce`) if spent + reserved + cost would exceed
    /// `limit`; settling releases the reservation and adds the actual cost. The counter is
    /// created with `seed` as spent (spend already recorded in storage for the period) and
    /// expires at `expires_at_ms` (ms since the epoch; 0: never). An instant rather than a
    /// duration, so that a budget's description is the same for every request of its period
    /// (and a batch of them shares one counter).
    Budget {
        limit: i64,
        enforce: bool,
        seed: i64,
        expires_at_ms: u64,
    },
}

/// How many buckets a lease's lifetime spans: leases are counted per bucket of
/// `lease_ms / LEASE_BUCKETS`, so a concurrency counter is a handful of numbers however many
/// requests are in flight.
pub const LEASE_BUCKETS: u64 = 8;

/// The length of a lease bucket in milliseconds (at least 1).
pub fn lease_bucket_ms(lease_ms: u64) -> u64 {
    (lease_ms / LEASE_BUCKETS).max(1)
}

/// The bucket a lease taken at `now_ms` is counted in.
pub fn lease_bucket(now_ms: u64, lease_ms: u64) -> u64 {
    now_ms / lease_bucket_ms(lease_ms)
}

/// When the leases of `bucket` expire (they are live while this is after now): `lease_ms` after
/// the bucket's last millisecond, so that every lease lives at least `lease_ms`. The Redis
/// scripts compute the same.
pub fn lease_expiry(bucket: u64, lease_ms: u64) -> u64 {
    bucket
        .saturating_add(1)
        .saturating_mul(lease_bucket_ms(lease_ms))
        .saturating_add(lease_ms)
        .saturating_sub(1)
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
    /// Where the request was counted, for settling: the window of `Tokens`, the lease bucket of
    /// `Concurrent` (0 for other kinds).
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
    /// Free the request's slot, a lease taken in `bucket` (its [`CounterState::window`]). A
    /// lease that has expired is not released again.
    Release { bucket: u64 },
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

    /// [`LimitBackend::acquire`] of counters the caller shares (a limiter's kept plan): a
    /// backend that queues the call keeps a reference instead of a copy.
    async fn acquire_shared(
        &self,
        counters: &Arc<[Counter]>,
        demand: &Demand<'_>,
    ) -> Result<Verdict, BackendError> {
        self.acquire(counters, demand).await
    }

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
