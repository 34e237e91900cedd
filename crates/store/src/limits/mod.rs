//! Limit counters shared by every gateway instance through Redis: [`RedisLimits`] implements
//! [`LimitBackend`] with one Lua script per call (`acquire.lua`, `settle.lua`, `peek.lua` beside
//! this file), so each acquire, settle or peek is one round trip (EVALSHA, falling back to EVAL
//! when Redis has not cached the script) and atomic with respect to every other instance. The
//! scripts take the time from Redis (`TIME`), so instances with skewed clocks share windows and
//! leases. They apply the same rules as the in-memory backend (`switchboard_core`'s
//! `limits/local/counter.rs`); the suite in `tests/store/limits.rs` runs against both.
//!
//! Keys are `{prefix}{kind}:{counter key}` with the prefix `switchboard:rl:` and the kind `q`
//! (requests), `t` (tokens), `c` (concurrent) or `b` (budget). Each is one Redis key:
//! a hash `{w, n}` for a window (TTL 2 x window, refreshed on write), a sorted set of request ids
//! scored by lease expiry (TTL the longest lease), a hash `{spent, reserved}` for a budget (TTL
//! `ttl_ms` from creation). Nothing is left behind without a TTL except budgets that ask for none.
//!
//! Numbers are Lua doubles inside the scripts: exact up to 2^53 (about 9 billion dollars in
//! micro-dollars), which no counter approaches.
//!
//! Every call is bounded by the timeout given to [`RedisLimits::connect`] and fails with a
//! [`BackendError`] rather than waiting; the connection (a `ConnectionManager`, which reconnects
//! on its own) is made on first use if Redis was down at startup.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use std::future::Future;
use std::time::Duration;
use switchboard_core::limits::{
    BackendError, Counter, CounterKind, CounterState, Demand, LimitBackend, Settle, SettleKind,
    SpendChange, Verdict,
};
use tokio::sync::OnceCell;

/// The prefix of every key unless [`RedisLimits::with_prefix`] says otherwise.
const DEFAULT_PREFIX: &str = "switchboard:rl:";

/// Limit counters in Redis, shared by every instance that uses the same Redis and prefix.
pub struct RedisLimits {
    client: redis::Client,
    url: String,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
    prefix: String,
    acquire: Script,
    settle: Script,
    peek: Script,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimits")
            .field("url", &crate::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connected", &self.conn.initialized())
            .finish_non_exhaustive()
    }
}

impl RedisLimits {
    /// Counters in the Redis at `url`; every call fails with a [`BackendError`] after
    /// `timeout`. Fails only on an invalid URL: if Redis cannot be reached now, a warning is
    /// logged and each call tries again (use [`RedisLimits::ping`] to require it at startup).
    pub async fn connect(url: &str, timeout: Duration) -> Result<RedisLimits, BackendError> {
        let client = redis::Client::open(url).map_err(|e| {
            BackendError(format!(
                "invalid Redis URL `{}`: {e}",
                crate::redact_url(url)
            ))
        })?;
        let limits = RedisLimits {
            client,
            url: url.to_owned(),
            conn: OnceCell::new(),
            timeout,
            prefix: DEFAULT_PREFIX.to_owned(),
            acquire: Script::new(include_str!("acquire.lua")),
            settle: Script::new(include_str!("settle.lua")),
            peek: Script::new(include_str!("peek.lua")),
        };
        if let Err(err) = limits.ping().await {
            tracing::warn!(
                url = %crate::redact_url(url),
                error = %err,
                "Redis for limits is unreachable; will retry on use."
            );
        }
        Ok(limits)
    }

