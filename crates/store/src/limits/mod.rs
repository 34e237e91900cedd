//! Limit counters shared by every gateway instance through Redis: [`RedisLimits`] implements
//! [`LimitBackend`] with Lua scripts (`acquire.lua`, `settle.lua`, `peek.lua` beside this file,
//! each after the shared `shared.lua`): each is one round trip (EVALSHA, loading the script first
//! when Redis has not cached it) and atomic with respect to every other instance.
//!
//! Acquires are batched: one task per instance sends every acquire that queued up while the
//! previous batch was in Redis as one script call, in which each request is decided in order
//! exactly as if it had come alone. Nothing waits to fill a batch (an acquire on an idle instance
//! goes out at once); under load, Redis reads and writes each counter once per batch instead of
//! once per request, and the gateway makes one round trip for many requests. Settlements are
//! batched the same way by the limiter's settle worker (`settle_many`).
//!
//! The scripts take the time from Redis (`TIME`), so instances with skewed clocks share windows
//! and leases. They apply the same rules as the in-memory backend (`switchboard_core`'s
//! `limits/local/counter.rs`); the suite in `tests/store/limits.rs` runs against both.
//!
//! Keys are `{prefix}{kind}:{counter key}` with the prefix `switchboard:rl:` and the kind `q`
//! (requests), `t` (tokens), `l` (concurrent: leases) or `b` (budget). Each is one Redis key:
//! a hash `{w, n}` for a window (TTL 2 x window, set when the window begins), a hash of lease
//! counts by lease bucket (TTL until the newest bucket's leases expire), a hash
//! `{spent, reserved}` for a budget (expiring at its `expires_at_ms`). Nothing is left behind without
//! a TTL except budgets that ask for none. Leases are counted, not named, so that a request's
//! lease costs Redis no command of its own (see `lease_bucket` in the core crate).
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
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use switchboard_core::limits::{
    BackendError, Counter, CounterKind, CounterState, Demand, LimitBackend, Settle, SettleKind,
    SpendChange, Verdict,
};
use tokio::sync::{mpsc, oneshot, OnceCell};

mod merge;

/// The prefix of every key unless [`RedisLimits::with_prefix`] says otherwise.
const DEFAULT_PREFIX: &str = "switchboard:rl:";

/// At most this many requests in one acquire script (a bound on the script's run time, during
/// which Redis serves nobody else).
const MAX_BATCH: usize = 128;

/// Acquires waiting for the batch task; a full queue makes callers wait to enqueue.
const QUEUE: usize = 4096;

/// Limit counters in Redis, shared by every instance that uses the same Redis and prefix.
pub struct RedisLimits {
    inner: Arc<Inner>,
    /// The batch task's queue, started by the first acquire (so that `with_prefix` can still
    /// change the prefix before it).
    batches: OnceLock<mpsc::Sender<AcquireJob>>,
}

/// The connection and scripts, shared with the batch task.
#[derive(Clone)]
struct Inner {
    client: redis::Client,
    url: String,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
    prefix: String,
    acquire: Script,
    settle: Script,
    peek: Script,
    /// Acquire scripts sent so far (each for a batch of one request or more).
    acquire_calls: Arc<AtomicU64>,
}

/// One request's acquire, queued for the batch task.
struct AcquireJob {
    /// Shared with the caller's plan: requests of one plan in a batch are known by pointer.
    counters: Arc<[Counter]>,
    request_id: String,
    tokens: u64,
    cost: i64,
    reply: oneshot::Sender<Result<Verdict, BackendError>>,
}

