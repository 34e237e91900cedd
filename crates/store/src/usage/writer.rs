//! The usage batch writer: one task that drains the gateway's usage channel into
//! `usage_records`, off the request path (ARCHITECTURE section 6).
//!
//! - It takes up to `batch_size` records at once and flushes when the batch is full or
//!   `flush_interval` has passed since its first record, one transaction per batch. A full
//!   batch with more records waiting takes those too, up to [`CATCH_UP`] batches.
//! - Records are billing data and are never dropped. When a flush fails it logs a warning,
//!   keeps the batch and retries with capped exponential backoff, and takes no new records
//!   meanwhile: the bounded channel fills and the gateway sheds new requests at admission.
//! - On cancel it closes the channel, drains what is buffered and what outstanding slots
//!   still send, and flushes. If the database is still down after `shutdown_grace`, the rest
//!   goes to a spill file (see `spill.rs`), which the next writer imports at start.
//!
//! [`WriterHandle`] reports counters (for metrics) and lets callers wait for them, so tests
//! need no sleeps.

use super::{insert_records, spill, LedgerDb};
use crate::db::{now_ms, LedgerPool, Store};
use crate::error::StoreError;
use crate::Backend;
use sqlx::Pool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::usage::{UsageReceiver, UsageRecord};
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

/// A writer that finds records still waiting when its batch is full is behind (a burst, a slow
/// disk, a core shared with the request runtime at saturation): it takes up to this many
/// batches' worth of what is already queued into one transaction. Fewer commits, rollup
/// upserts and trips to the database per record let it catch up; with a fixed batch, a writer
/// that fell behind under saturation stayed behind until the queue filled and the gateway shed
/// requests (seen in `bench/run.sh`: ~100k of ~2.2M requests shed in one run, none in the
/// next, same binary).
pub const CATCH_UP: usize = 4;

/// Records per transaction when no batch size is configured. Large, because a batch's cost is
/// not only per record: every commit syncs the WAL, upserts the rollups and rewrites the
/// right-hand pages of each index, and the records of requests still running when a batch is
/// cut arrive in the next one, behind entries already written, where an index page that
/// SQLite packed full has to be rebalanced with its siblings (~14k instructions each). At
/// concurrency 64 on one shared core, 2048 instead of 512 served 2-4% more requests and 4096
/// 1-4% more again (`bench/`, alternating pairs); the flush interval still bounds how long a
/// record waits at low rates. A catch-up transaction ([`CATCH_UP`] batches) holds SQLite's
/// write lock the longer for it.
pub(crate) const DEFAULT_BATCH: usize = 4096;

/// How much a shutdown drain takes from the channel per call.
const DRAIN_CHUNK: usize = 4096;
/// The least time one flush attempt at shutdown gets, even when draining used up the grace.
const LAST_ATTEMPT: Duration = Duration::from_secs(1);

/// How the writer batches, retries and spills.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Records per transaction (at least 1); up to [`CATCH_UP`] times as many when the writer
    /// is behind.
    pub batch_size: usize,
    /// Longest a received record waits for its batch to fill.
    pub flush_interval: Duration,
    /// How long shutdown keeps trying a database that is down before spilling to a file.
    pub shutdown_grace: Duration,
    /// Where spill files are written and, at start, imported from.
    pub spill_dir: PathBuf,
    /// The first wait after a failed flush; doubled after each failure up to `retry_max`.
    pub retry_start: Duration,
    pub retry_max: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            batch_size: DEFAULT_BATCH,
            flush_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(10),
            spill_dir: PathBuf::from("."),
            retry_start: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
        }
    }
}

/// The writer's counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Records taken from the channel.
    pub received: u64,
    /// Records committed, including those imported from spill files.
    pub written: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Flush attempts that failed (each is retried or, at shutdown, spilled).
    pub failed_flushes: u64,
    /// Records imported from spill files at start (part of `written`).
    pub imported: u64,
    /// Records written to a spill file at shutdown.
    pub spilled: u64,
    /// The writer has returned.
    pub stopped: bool,
}

/// Watches a running writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct WriterHandle {
    stats: watch::Receiver<WriterStats>,
}

impl WriterHandle {
    /// The counters as they stand.
    pub fn stats(&self) -> WriterStats {
        *self.stats.borrow()
    }

    /// Waits until `done` holds for the counters, or the writer has returned; gives the
    /// counters at that moment.
    pub async fn wait_until(&self, mut done: impl FnMut(&WriterStats) -> bool) -> WriterStats {
        let mut stats = self.stats.clone();
        let result = stats.wait_for(|s| s.stopped || done(s)).await.map(|s| *s);
        result.unwrap_or_else(|_| *stats.borrow())
    }

