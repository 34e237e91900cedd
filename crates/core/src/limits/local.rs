//! In-memory limit counters for a single instance (or as the configured fallback when Redis is
//! down). Same answers as the Redis backend for the same calls; the counter arithmetic lives in
//! `local/counter.rs` and the shared suite in the store crate runs against both.
//!
//! Counters are spread over [`SHARDS`] shards, each a `parking_lot::Mutex<Shard>`, so that
//! requests touching different keys rarely meet on a lock. An acquire locks every shard its
//! counters live in, in ascending shard order (so two acquires can never wait on each other in a
//! cycle), checks all counters, and takes all or none while holding them.
//!
//! Nothing runs in the background: expired windows, leases and budgets are ignored when read and
//! dropped when written, and each shard is swept of everything expired at most every
//! [`SWEEP_EVERY_MS`] when an acquire locks it, so memory follows the live keys.

mod counter;
#[cfg(test)]
mod tests;

use super::backend::{
    lease_bucket, lease_expiry, BackendError, Counter, CounterKind, CounterState, Demand,
    LimitBackend, Settle, SettleKind, SpendChange, Verdict,
};
use async_trait::async_trait;
use counter::{Tag, View};
use parking_lot::{Mutex, MutexGuard};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Number of shards: enough that a many-core gateway rarely contends, few enough that an acquire
/// over several counters locks a handful at most.
const SHARDS: usize = 32;

/// How often (at most) an acquire sweeps expired entries out of a shard it holds.
const SWEEP_EVERY_MS: u64 = 10_000;