impl std::fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        f.debug_struct("RedisLimits")
            .field("url", &crate::redact_url(&inner.url))
            .field("prefix", &inner.prefix)
            .field("timeout", &inner.timeout)
            .field("connected", &inner.conn.initialized())
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
        let inner = Inner {
            client,
            url: url.to_owned(),
            conn: OnceCell::new(),
            timeout,
            prefix: DEFAULT_PREFIX.to_owned(),
            acquire: Script::new(concat!(
                include_str!("shared.lua"),
                include_str!("acquire.lua")
            )),
            settle: Script::new(concat!(
                include_str!("shared.lua"),
                include_str!("settle.lua")
            )),
            peek: Script::new(concat!(
                include_str!("shared.lua"),
                include_str!("peek.lua")
            )),
            acquire_calls: Arc::default(),
        };
        let limits = RedisLimits {
            inner: Arc::new(inner),
            batches: OnceLock::new(),
        };
        if let Err(err) = limits.ping().await {
            tracing::warn!(
                url = %crate::redact_url(url),
                error = %err,
                "Redis for limits is unreachable; will retry on use."
            );
        } else {
            limits.check_version().await;
        }
        Ok(limits)
    }

    /// Puts every key under `prefix` instead of `switchboard:rl:` (for tests, or several
    /// gateways sharing one Redis without sharing limits).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> RedisLimits {
        // Before the first acquire nothing else holds `inner`, so this does not copy it.
        Arc::make_mut(&mut self.inner).prefix = prefix.into();
        self
    }

    /// Checks that Redis answers within the timeout.
    pub async fn ping(&self) -> Result<(), BackendError> {
        self.inner
            .call("PING", |mut conn| async move {
                redis::cmd("PING").query_async::<()>(&mut conn).await
            })
            .await
    }

    /// Logs an error when the server is older than [`MIN_REDIS`]: every check would fail with a
    /// script error, counted as Redis being unavailable. A server that does not answer `INFO`
    /// (some managed services restrict it) is taken on trust.
    async fn check_version(&self) {
        let info = self
            .inner
            .call("INFO", |mut conn| async move {
                redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(&mut conn)
                    .await
            })
            .await;
        if let Some((major, minor)) = info.ok().as_deref().and_then(redis_version) {
            if (major, minor) < MIN_REDIS {
                tracing::error!(
                    url = %crate::redact_url(&self.inner.url),
                    version = %format!("{major}.{minor}"),
                    "Redis for limits is older than 4.0, whose commands (HSET of several fields) the limit scripts use; every check will fail."
                );
            }
        }
    }

    /// How many acquire scripts this instance has sent: fewer than its acquires when they
    /// queued up and were batched.
    pub fn acquire_calls(&self) -> u64 {
        self.inner.acquire_calls.load(Ordering::Relaxed)
    }

    /// The batch task's queue, the task started on first use.
    fn batches(&self) -> &mpsc::Sender<AcquireJob> {
        self.batches.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run_batches(self.inner.clone(), rx));
            tx
        })
    }
}