    /// Waits until at least `records` records are committed (or the writer has returned).
    pub async fn wait_written(&self, records: u64) -> WriterStats {
        self.wait_until(|s| s.written >= records).await
    }

    /// Waits until the writer has returned (after a cancel, or when every sender is gone).
    pub async fn stopped(&self) -> WriterStats {
        self.wait_until(|_| false).await
    }
}

/// The batch writer of usage records.
pub struct UsageWriter {
    store: Store,
    options: WriterOptions,
    cancel: CancellationToken,
    stats: watch::Sender<WriterStats>,
}

impl UsageWriter {
    /// Starts the writer on `tracker`: it first imports the spill files in
    /// `options.spill_dir`, then drains `rx` until `cancel` fires (or every sender is
    /// dropped), then drains and flushes what is left as described in the module docs.
    pub fn spawn(
        store: Store,
        rx: UsageReceiver,
        options: WriterOptions,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> WriterHandle {
        let (stats, watcher) = watch::channel(WriterStats::default());
        let writer = UsageWriter {
            store,
            options: WriterOptions {
                batch_size: options.batch_size.max(1),
                ..options
            },
            cancel,
            stats,
        };
        tracker.spawn(writer.run(rx));
        WriterHandle { stats: watcher }
    }

    async fn run(self, mut rx: UsageReceiver) {
        self.import_spills().await;
        let batch = self.options.batch_size;
        let mut buf: Vec<UsageRecord> = Vec::with_capacity(batch);
        'run: loop {
            if buf.is_empty() {
                tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => break 'run,
                    n = rx.recv_many(&mut buf, batch) => {
                        if n == 0 {
                            break 'run;
                        }
                        self.count(|s| s.received += n as u64);
                    }
                }
            }
            let deadline = Instant::now() + self.options.flush_interval;
            while buf.len() < batch {
                let room = batch - buf.len();
                tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => break 'run,
                    n = rx.recv_many(&mut buf, room) => {
                        if n == 0 {
                            break;
                        }
                        self.count(|s| s.received += n as u64);
                    }
                    () = sleep_until(deadline) => break,
                }
            }
            self.catch_up(&mut rx, &mut buf);
            if !self.flush_retrying(&mut buf).await {
                break 'run;
            }
            if rx.is_closed() && rx.is_empty() {
                break 'run;
            }
        }
        self.shut_down(rx, buf).await;
    }

    /// Adds to a full batch what is already queued, up to [`CATCH_UP`] batches (never waits).
    fn catch_up(&self, rx: &mut UsageReceiver, buf: &mut Vec<UsageRecord>) {
        let batch = self.options.batch_size;
        let before = buf.len();
        if before < batch {
            return;
        }
        while buf.len() < batch * CATCH_UP {
            let Ok(record) = rx.try_recv() else { break };
            buf.push(record);
        }
        let taken = (buf.len() - before) as u64;
        if taken > 0 {
            self.count(|s| s.received += taken);
        }
    }

    fn count(&self, change: impl FnOnce(&mut WriterStats)) {
        self.stats.send_modify(change);
    }

    /// Commits `records` in one transaction, on the store's ledger pool. Shared, not borrowed:
    /// SQLite's commit runs on a blocking thread, which may outlive a commit given up on.
    async fn commit(&self, records: &Arc<Vec<UsageRecord>>) -> Result<(), StoreError> {
        let backend = self.store.backend();
        match &self.store.ledger {
            LedgerPool::Any => commit_on(&self.store.pool, records, backend).await,
            LedgerPool::Sqlite(ledger) => ledger.commit(records.clone()).await,
            LedgerPool::Postgres(pool) => commit_on(pool, records, backend).await,
        }
    }

    /// Whether a commit may be given up on when the shutdown grace runs out. Not on a SQLite
    /// file: its commit runs on a blocking thread that would go on, and might commit records
    /// that are then retried or spilled (counted twice); it ends within SQLite's busy timeout
    /// (5 s) anyway, and the runtime waits for that thread before the process exits.
    fn commits_can_be_abandoned(&self) -> bool {
        !matches!(self.store.ledger, LedgerPool::Sqlite(_))
    }

    /// Commits `buf` (and clears it), retrying with backoff until it works; `false` when
    /// cancelled first, with `buf` kept.
    async fn flush_retrying(&self, buf: &mut Vec<UsageRecord>) -> bool {
        sort_for_append(buf);
        let batch = Arc::new(std::mem::take(buf));
        let mut delay = self.options.retry_start;
        loop {
            match self.commit(&batch).await {
                Ok(()) => {
                    let n = batch.len() as u64;
                    self.count(|s| {
                        s.written += n;
                        s.batches += 1;
                    });
                    // The buffer is reused when the commit let go of it (always, once it ended).
                    *buf = Arc::try_unwrap(batch).unwrap_or_default();
                    buf.clear();
                    return true;
                }
                Err(e) => {
                    self.count(|s| s.failed_flushes += 1);
                    warn!(
                        error = %e,
                        records = buf.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "Usage flush failed; keeping the batch and retrying."
                    );
                    tokio::select! {
                        biased;
                        () = self.cancel.cancelled() => {
                            *buf = take_back(batch);
                            return false;
                        }
                        () = sleep(delay) => {}
                    }
                    delay = (delay * 2).min(self.options.retry_max);
                }
            }
        }
    }

    /// Closes the channel, drains it, flushes within the grace period and spills the rest.
    async fn shut_down(self, mut rx: UsageReceiver, mut buf: Vec<UsageRecord>) {
        rx.close();
        let deadline = Instant::now() + self.options.shutdown_grace;
        // After `close`, `recv_many` returns 0 only once the buffer is empty and every
        // outstanding slot has been used or dropped.
        loop {
            match timeout_at(deadline, rx.recv_many(&mut buf, DRAIN_CHUNK)).await {
                Ok(0) => break,
                Ok(n) => self.count(|s| s.received += n as u64),
                Err(_) => {
                    warn!("Usage slots still held at the end of the shutdown grace; not waiting for them.");
                    break;
                }
            }
        }
        let batch = self.options.batch_size;
        let mut delay = self.options.retry_start;
        while !buf.is_empty() {
            let take = batch.min(buf.len());
            let chunk = Arc::new(buf.drain(..take).collect::<Vec<_>>());
            let attempt_deadline = deadline.max(Instant::now() + LAST_ATTEMPT);
            let result = if self.commits_can_be_abandoned() {
                match timeout_at(attempt_deadline, self.commit(&chunk)).await {
                    Ok(result) => result,
                    Err(_) => Err(StoreError::Invalid("the flush timed out".to_owned())),
                }
            } else {
                self.commit(&chunk).await
            };
            match result {
                Ok(()) => {
                    self.count(|s| {
                        s.written += take as u64;
                        s.batches += 1;
                    });
                    delay = self.options.retry_start;
                }
                Err(e) => {
                    buf.splice(0..0, take_back(chunk));
                    self.count(|s| s.failed_flushes += 1);
                    let now = Instant::now();
                    if now >= deadline {
                        self.spill(&buf).await;
                        break;
                    }
                    warn!(error = %e, records = buf.len(), "Usage flush at shutdown failed; retrying.");
                    sleep(delay.min(deadline - now)).await;
                    delay = (delay * 2).min(self.options.retry_max);
                }
            }
        }
        let stats = {
            let mut last = WriterStats::default();
            self.stats.send_modify(|s| {
                s.stopped = true;
                last = *s;
            });
            last
        };
        info!(
            written = stats.written,
            spilled = stats.spilled,
            "Usage writer stopped."
        );
    }

    /// Writes `records` to a spill file; as a last resort (the file cannot be written) logs
    /// each record so that the billing data is at least in the log.
    async fn spill(&self, records: &[UsageRecord]) {
        let n = records.len() as u64;
        match spill::write(&self.options.spill_dir, records, now_ms()).await {
            Ok(path) => {
                self.count(|s| s.spilled += n);
                error!(
                    file = %path.display(),
                    records = n,
                    "The database is down at shutdown: usage records spilled to a file; the next start imports it."
                );
            }
            Err(e) => {
                error!(
                    error = %e,
                    dir = %self.options.spill_dir.display(),
                    records = n,
                    "Cannot write the usage spill file; logging the records instead."
                );
                for record in records {
                    if let Ok(json) = serde_json::to_string(record) {
                        error!(record = %json, "Unwritten usage record.");
                    }
                }
            }
        }
    }

    /// Imports every spill file in the spill directory, one transaction per file, deleting
    /// each after its rows are committed. Retries like a flush; on cancel the remaining files
    /// stay for the next start.
    async fn import_spills(&self) {
        let dir = &self.options.spill_dir;
        let files = match spill::list(dir).await {
            Ok(files) => files,
            Err(e) => {
                error!(error = %e, dir = %dir.display(), "Cannot list usage spill files.");
                return;
            }
        };
        for path in files {
            let records = match spill::read(&path).await {
                Ok(records) => Arc::new(records),
                Err(e) => {
                    error!(
                        error = %e,
                        file = %path.display(),
                        "Cannot read a usage spill file; leaving it in place."
                    );
                    continue;
                }
            };
            let mut delay = self.options.retry_start;
            loop {
                match self.commit(&records).await {
                    Ok(()) => break,
                    Err(e) => {
                        self.count(|s| s.failed_flushes += 1);
                        warn!(
                            error = %e,
                            file = %path.display(),
                            "Importing a usage spill file failed; retrying."
                        );
                        tokio::select! {
                            biased;
                            () = self.cancel.cancelled() => return,
                            () = sleep(delay) => {}
                        }
                        delay = (delay * 2).min(self.options.retry_max);
                    }
                }
            }
            let n = records.len() as u64;
            let removed = tokio::fs::remove_file(&path).await;
            // Counted once the file is gone, so that a waiter sees both.
            self.count(|s| {
                s.written += n;
                s.imported += n;
                s.batches += 1;
            });
            match removed {
                Ok(()) => info!(file = %path.display(), records = n, "Usage spill file imported."),
                Err(e) => error!(
                    error = %e,
                    file = %path.display(),
                    "Imported a usage spill file but cannot delete it: remove it by hand, or its records are imported again at the next start."
                ),
            }
        }
    }
}