/// Milliseconds since the epoch. Windows align to wall-clock time like Redis's, so a gateway
/// that falls back from Redis to local counters keeps the same window boundaries.
type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Counters kept in this process.
pub struct LocalBackend {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Clock,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Default for LocalBackend {
    fn default() -> Self {
        LocalBackend::new()
    }
}

fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl LocalBackend {
    /// Counters on the system clock.
    pub fn new() -> LocalBackend {
        LocalBackend::with_clock(system_clock)
    }

    /// Counters on `clock` (milliseconds since the epoch), so tests can move time without
    /// sleeping.
    pub fn with_clock(clock: impl Fn() -> u64 + Send + Sync + 'static) -> LocalBackend {
        LocalBackend {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            clock: Arc::new(clock),
        }
    }

    fn shard_of(&self, counter: &Counter) -> usize {
        let hash = self.hasher.hash_one((Tag::of(&counter.kind), &counter.key));
        // The remainder is below SHARDS, so the cast back cannot truncate.
        (hash % SHARDS as u64) as usize
    }

    /// The all-or-nothing admission, synchronous: no await happens while shards are locked.
    fn acquire_now(&self, counters: &[Counter], demand: &Demand<'_>) -> Verdict {
        let now = (self.clock)();
        let shard_of: Vec<usize> = counters.iter().map(|c| self.shard_of(c)).collect();
        let mut order = shard_of.clone();
        order.sort_unstable();
        order.dedup();
        // Ascending order everywhere, so no two acquires wait for each other in a cycle.
        let mut guards: Vec<MutexGuard<'_, Shard>> =
            order.iter().map(|&i| self.shards[i].lock()).collect();
        for guard in &mut guards {
            guard.sweep_if_due(now);
        }
        let guard_of = |shard: usize| order.binary_search(&shard).unwrap_or_else(|p| p);

        // A counter listed twice (same kind and key) is one counter taken twice: the second
        // entry sees what the first took, so the pair is checked as a whole.
        let first: Vec<usize> = (0..counters.len())
            .map(|i| {
                (0..i)
                    .find(|&j| same_counter(&counters[j], &counters[i]))
                    .unwrap_or(i)
            })
            .collect();
        let mut views: Vec<Option<View>> = vec![None; counters.len()];
        let mut states = Vec::with_capacity(counters.len());
        for (i, c) in counters.iter().enumerate() {
            let view = match views[first[i]] {
                Some(view) => view,
                None => guards[guard_of(shard_of[i])].view(c, now),
            };
            match counter::take(&c.kind, view, demand) {
                Some(after) => {
                    views[first[i]] = Some(after);
                    states.push(counter::state(&c.kind, after, now));
                }
                None => {
                    let state = counter::state(&c.kind, view, now);
                    return Verdict::Refused {
                        index: i,
                        retry_after_ms: counter::retry_after_ms(&c.kind, &state),
                        state,
                    };
                }
            }
        }
        for (i, c) in counters.iter().enumerate() {
            if let (true, Some(view)) = (first[i] == i, views[i]) {
                guards[guard_of(shard_of[i])].store(c, view, now);
            }
        }
        Verdict::Admitted(states)
    }

    fn settle_now(&self, entries: &[Settle]) -> Vec<Option<SpendChange>> {
        let now = (self.clock)();
        entries
            .iter()
            .map(|entry| {
                let mut shard = self.shards[self.shard_of(&entry.counter)].lock();
                shard.settle(entry, now)
            })
            .collect()
    }

    fn peek_now(&self, counters: &[Counter]) -> Vec<CounterState> {
        let now = (self.clock)();
        counters
            .iter()
            .map(|c| {
                let view = self.shards[self.shard_of(c)].lock().view(c, now);
                counter::state(&c.kind, view, now)
            })
            .collect()
    }

    /// Entries stored across all shards (windows, lease sets and budgets), for tests of the
    /// sweep.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

fn same_counter(a: &Counter, b: &Counter) -> bool {
    Tag::of(&a.kind) == Tag::of(&b.kind) && a.key == b.key
}

#[async_trait]
impl LimitBackend for LocalBackend {
    async fn acquire(
        &self,
        counters: &[Counter],
        demand: &Demand<'_>,
    ) -> Result<Verdict, BackendError> {
        Ok(self.acquire_now(counters, demand))
    }

    /// Budget entries report spent (not counting reservations) before and after the settlement.
    /// An entry whose kind does not fit its counter's kind is ignored; a `Tokens` entry for a
    /// window that has ended is ignored too (a past window no longer decides anything).
    async fn settle(
        &self,
        _request_id: &str,
        entries: &[Settle],
    ) -> Result<Vec<Option<SpendChange>>, BackendError> {
        Ok(self.settle_now(entries))
    }

    async fn peek(&self, counters: &[Counter]) -> Result<Vec<CounterState>, BackendError> {
        Ok(self.peek_now(counters))
    }
}

/// A fixed window's count; stale once the clock passes the window's end.
struct Window {
    index: u64,
    count: u64,
    window_ms: u64,
}

impl Window {
    fn expired(&self, now: u64) -> bool {
        counter::window_index(now, self.window_ms) != self.index
    }
}

/// Spend of one budget counter; `expires_at` is `u64::MAX` for a budget without a TTL.
struct Budget {
    spent: i64,
    reserved: i64,
    expires_at: u64,
}

/// Leases of one concurrency counter, counted per lease bucket as in Redis: (bucket, leases)
/// pairs, a handful at most, with the lease length they were last written with (for the sweep).
#[derive(Default)]
struct Leases {
    lease_ms: u64,
    buckets: Vec<(u64, u64)>,
}

impl Leases {
    fn live(&self, lease_ms: u64, now: u64) -> u64 {
        self.buckets
            .iter()
            .filter(|&&(bucket, _)| lease_expiry(bucket, lease_ms) > now)
            .map(|&(_, n)| n)
            .sum()
    }

    fn drop_expired(&mut self, now: u64) {
        let lease_ms = self.lease_ms;
        self.buckets
            .retain(|&(bucket, _)| lease_expiry(bucket, lease_ms) > now);
    }
}

#[derive(Default)]
struct Shard {
    requests: HashMap<Arc<str>, Window>,
    tokens: HashMap<Arc<str>, Window>,
    leases: HashMap<Arc<str>, Leases>,
    budgets: HashMap<Arc<str>, Budget>,
    next_sweep_ms: u64,
}

impl Shard {
    fn windows(&mut self, tag: Tag) -> &mut HashMap<Arc<str>, Window> {
        if tag == Tag::Tokens {
            &mut self.tokens
        } else {
            &mut self.requests
        }
    }

    /// The counter as it stands at `now`, ignoring (not removing) expired parts.
    fn view(&self, c: &Counter, now: u64) -> View {
        match c.kind {
            CounterKind::Requests { window_ms, .. } | CounterKind::Tokens { window_ms, .. } => {
                let windows = if Tag::of(&c.kind) == Tag::Tokens {
                    &self.tokens
                } else {
                    &self.requests
                };
                let index = counter::window_index(now, window_ms);
                let count = windows
                    .get(&c.key)
                    .filter(|w| w.index == index)
                    .map_or(0, |w| w.count);
                View::Window { index, count }
            }
            CounterKind::Concurrent { lease_ms, .. } => View::Leases {
                live: self
                    .leases
                    .get(&c.key)
                    .map_or(0, |leases| leases.live(lease_ms, now)),
                bucket: lease_bucket(now, lease_ms),
                added: 0,
            },
            CounterKind::Budget { seed, .. } => match self.budgets.get(&c.key) {
                Some(b) if b.expires_at > now => View::Budget {
                    spent: b.spent,
                    reserved: b.reserved,
                    exists: true,
                },
                _ => View::Budget {
                    spent: seed,
                    reserved: 0,
                    exists: false,
                },
            },
        }
    }

    /// Writes what an admission took.
    fn store(&mut self, c: &Counter, view: View, now: u64) {
        match (c.kind, view) {
            (
                CounterKind::Requests { window_ms, .. } | CounterKind::Tokens { window_ms, .. },
                View::Window { index, count },
            ) => {
                let windows = self.windows(Tag::of(&c.kind));
                let window = Window {
                    index,
                    count,
                    window_ms,
                };
                match windows.get_mut(&c.key) {
                    Some(slot) => *slot = window,
                    None => {
                        windows.insert(c.key.clone(), window);
                    }
                }
            }
            (CounterKind::Concurrent { lease_ms, .. }, View::Leases { bucket, added, .. }) => {
                let leases = match self.leases.get_mut(&c.key) {
                    Some(leases) => leases,
                    None => self.leases.entry(c.key.clone()).or_default(),
                };
                leases.lease_ms = lease_ms;
                leases.drop_expired(now);
                match leases.buckets.iter_mut().find(|(b, _)| *b == bucket) {
                    Some((_, n)) => *n = n.saturating_add(added),
                    None if added > 0 => leases.buckets.push((bucket, added)),
                    None => {}
                }
            }
            (
                CounterKind::Budget { expires_at_ms, .. },
                View::Budget {
                    spent,
                    reserved,
                    exists,
                },
            ) => self.store_budget(&c.key, spent, reserved, exists, expires_at_ms),
            _ => {}
        }
    }

    fn store_budget(
        &mut self,
        key: &Arc<str>,
        spent: i64,
        reserved: i64,
        exists: bool,
        expires_at_ms: u64,
    ) {
        match (exists, self.budgets.get_mut(key)) {
            (true, Some(b)) => {
                b.spent = spent;
                b.reserved = reserved;
            }
            _ => {
                // Created now, to end with its budget period (never extended).
                let expires_at = if expires_at_ms == 0 {
                    u64::MAX
                } else {
                    expires_at_ms
                };
                self.budgets.insert(
                    key.clone(),
                    Budget {
                        spent,
                        reserved,
                        expires_at,
                    },
                );
            }
        }
    }

    fn settle(&mut self, entry: &Settle, now: u64) -> Option<SpendChange> {
        let c = &entry.counter;
        match (c.kind, entry.kind) {
            (CounterKind::Tokens { window_ms, .. }, SettleKind::Tokens { window, delta }) => {
                if let View::Window { index, count } = self.view(c, now) {
                    // Only the current window still decides admissions; an ended one is left
                    // alone (Redis lets it expire the same way).
                    if index == window && (delta > 0 || count > 0) {
                        let count = counter::add_delta(count, delta);
                        self.tokens.insert(
                            c.key.clone(),
                            Window {
                                index,
                                count,
                                window_ms,
                            },
                        );
                    }
                }
                None
            }
            (CounterKind::Concurrent { lease_ms, .. }, SettleKind::Release { bucket }) => {
                // An expired lease is not counted any more: nothing to release. A release beyond
                // what the bucket holds (a retried settlement) stops at zero.
                if let Some(leases) = self.leases.get_mut(&c.key) {
                    if lease_expiry(bucket, lease_ms) > now {
                        if let Some(at) = leases.buckets.iter().position(|&(b, _)| b == bucket) {
                            leases.buckets[at].1 -= 1;
                            if leases.buckets[at].1 == 0 {
                                leases.buckets.swap_remove(at);
                            }
                        }
                    }
                    if leases.buckets.is_empty() {
                        self.leases.remove(&c.key);
                    }
                }
                None
            }
            (
                CounterKind::Budget { expires_at_ms, .. },
                SettleKind::Budget {
                    reserved: held,
                    actual,
                },
            ) => {
                // A budget that expired (or was never created here) is created from its seed,
                // like on admission, so the spend is not lost.
                let View::Budget {
                    spent,
                    reserved,
                    exists,
                } = self.view(c, now)
                else {
                    return None;
                };
                let after = spent.saturating_add(actual);
                let reserved = reserved.saturating_sub(held).max(0);
                self.store_budget(&c.key, after, reserved, exists, expires_at_ms);
                Some(SpendChange {
                    before: spent,
                    after,
                })
            }
            _ => None,
        }
    }

    fn sweep_if_due(&mut self, now: u64) {
        if now < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now.saturating_add(SWEEP_EVERY_MS);
        self.requests.retain(|_, w| !w.expired(now));
        self.tokens.retain(|_, w| !w.expired(now));
        self.leases.retain(|_, leases| {
            leases.drop_expired(now);
            !leases.buckets.is_empty()
        });
        self.budgets.retain(|_, b| b.expires_at > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.requests.len() + self.tokens.len() + self.leases.len() + self.budgets.len()
    }
}