/// The batch task: sends what queued up as one acquire script, hands each request its verdict,
/// and repeats; it ends when the [`RedisLimits`] is dropped.
async fn run_batches(inner: Arc<Inner>, mut queue: mpsc::Receiver<AcquireJob>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        // A caller that gave up (timed out or cancelled) before its batch went out is not
        // counted; one that gives up while its batch is in Redis is, as with any lost reply.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        match inner.acquire_batch(&jobs).await {
            Ok(verdicts) => {
                let mut abandoned = Vec::new();
                for (job, verdict) in jobs.drain(..).zip(verdicts) {
                    let AcquireJob {
                        counters,
                        request_id,
                        tokens,
                        cost,
                        reply,
                    } = job;
                    // The caller gave up while its batch was in Redis (it timed out and fell
                    // back to local counters, or its client went away): give back what it was
                    // admitted with, or its lease and reservation would stay until they expire.
                    if let Err(Ok(Verdict::Admitted(states))) = reply.send(Ok(verdict)) {
                        abandoned.push((request_id, give_back(&counters, &states, tokens, cost)));
                    }
                }
                if !abandoned.is_empty() {
                    let settles: Vec<(&str, &[Settle])> = abandoned
                        .iter()
                        .map(|(id, entries)| (id.as_str(), entries.as_slice()))
                        .collect();
                    if let Err(err) = inner.settle_batch(&settles).await {
                        tracing::warn!(%err, "Cannot give back the counters of abandoned acquires.");
                    }
                }
            }
            Err(err) => {
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

impl Inner {
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
                // Redis has not cached the script (it restarted, or was flushed): load it and
                // ask again, as redis-rs's `ScriptInvocation` does; a few times, since another
                // flush may come between the load and the call.
                let mut loads = 0;
                loop {
                    match cmd.query_async(&mut conn).await {
                        Err(err) if err.kind() == redis::ErrorKind::NoScriptError && loads < 3 => {
                            loads += 1;
                            script.load_async(&mut conn).await?;
                        }
                        reply => break reply,
                    }
                }
            })
            .await?;
        numbers(&reply)
    }

    /// One acquire script for every job, in order; one verdict per job. Counters and counter
    /// lists the jobs share are sent once (a busy caller's requests all have the same list), so
    /// that a request costs the script three arguments and a character of reply.
    async fn acquire_batch(&self, jobs: &[AcquireJob]) -> Result<Vec<Verdict>, BackendError> {
        let batch = Batch::of(jobs);
        let lists: usize = batch.lists.iter().map(|l| 1 + l.len()).sum();
        let mut cmd = script_cmd(
            &self.acquire,
            batch.counters.len(),
            5 * batch.counters.len() + 1 + lists + 1 + 3 * jobs.len(),
        );
        for c in &batch.counters {
            cmd.arg(self.key(c));
        }
        for c in &batch.counters {
            acquire_args(&mut cmd, &c.kind);
        }
        cmd.arg(batch.lists.len());
        for list in &batch.lists {
            cmd.arg(list.len());
            for &position in list {
                cmd.arg(position + 1);
            }
        }
        cmd.arg(jobs.len());
        for (job, &list) in jobs.iter().zip(&batch.list_of_job) {
            cmd.arg(job.tokens).arg(job.cost).arg(list + 1);
        }
        self.acquire_calls.fetch_add(1, Ordering::Relaxed);
        let reply = self.run("acquire", &self.acquire, cmd).await?;
        batch.verdicts(jobs, &reply)
    }

    /// One settle script for every job's entries, in order (see settle.lua), merged where
    /// that is exact (see merge.rs).
    async fn settle_batch(
        &self,
        jobs: &[(&str, &[Settle])],
    ) -> Result<Vec<Vec<Option<SpendChange>>>, BackendError> {
        let batch = merge::Entries::of(jobs);
        if batch.entries.is_empty() {
            return Ok(jobs.iter().map(|(_, e)| vec![None; e.len()]).collect());
        }
        let mut cmd = script_cmd(
            &self.settle,
            batch.counters.len(),
            2 * batch.counters.len() + 4 * batch.entries.len(),
        );
        for c in &batch.counters {
            cmd.arg(self.key(c));
        }
        for c in &batch.counters {
            settle_key_args(&mut cmd, &c.kind);
        }
        for entry in &batch.entries {
            cmd.arg(entry.op.code()).arg(entry.counter + 1);
            match &entry.op {
                merge::Op::Tokens { window, delta } => cmd.arg(*window).arg(*delta),
                merge::Op::Release { bucket, count } => cmd.arg(*bucket).arg(*count),
                merge::Op::Budget {
                    reserved, actual, ..
                } => cmd.arg(*reserved).arg(*actual),
            };
        }
        let reply = self.run("settle", &self.settle, cmd).await?;
        batch.changes(jobs, &reply).ok_or_else(malformed)
    }
}

/// Distinct items in the order first seen, each with its position. A batch has few: they are
/// found by comparison (a counter's `Arc` key compares by pointer first, and a caller's
/// requests share their plan's keys) until there are more than [`LINEAR`], then through a map.
/// Hashing every counter of every request cost more than the rest of the batch's bookkeeping.
struct Distinct<T> {
    items: Vec<T>,
    at: Option<HashMap<T, usize>>,
}

/// The oldest Redis the scripts run on (`HSET` of several fields came in 4.0); Valkey reports a
/// compatible `redis_version`.
const MIN_REDIS: (u32, u32) = (4, 0);

/// Major and minor version from `INFO server`'s `redis_version:7.0.15` line.
fn redis_version(info: &str) -> Option<(u32, u32)> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?;
    let mut parts = version.trim().split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Most items a [`Distinct`] searches one by one.
const LINEAR: usize = 16;

impl<T> Default for Distinct<T> {
    fn default() -> Self {
        Distinct {
            items: Vec::new(),
            at: None,
        }
    }
}

impl<T: Clone + Eq + std::hash::Hash> Distinct<T> {
    /// The position of `item`, added if it is new (a new item is cloned: a reference for
    /// counters, a short list for counter lists).
    fn position(&mut self, item: &T) -> usize {
        let known = match &self.at {
            Some(at) => at.get(item).copied(),
            None => self.items.iter().position(|known| known == item),
        };
        if let Some(position) = known {
            return position;
        }
        let position = self.items.len();
        self.items.push(item.clone());
        match &mut self.at {
            Some(at) => {
                at.insert(item.clone(), position);
            }
            None if self.items.len() > LINEAR => {
                self.at = Some(self.items.iter().cloned().zip(0..).collect());
            }
            None => {}
        }
        position
    }
}

/// A batch's distinct counters and counter lists, and each job's list.
struct Batch<'a> {
    counters: Vec<&'a Counter>,
    /// Positions in `counters`.
    lists: Vec<Vec<usize>>,
    list_of_job: Vec<usize>,
}