    /// Puts every key under `prefix` instead of `switchboard:rl:` (for tests, or several
    /// gateways sharing one Redis without sharing limits).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> RedisLimits {
        self.prefix = prefix.into();
        self
    }

    /// Checks that Redis answers within the timeout.
    pub async fn ping(&self) -> Result<(), BackendError> {
        self.call("PING", |mut conn| async move {
            redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await
    }

    /// The shared connection, made on first use. Concurrent first calls wait for one attempt;
    /// a failed attempt leaves the cell empty so the next call tries again.
    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout)
                    // No retries with backoff inside one attempt: they would spend the caller's
                    // timeout waiting while Redis refuses connections. A failed (re)connection
                    // is tried again by the next call, so traffic drives reconnection and each
                    // call fails fast while Redis is down.
                    .set_number_of_retries(0);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    /// Runs `f` on the connection, the whole of it (connecting included) bounded by the timeout.
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.connection().await?;
            f(conn).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(BackendError(format!("redis {what}: {err}"))),
            Err(_) => Err(BackendError(format!(
                "redis {what}: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    fn key(&self, counter: &Counter) -> String {
        let kind = match counter.kind {
            CounterKind::Requests { .. } => "q",
            CounterKind::Tokens { .. } => "t",
            CounterKind::Concurrent { .. } => "c",
            CounterKind::Budget { .. } => "b",
        };
        format!("{}{kind}:{}", self.prefix, counter.key)
    }
}

/// The five script arguments describing a counter (see acquire.lua).
fn acquire_args(kind: &CounterKind) -> [String; 5] {
    match *kind {
        // A zero-length window would divide by zero; the local backend treats it as 1 ms too.
        CounterKind::Requests { limit, window_ms } => nums(1, limit, window_ms.max(1), 0, 0),
        CounterKind::Tokens { limit, window_ms } => nums(2, limit, window_ms.max(1), 0, 0),
        CounterKind::Concurrent { limit, lease_ms } => nums(3, limit, lease_ms, 0, 0),
        CounterKind::Budget {
            limit,
            enforce,
            seed,
            ttl_ms,
        } => [
            "4".to_owned(),
            limit.to_string(),
            u8::from(enforce).to_string(),
            seed.to_string(),
            ttl_ms.to_string(),
        ],
    }
}

fn nums(kind: u8, a: u64, b: u64, c: u64, d: u64) -> [String; 5] {
    [
        kind.to_string(),
        a.to_string(),
        b.to_string(),
        c.to_string(),
        d.to_string(),
    ]
}

/// The five script arguments of a settlement entry (see settle.lua); op 0 when the entry's kind
/// does not fit its counter's, which the script skips.
fn settle_args(entry: &Settle) -> [String; 5] {
    match (entry.counter.kind, entry.kind) {
        (CounterKind::Tokens { window_ms, .. }, SettleKind::Tokens { window, delta }) => [
            "1".to_owned(),
            window_ms.max(1).to_string(),
            window.to_string(),
            delta.to_string(),
            "0".to_owned(),
        ],
        (CounterKind::Concurrent { .. }, SettleKind::Release) => nums(2, 0, 0, 0, 0),
        (CounterKind::Budget { seed, ttl_ms, .. }, SettleKind::Budget { reserved, actual }) => [
            "3".to_owned(),
            seed.to_string(),
            ttl_ms.to_string(),
            reserved.to_string(),
            actual.to_string(),
        ],
        _ => nums(0, 0, 0, 0, 0),
    }
}

/// The limit as reported in [`CounterState`] (known here, so the script need not return it).
fn limit_of(kind: &CounterKind) -> i64 {
    match *kind {
        CounterKind::Requests { limit, .. }
        | CounterKind::Tokens { limit, .. }
        | CounterKind::Concurrent { limit, .. } => i64::try_from(limit).unwrap_or(i64::MAX),
        CounterKind::Budget { limit, .. } => limit,
    }
}

/// A state from the script's triple (used, reset_ms, window).
fn state(kind: &CounterKind, triple: &[i64]) -> Result<CounterState, BackendError> {
    match triple {
        [used, reset, window] => Ok(CounterState {
            limit: limit_of(kind),
            used: *used,
            reset_ms: u64::try_from(*reset).unwrap_or(0),
            window: u64::try_from(*window).unwrap_or(0),
        }),
        _ => Err(malformed()),
    }
}

fn malformed() -> BackendError {
    BackendError("redis: malformed script reply".to_owned())
}

fn states(counters: &[Counter], reply: &[i64]) -> Result<Vec<CounterState>, BackendError> {
    if reply.len() != counters.len() * 3 {
        return Err(malformed());
    }
    counters
        .iter()
        .zip(reply.chunks_exact(3))
        .map(|(c, triple)| state(&c.kind, triple))
        .collect()
}

#[async_trait]
impl LimitBackend for RedisLimits {
    async fn acquire(
        &self,
        counters: &[Counter],
        demand: &Demand<'_>,
    ) -> Result<Verdict, BackendError> {
        if counters.is_empty() {
            return Ok(Verdict::Admitted(Vec::new()));
        }
        let mut invocation = self.acquire.prepare_invoke();
        invocation
            .arg(demand.request_id)
            .arg(demand.tokens)
            .arg(demand.cost);
        for c in counters {
            invocation.key(self.key(c)).arg(&acquire_args(&c.kind)[..]);
        }
        let reply: Vec<i64> = self
            .call("acquire", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        match reply.as_slice() {
            [1, 0, 0, rest @ ..] => states(counters, rest).map(Verdict::Admitted),
            [0, index, retry, triple @ ..] => {
                let index = usize::try_from(*index).map_err(|_| malformed())?;
                let counter = counters.get(index).ok_or_else(malformed)?;
                Ok(Verdict::Refused {
                    index,
                    retry_after_ms: u64::try_from(*retry).unwrap_or(0),
                    state: state(&counter.kind, triple)?,
                })
            }
            _ => Err(malformed()),
        }
    }

    /// Budget entries report spent (not counting reservations) before and after the settlement.
    /// An entry whose kind does not fit its counter's kind is ignored; a `Tokens` entry for a
    /// window that has ended is ignored too (a past window no longer decides anything).
    async fn settle(
        &self,
        request_id: &str,
        entries: &[Settle],
    ) -> Result<Vec<Option<SpendChange>>, BackendError> {
        let mut all = self.settle_many(&[(request_id, entries)]).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// One script for the whole batch: Redis's cost per script, not per request.
    async fn settle_many(
        &self,
        jobs: &[(&str, &[Settle])],
    ) -> Result<Vec<Vec<Option<SpendChange>>>, BackendError> {
        let total: usize = jobs.iter().map(|(_, entries)| entries.len()).sum();
        if total == 0 {
            return Ok(jobs.iter().map(|_| Vec::new()).collect());
        }
        let mut invocation = self.settle.prepare_invoke();
        for (request_id, entries) in jobs {
            for entry in *entries {
                invocation
                    .key(self.key(&entry.counter))
                    .arg(*request_id)
                    .arg(&settle_args(entry)[..]);
            }
        }
        let reply: Vec<i64> = self
            .call("settle", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        if reply.len() != total * 3 {
            return Err(malformed());
        }
        let mut changes = reply.chunks_exact(3).map(|triple| match triple {
            [1, before, after] => Some(SpendChange {
                before: *before,
                after: *after,
            }),
            _ => None,
        });
        Ok(jobs
            .iter()
            .map(|(_, entries)| changes.by_ref().take(entries.len()).collect())
            .collect())
    }

    async fn peek(&self, counters: &[Counter]) -> Result<Vec<CounterState>, BackendError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.peek.prepare_invoke();
        for c in counters {
            let (kind, p) = match c.kind {
                CounterKind::Requests { window_ms, .. } => (1, window_ms.max(1).to_string()),
                CounterKind::Tokens { window_ms, .. } => (2, window_ms.max(1).to_string()),
                CounterKind::Concurrent { .. } => (3, "0".to_owned()),
                CounterKind::Budget { seed, .. } => (4, seed.to_string()),
            };
            invocation.key(self.key(c)).arg(kind).arg(p);
        }
        let reply: Vec<i64> = self
            .call("peek", |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        states(counters, &reply)
    }
}