/// Puts a batch in the order the table's indexes keep: start time, then request id (a UUIDv7,
/// time-ordered too). Records arrive in the order calls ended, a few milliseconds apart from
/// the order they started in; inserted that way, each lands just before the end of an index's
/// last page instead of after it, and every full page is split by SQLite's general rebalance
/// rather than its quick append path.
///
/// The order is sorted, not the records: a record is some 600 bytes, and sorting them in place
/// copied each one about log2(batch) times (~1.1k instructions a record at 512 a batch,
/// callgrind). Then the records out of place are swapped into it, cycle by cycle: one swap per
/// misplaced record, and no second buffer of records (which cost megabytes of peak memory).
fn sort_for_append(records: &mut [UsageRecord]) {
    fn key(r: &UsageRecord) -> (i64, &str) {
        (r.started_at_ms, r.request_id.as_str())
    }
    if records.is_sorted_by(|a, b| key(a) <= key(b)) {
        return;
    }
    // `order[k]`: where the record that belongs at `k` is now.
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_unstable_by(|&a, &b| key(&records[a]).cmp(&key(&records[b])));
    for start in 0..order.len() {
        // Follow the cycle through `start`; a place done is marked `order[k] == k`.
        let mut k = start;
        loop {
            let from = order[k];
            order[k] = k;
            if from == start {
                break;
            }
            // `k` takes its record; the one it held (`start`'s) moves on to `from`.
            records.swap(k, from);
            k = from;
        }
    }
}

