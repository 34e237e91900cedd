//! State that outlives config snapshots: the counter backends (in-memory counters must survive a
//! reload), the budget seeding memo, and the settle worker that gives counters back after each
//! request without making the request wait.

use super::backend::{BackendError, LimitBackend, Settle, SpendChange};
use super::local::LocalBackend;
use super::rules::Scope;
use crate::config::RedisFailure;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tracing::{error, warn};

/// Spend already recorded in storage, for seeding budget counters after a restart.
#[async_trait::async_trait]
pub trait SpendSource: Send + Sync + std::fmt::Debug {
    /// Micro-dollars spent by `subject` of `scope` (see `limits::subject`) since `since_ms`.
    async fn spend_since(&self, scope: Scope, subject: &str, since_ms: i64) -> Result<i64, String>;
}

/// Where one request's counters were taken, so that they are settled in the same place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Local,
    Shared,
}

/// A budget threshold crossed by a settlement (for the alert).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crossing {
    pub budget: String,
    pub scope: Scope,
    pub subject: String,
    pub period: &'static str,
    pub percent: u32,
    pub spent: i64,
    pub limit: i64,
}

/// A budget entry of a settlement, with what its alerts need.
#[derive(Clone, Debug)]
pub struct BudgetAlerting {
    /// Index of the entry in the settlement.
    pub entry: usize,
    /// Shared with the limiter's cached plan (most settlements cross nothing).
    pub budget: Arc<str>,
    pub scope: Scope,
    pub subject: Arc<str>,
    pub period: &'static str,
    pub limit: i64,
    pub thresholds: Arc<[u32]>,
}

/// One finished request's counters to give back.
#[derive(Debug)]
pub struct SettleJob {
    pub request_id: String,
    pub held: Held,
    pub entries: Vec<Settle>,
    pub alerting: Vec<BudgetAlerting>,
    pub webhook: Option<Arc<str>>,
}

#[derive(Debug)]
pub struct LimitState {
    pub(crate) local: Arc<LocalBackend>,
    pub(crate) shared: Option<Arc<dyn LimitBackend>>,
    pub(crate) spend: Option<Arc<dyn SpendSource>>,
    /// Budget counter keys already seeded by this process.
    pub(crate) seeded: quick_cache::sync::Cache<String, ()>,
    settle_tx: mpsc::UnboundedSender<SettleJob>,
    pending: Arc<Pending>,
    /// Shared-backend failures so far (exported as a metric).
    pub(crate) shared_errors: AtomicU64,
    /// When a shared-backend failure was last logged (ms), to log at most one line a second.
    last_logged_ms: AtomicI64,
}

#[derive(Debug, Default)]
struct Pending {
    jobs: AtomicUsize,
    idle: Notify,
}

impl LimitState {
    /// Starts the settle worker on the current Tokio runtime (one long-lived task per gateway;
    /// it stops when the gateway is dropped).
    pub fn new(
        shared: Option<Arc<dyn LimitBackend>>,
        spend: Option<Arc<dyn SpendSource>>,
        http: reqwest::Client,
    ) -> Arc<LimitState> {
        let (settle_tx, rx) = mpsc::unbounded_channel();
        let local = Arc::new(LocalBackend::new());
        let pending = Arc::new(Pending::default());
        let worker = Worker {
            local: local.clone(),
            shared: shared.clone(),
            pending: pending.clone(),
            http,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(worker.run(rx));
            }
            // Only unit tests build a gateway outside a runtime; their requests hold no
            // counters that need settling.
            Err(_) => error!("No Tokio runtime: limit counters will not be settled."),
        }
        Arc::new(LimitState {
            local,
            shared,
            spend,
            seeded: quick_cache::sync::Cache::new(100_000),
            settle_tx,
            pending,
            shared_errors: AtomicU64::new(0),
            last_logged_ms: AtomicI64::new(0),
        })
    }

    /// Queues a settlement; never blocks.
    pub(crate) fn settle(&self, job: SettleJob) {
        self.pending.jobs.fetch_add(1, Ordering::SeqCst);
        if self.settle_tx.send(job).is_err() {
            self.pending.jobs.fetch_sub(1, Ordering::SeqCst);
            error!("The limit settle worker has stopped; a request's counters were not settled.");
        }
    }

    /// Waits until every queued settlement is done (shutdown, tests).
    pub async fn flush(&self) {
        loop {
            let idle = self.pending.idle.notified();
            if self.pending.jobs.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Failures of the shared counters so far.
    pub fn shared_errors(&self) -> u64 {
        self.shared_errors.load(Ordering::Relaxed)
    }

    /// Counts and logs (at most once a second) a failure of the shared counters.
    pub(crate) fn shared_failed(&self, err: &BackendError, policy: RedisFailure) {
        self.shared_errors.fetch_add(1, Ordering::Relaxed);
        let fallback = match policy {
            RedisFailure::Local => "local",
            RedisFailure::Reject => "reject",
        };
        crate::metrics::Counter::LimitBackendErrors.increment_with("fallback", fallback);
        let now = crate::limits::now_ms();
        let last = self.last_logged_ms.load(Ordering::Relaxed);
        if now - last >= 1000
            && self
                .last_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let fallback = match policy {
                RedisFailure::Local => "using this instance's own counters",
                RedisFailure::Reject => "refusing requests (limits.on_redis_error: reject)",
            };
            warn!(%err, fallback, "Shared limit counters are unavailable.");
        }
    }
}

