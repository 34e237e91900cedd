//! Limit counters shared by every gateway instance through Redis: [`RedisLimits`] implements
//! [`LimitBackend`] with one Lua script per call (`acquire.lua`, `settle.lua`, `peek.lua` beside
//! this file, each after the shared `reply.lua`), so each acquire, settle or peek is one round
//! trip (EVALSHA, loading the script first when Redis has not cached it) and atomic with
//! respect to every other instance. The scripts take the time from Redis (`TIME`), so instances
//! with skewed clocks share windows and leases. They apply the same rules as the in-memory backend (`switchboard_core`'s
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
//! This is on every request's path, so the commands are packed without a `String` per argument:
//! numbers are written as integers, keys straight into the command ([`RedisKey`]). The scripts
//! answer with one string of integers rather than an array of integer replies, which redis-rs
//! would decode element by element through its general parser at many times the cost.
//!
//! Every call is bounded by the timeout given to [`RedisLimits::connect`] and fails with a
//! [`BackendError`] rather than waiting; the connection (a `ConnectionManager`, which reconnects
//! on its own) is made on first use if Redis was down at startup.

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, RedisWrite, Script, ToRedisArgs};
use std::future::Future;
use std::io::Write;
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
            acquire: Script::new(concat!(
                include_str!("reply.lua"),
                include_str!("acquire.lua")
            )),
            settle: Script::new(concat!(
                include_str!("reply.lua"),
                include_str!("settle.lua")
            )),
            peek: Script::new(concat!(include_str!("reply.lua"), include_str!("peek.lua"))),
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

    fn key<'a>(&'a self, counter: &'a Counter) -> RedisKey<'a> {
        RedisKey {
            prefix: &self.prefix,
            counter,
        }
    }

    /// Runs a script command made by [`script_cmd`] and returns the integers of its reply.
    async fn run(&self, what: &str, script: &Script, cmd: Cmd) -> Result<Vec<i64>, BackendError> {
        let reply: Vec<u8> = self
            .call(what, |mut conn| async move {
                match cmd.query_async(&mut conn).await {
                    // Redis has not cached the script (it restarted, or was flushed): load it
                    // and ask again, as redis-rs's `ScriptInvocation` does.
                    Err(err) if err.kind() == redis::ErrorKind::NoScriptError => {
                        script.load_async(&mut conn).await?;
                        cmd.query_async(&mut conn).await
                    }
                    reply => reply,
                }
            })
            .await?;
        numbers(&reply)
    }
}

/// A counter's Redis key, `{prefix}{kind}:{counter key}`, written straight into the command.
struct RedisKey<'a> {
    prefix: &'a str,
    counter: &'a Counter,
}

impl ToRedisArgs for RedisKey<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        let kind: &[u8] = match self.counter.kind {
            CounterKind::Requests { .. } => b"q:",
            CounterKind::Tokens { .. } => b"t:",
            CounterKind::Concurrent { .. } => b"c:",
            CounterKind::Budget { .. } => b"b:",
        };
        let mut arg = out.writer_for_next_arg();
        for part in [self.prefix.as_bytes(), kind, self.counter.key.as_bytes()] {
            // Writing into the command's buffer cannot fail.
            let _ = arg.write_all(part);
        }
    }
}

/// `EVALSHA {script} {keys}`, room made for `keys` keys and `args` more arguments.
fn script_cmd(script: &Script, keys: usize, args: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(3 + keys + args, 48 + 64 * keys + 12 * args);
    cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
    cmd
}

/// The integers of a script's reply: one string, separated by spaces (see the scripts).
fn numbers(reply: &[u8]) -> Result<Vec<i64>, BackendError> {
    let text = std::str::from_utf8(reply).map_err(|_| malformed())?;
    text.split_ascii_whitespace()
        .map(|n| n.parse().map_err(|_| malformed()))
        .collect()
}

/// The five script arguments describing a counter (see acquire.lua).
fn acquire_args(cmd: &mut Cmd, kind: &CounterKind) {
    match *kind {
        // A zero-length window would divide by zero; the local backend treats it as 1 ms too.
        CounterKind::Requests { limit, window_ms } => {
            cmd.arg(1).arg(limit).arg(window_ms.max(1)).arg(0).arg(0)
        }
        CounterKind::Tokens { limit, window_ms } => {
            cmd.arg(2).arg(limit).arg(window_ms.max(1)).arg(0).arg(0)
        }
        CounterKind::Concurrent { limit, lease_ms } => {
            cmd.arg(3).arg(limit).arg(lease_ms).arg(0).arg(0)
        }
        CounterKind::Budget {
            limit,
            enforce,
            seed,
            ttl_ms,
        } => cmd
            .arg(4)
            .arg(limit)
            .arg(i32::from(enforce))
            .arg(seed)
            .arg(ttl_ms),
    };
}

/// The five script arguments of a settlement entry after its request id (see settle.lua); op 0
/// when the entry's kind does not fit its counter's, which the script skips.
fn settle_args(cmd: &mut Cmd, entry: &Settle) {
    match (entry.counter.kind, entry.kind) {
        (CounterKind::Tokens { window_ms, .. }, SettleKind::Tokens { window, delta }) => cmd
            .arg(1)
            .arg(window_ms.max(1))
            .arg(window)
            .arg(delta)
            .arg(0),
        (CounterKind::Concurrent { .. }, SettleKind::Release) => {
            cmd.arg(2).arg(0).arg(0).arg(0).arg(0)
        }
        (CounterKind::Budget { seed, ttl_ms, .. }, SettleKind::Budget { reserved, actual }) => {
            cmd.arg(3).arg(seed).arg(ttl_ms).arg(reserved).arg(actual)
        }
        _ => cmd.arg(0).arg(0).arg(0).arg(0).arg(0),
    };
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
        let mut cmd = script_cmd(&self.acquire, counters.len(), 3 + 5 * counters.len());
        for c in counters {
            cmd.arg(self.key(c));
        }
        cmd.arg(demand.request_id)
            .arg(demand.tokens)
            .arg(demand.cost);
        for c in counters {
            acquire_args(&mut cmd, &c.kind);
        }
        let reply = self.run("acquire", &self.acquire, cmd).await?;
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
        let mut cmd = script_cmd(&self.settle, total, 6 * total);
        for (_, entries) in jobs {
            for entry in *entries {
                cmd.arg(self.key(&entry.counter));
            }
        }
        for (request_id, entries) in jobs {
            for entry in *entries {
                cmd.arg(*request_id);
                settle_args(&mut cmd, entry);
            }
        }
        let reply = self.run("settle", &self.settle, cmd).await?;
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
        let mut cmd = script_cmd(&self.peek, counters.len(), 2 * counters.len());
        for c in counters {
            cmd.arg(self.key(c));
        }
        for c in counters {
            match c.kind {
                CounterKind::Requests { window_ms, .. } => cmd.arg(1).arg(window_ms.max(1)),
                CounterKind::Tokens { window_ms, .. } => cmd.arg(2).arg(window_ms.max(1)),
                CounterKind::Concurrent { .. } => cmd.arg(3).arg(0),
                CounterKind::Budget { seed, .. } => cmd.arg(4).arg(seed),
            };
        }
        let reply = self.run("peek", &self.peek, cmd).await?;
        states(counters, &reply)
    }
}