impl<'a> Batch<'a> {
    fn of(jobs: &'a [AcquireJob]) -> Batch<'a> {
        let mut counters = Distinct::default();
        let mut lists = Distinct::default();
        let mut list = Vec::new();
        let mut previous: Option<(&Arc<[Counter]>, usize)> = None;
        let list_of_job = jobs
            .iter()
            .map(|job| {
                // A busy caller's requests share their plan's counters: the same list as the
                // request before, found without comparing counters.
                if let Some((shared, at)) = previous {
                    if Arc::ptr_eq(shared, &job.counters) {
                        return at;
                    }
                }
                list.clear();
                list.extend(job.counters.iter().map(|c| counters.position(&c)));
                let at = lists.position(&list);
                previous = Some((&job.counters, at));
                at
            })
            .collect();
        Batch {
            counters: counters.items,
            lists: lists.items,
            list_of_job,
        }
    }

    /// The verdicts in the script's reply (see acquire.lua): an admission answered with just
    /// `1` gets its used values by replaying the batch's admissions from each counter's value
    /// before the batch.
    fn verdicts(&self, jobs: &[AcquireJob], reply: &[i64]) -> Result<Vec<Verdict>, BackendError> {
        let (keys, mut rest) = reply
            .split_at_checked(3 * self.counters.len())
            .ok_or_else(malformed)?;
        let state = |position: usize, used: i64| {
            let c = self.counters[position];
            CounterState {
                limit: limit_of(&c.kind),
                used,
                reset_ms: u64::try_from(keys[3 * position]).unwrap_or(0),
                window: u64::try_from(keys[3 * position + 1]).unwrap_or(0),
            }
        };
        // What each counter holds as the replay goes; a refusal takes nothing.
        let mut held: Vec<i64> = keys.chunks_exact(3).map(|key| key[2]).collect();
        let mut verdicts = Vec::with_capacity(jobs.len());
        for (job, &list) in jobs.iter().zip(&self.list_of_job) {
            let list = &self.lists[list];
            let verdict = match rest {
                [1, tail @ ..] => {
                    rest = tail;
                    Verdict::Admitted(
                        list.iter()
                            .map(|&position| {
                                let taken = take(&self.counters[position].kind, job);
                                held[position] = held[position].saturating_add(taken);
                                state(position, held[position])
                            })
                            .collect(),
                    )
                }
                [2, tail @ ..] => {
                    let (used, tail) = tail.split_at_checked(list.len()).ok_or_else(malformed)?;
                    rest = tail;
                    Verdict::Admitted(
                        list.iter()
                            .zip(used)
                            .map(|(&position, &used)| {
                                held[position] = used;
                                state(position, used)
                            })
                            .collect(),
                    )
                }
                [0, index, used, tail @ ..] => {
                    rest = tail;
                    let index = usize::try_from(*index).map_err(|_| malformed())?;
                    let position = *list.get(index).ok_or_else(malformed)?;
                    let state = state(position, *used);
                    let retry_after_ms = match self.counters[position].kind {
                        CounterKind::Requests { .. } | CounterKind::Tokens { .. } => state.reset_ms,
                        CounterKind::Concurrent { .. } | CounterKind::Budget { .. } => 0,
                    };
                    Verdict::Refused {
                        index,
                        retry_after_ms,
                        state,
                    }
                }
                _ => return Err(malformed()),
            };
            verdicts.push(verdict);
        }
        if rest.is_empty() {
            Ok(verdicts)
        } else {
            Err(malformed())
        }
    }
}

/// What an admission takes from a counter, as acquire.lua takes it (a lease the request held
/// already takes nothing, but the script then answers with the used values).
fn take(kind: &CounterKind, job: &AcquireJob) -> i64 {
    match kind {
        CounterKind::Requests { .. } | CounterKind::Concurrent { .. } => 1,
        CounterKind::Tokens { .. } => i64::try_from(job.tokens).unwrap_or(i64::MAX),
        CounterKind::Budget { .. } => job.cost,
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
            CounterKind::Concurrent { .. } => b"l:",
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
            expires_at_ms,
        } => cmd
            .arg(4)
            .arg(limit)
            .arg(i32::from(enforce))
            .arg(seed)
            .arg(expires_at_ms),
    };
}