struct Worker {
    local: Arc<LocalBackend>,
    shared: Option<Arc<dyn LimitBackend>>,
    pending: Arc<Pending>,
    http: reqwest::Client,
}

/// How long a settlement keeps retrying against an unreachable shared backend before it is
/// given up (its reservations then expire with their counters' TTL).
const SETTLE_GIVE_UP: Duration = Duration::from_secs(60);

/// Most settlements sent to a backend in one call.
const SETTLE_BATCH: usize = 256;

impl Worker {
    /// Takes whatever has queued up (at most [`SETTLE_BATCH`]) and settles it in one call per
    /// backend: under load that is one Redis script for many requests, at low load one each.
    /// Batches run one after the other; a batch that waits on Redis lets the next ones grow.
    async fn run(self, mut rx: mpsc::UnboundedReceiver<SettleJob>) {
        let mut jobs = Vec::with_capacity(SETTLE_BATCH);
        while rx.recv_many(&mut jobs, SETTLE_BATCH).await > 0 {
            let count = jobs.len();
            let (shared, local): (Vec<SettleJob>, Vec<SettleJob>) = jobs
                .drain(..)
                .partition(|job| job.held == Held::Shared && self.shared.is_some());
            if let Some(backend) = &self.shared {
                self.settle_batch(backend.as_ref(), shared).await;
            }
            self.settle_batch(self.local.as_ref(), local).await;
            self.done(count);
        }
    }

    fn done(&self, count: usize) {
        if self.pending.jobs.fetch_sub(count, Ordering::SeqCst) == count {
            self.pending.idle.notify_waiters();
        }
    }

    async fn settle_batch(&self, backend: &dyn LimitBackend, jobs: Vec<SettleJob>) {
        if jobs.is_empty() {
            return;
        }
        let batch: Vec<(&str, &[Settle])> = jobs
            .iter()
            .map(|job| (job.request_id.as_str(), job.entries.as_slice()))
            .collect();
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(50);
        let changes = loop {
            match backend.settle_many(&batch).await {
                Ok(changes) => break changes,
                Err(err) if started.elapsed() < SETTLE_GIVE_UP => {
                    warn!(%err, requests = jobs.len(), "Settling limit counters failed; retrying.");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(err) => {
                    error!(%err, requests = jobs.len(), "Gave up settling limit counters; their reservations expire with the counters.");
                    return;
                }
            }
        };
        for (job, changes) in jobs.iter().zip(changes) {
            for alert in crossings(&job.alerting, &changes) {
                warn!(
                    budget = %alert.budget, subject = %alert.subject, percent = alert.percent,
                    spent_micros = alert.spent, limit_micros = alert.limit,
                    "Budget threshold crossed."
                );
                if let Some(url) = job.webhook.clone() {
                    // Rare (once per threshold and period); off the worker so that a slow
                    // webhook never holds up settlements.
                    let http = self.http.clone();
                    tokio::spawn(async move { super::alerts::deliver(&http, &url, &alert).await });
                }
            }
        }
    }
}

/// The thresholds each budget entry's settlement crossed: those with before < threshold <= after.
pub(crate) fn crossings(
    alerting: &[BudgetAlerting],
    changes: &[Option<SpendChange>],
) -> Vec<Crossing> {
    let mut out = Vec::new();
    for budget in alerting {
        let Some(Some(change)) = changes.get(budget.entry) else {
            continue;
        };
        for &percent in budget.thresholds.iter() {
            let line = i128::from(budget.limit) * i128::from(percent) / 100;
            if i128::from(change.before) < line && i128::from(change.after) >= line {
                out.push(Crossing {
                    budget: budget.budget.to_string(),
                    scope: budget.scope,
                    subject: budget.subject.to_string(),
                    period: budget.period,
                    percent,
                    spent: change.after,
                    limit: budget.limit,
                });
            }
        }
    }
    out
}