/// The records of a batch whose commit failed or was given up on: moved back out when no
/// commit still holds them, else copied.
fn take_back(batch: Arc<Vec<UsageRecord>>) -> Vec<UsageRecord> {
    Arc::try_unwrap(batch).unwrap_or_else(|shared| shared.as_ref().clone())
}

/// Commits `records` in one transaction on `pool`.
async fn commit_on<DB: LedgerDb>(
    pool: &Pool<DB>,
    records: &[UsageRecord],
    backend: Backend,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    insert_records(&mut tx, records, backend).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sort_for_append;
    use switchboard_core::usage::{CallKind, Caller, Outcome, UsageRecord, UsageSource};
    use switchboard_types::{MicroUsd, Usage};

    fn record(request_id: String, started_at_ms: i64) -> UsageRecord {
        UsageRecord {
            request_id,
            started_at_ms,
            caller: Caller::default(),
            kind: CallKind::Chat,
            alias: "fast".to_owned(),
            served_alias: None,
            provider: None,
            model: None,
            stream: false,
            usage: Usage::default(),
            usage_source: UsageSource::Reported,
            cost: MicroUsd(0),
            priced: false,
            latency_ms: 1,
            ttft_ms: None,
            attempts: 1,
            outcome: Outcome::Ok,
            status: 200,
            error_code: None,
            tags: Vec::new(),
            details: Default::default(),
        }
    }

    #[test]
    fn a_batch_goes_out_in_start_order_with_every_record() {
        // Ends in a scrambled order, with ties on the start time broken by the request id.
        let mut batch: Vec<_> = (0..200_i64)
            .map(|i| {
                let scrambled = (i * 73) % 200;
                record(format!("r{:03}", scrambled), scrambled / 3)
            })
            .collect();
        sort_for_append(&mut batch);
        let keys: Vec<_> = batch
            .iter()
            .map(|r| (r.started_at_ms, r.request_id.clone()))
            .collect();
        let want: Vec<_> = (0..200_i64).map(|i| (i / 3, format!("r{i:03}"))).collect();
        assert_eq!(keys, want);

        // Already in order: left as is.
        sort_for_append(&mut batch);
        assert_eq!(batch.len(), 200);
        assert!(batch.is_sorted_by_key(|r| (r.started_at_ms, r.request_id.clone())));
        let mut empty = Vec::new();
        sort_for_append(&mut empty);
        assert!(empty.is_empty());
    }
}