/// A settled counter's two numbers in settle.lua (a, b).
fn settle_key_args(cmd: &mut Cmd, kind: &CounterKind) {
    match *kind {
        CounterKind::Tokens { window_ms, .. } => cmd.arg(window_ms.max(1)).arg(0),
        CounterKind::Concurrent { lease_ms, .. } => cmd.arg(lease_ms).arg(0),
        CounterKind::Budget {
            seed,
            expires_at_ms,
            ..
        } => cmd.arg(seed).arg(expires_at_ms),
        CounterKind::Requests { .. } => cmd.arg(0).arg(0),
    };
}

/// The settlement that undoes an admission: leases released, tokens and reservations given
/// back (a request window keeps its count, as a request that ran would).
fn give_back(counters: &[Counter], states: &[CounterState], tokens: u64, cost: i64) -> Vec<Settle> {
    let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
    counters
        .iter()
        .zip(states)
        .filter_map(|(counter, state)| {
            let kind = match counter.kind {
                CounterKind::Requests { .. } => return None,
                CounterKind::Tokens { .. } => SettleKind::Tokens {
                    window: state.window,
                    delta: -tokens,
                },
                CounterKind::Concurrent { .. } => SettleKind::Release {
                    bucket: state.window,
                },
                CounterKind::Budget { .. } => SettleKind::Budget {
                    reserved: cost,
                    actual: 0,
                },
            };
            Some(Settle {
                counter: counter.clone(),
                kind,
            })
        })
        .collect()
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

fn stopped() -> BackendError {
    BackendError("redis acquire: the batch task has stopped".to_owned())
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
        self.acquire_shared(&Arc::from(counters), demand).await
    }

    async fn acquire_shared(
        &self,
        counters: &Arc<[Counter]>,
        demand: &Demand<'_>,
    ) -> Result<Verdict, BackendError> {
        if counters.is_empty() {
            return Ok(Verdict::Admitted(Vec::new()));
        }
        let (reply, verdict) = oneshot::channel();
        let job = AcquireJob {
            counters: counters.clone(),
            request_id: demand.request_id.to_owned(),
            tokens: demand.tokens,
            cost: demand.cost,
            reply,
        };
        let timeout = self.inner.timeout;
        let waited = tokio::time::timeout(timeout, async {
            self.batches().send(job).await.map_err(|_| stopped())?;
            verdict.await.map_err(|_| stopped())?
        });
        waited.await.unwrap_or_else(|_| {
            Err(BackendError(format!(
                "redis acquire: no answer within {} ms",
                timeout.as_millis()
            )))
        })
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
        self.inner.settle_batch(jobs).await
    }

    async fn peek(&self, counters: &[Counter]) -> Result<Vec<CounterState>, BackendError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = script_cmd(&self.inner.peek, counters.len(), 2 * counters.len());
        for c in counters {
            cmd.arg(self.inner.key(c));
        }
        for c in counters {
            match c.kind {
                CounterKind::Requests { window_ms, .. } => cmd.arg(1).arg(window_ms.max(1)),
                CounterKind::Tokens { window_ms, .. } => cmd.arg(2).arg(window_ms.max(1)),
                CounterKind::Concurrent { lease_ms, .. } => cmd.arg(3).arg(lease_ms),
                CounterKind::Budget { seed, .. } => cmd.arg(4).arg(seed),
            };
        }
        let reply = self.inner.run("peek", &self.inner.peek, cmd).await?;
        states(counters, &reply)
    }
}

#[cfg(test)]
mod tests {
    use super::{redis_version, Distinct, LINEAR, MIN_REDIS};

    #[test]
    fn redis_version_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(redis_version(info), Some((7, 0)));
        assert!(redis_version("redis_version:3.2.12\r\n").unwrap() < MIN_REDIS);
        assert!(redis_version("redis_version:4.0.0").unwrap() >= MIN_REDIS);
        assert_eq!(redis_version("# Server\r\nos:Linux\r\n"), None);
        assert_eq!(redis_version("redis_version:seven"), None);
    }

    #[test]
    fn distinct_positions_hold_across_the_switch_to_a_map() {
        let mut distinct = Distinct::default();
        let items: Vec<String> = (0..3 * LINEAR).map(|i| format!("k{i}")).collect();
        for (i, item) in items.iter().enumerate() {
            assert_eq!(distinct.position(item), i);
            // Every earlier item is still found where it was, before and after the map.
            assert_eq!(distinct.position(&items[i / 2]), i / 2);
        }
        assert!(distinct.at.is_some());
        assert_eq!(distinct.items, items);
    }
}
