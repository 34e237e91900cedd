//! The usage ledger: the batch writer (concurrent senders, a database outage, shutdown drain,
//! spill file and its import) and the reads (per request, totals by group, spend per budget
//! subject), checked against totals computed here from the records themselves.

use crate::common::TestDb;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use switchboard_core::limits::Scope;
use switchboard_core::usage::{
    AttemptLog, CallDetails, CallKind, Caller, Outcome, UsageQueue, UsageRecord, UsageSource,
};
use switchboard_store::{
    StoreError, UsageFilter, UsageGroup, UsageTotals, UsageWriter, WriterHandle, WriterOptions,
    CATCH_UP, SPILL_PREFIX,
};
use switchboard_types::{MicroUsd, Usage};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// 2024-01-01T00:00:00Z.
pub(crate) const BASE_MS: i64 = 1_704_067_200_000;

/// A record whose every field depends on `i`, so round trips and sums catch mix-ups. Every
/// tenth record has no caller at all; every eleventh never reached a provider.
pub(crate) fn record(i: u64) -> UsageRecord {
    let n = i as i64;
    let caller = if i % 10 == 9 {
        Caller::default()
    } else {
        Caller {
            org: Some(["acme", "globex"][(i % 2) as usize].to_owned()),
            team: Some(["research", "ops", "web"][(i % 3) as usize].to_owned()),
            app: Some(["bot", "search"][(i % 4 / 2) as usize].to_owned()),
            key_id: Some(format!("key_{}", i % 5)),
            user: i.is_multiple_of(4).then(|| format!("user_{i}")),
        }
    };
    let upstream = i % 11 != 10;
    let stream = i.is_multiple_of(2);
    let outcome = [Outcome::Ok, Outcome::Error, Outcome::Cancelled, Outcome::Ok][(i % 4) as usize];
    UsageRecord {
        request_id: format!("req-{i}"),
        // Every 7 hours: the records span several UTC days.
        started_at_ms: BASE_MS + n * 7 * 3_600_000 + n,
        caller,
        kind: if i.is_multiple_of(7) {
            CallKind::Embeddings
        } else {
            CallKind::Chat
        },
        alias: ["smart", "fast", "cheap"][(i % 3) as usize].to_owned(),
        served_alias: i.is_multiple_of(6).then(|| "cheap".to_owned()),
        provider: upstream.then(|| ["openai", "anthropic"][(i % 2) as usize].to_owned()),
        model: upstream
            .then(|| ["gpt-4o", "claude-sonnet", "gpt-4o-mini"][(i % 3) as usize].to_owned()),
        stream,
        usage: Usage {
            input_tokens: 1_000 + i,
            output_tokens: 100 + 2 * i,
            cached_input_tokens: i % 3 * 10,
            cache_write_tokens: i % 4 * 5,
            reasoning_tokens: i % 5,
        },
        usage_source: [
            UsageSource::Reported,
            UsageSource::Estimated,
            UsageSource::None,
        ][(i % 3) as usize],
        cost: MicroUsd(1_234 + n * 17),
        priced: i % 6 != 5,
        latency_ms: 50 + i,
        ttft_ms: stream.then_some(10 + i),
        attempts: 1 + (i % 3) as u32,
        status: if outcome == Outcome::Error { 502 } else { 200 },
        error_code: (outcome == Outcome::Error).then(|| "upstream_error".to_owned()),
        outcome,
        tags: if i.is_multiple_of(3) {
            Vec::new()
        } else {
            vec![
                ("env".to_owned(), "prod".to_owned()),
                ("ticket".to_owned(), format!("T-{i} ünïcode \"quoted\"")),
            ]
        },
        // Every other record carries the call log's details (the rest keep the defaults).
        details: if i.is_multiple_of(2) {
            CallDetails {
                client_ip: Some(format!("10.0.0.{}", i % 250)),
                user_agent: Some(format!("curl/8.{i} \"quoted\"")),
                route: Some("/v1/chat/completions".to_owned()),
                attempts: (0..(i % 3))
                    .map(|a| AttemptLog {
                        target: format!("openai/gpt-{a}"),
                        status: if a == 0 { 0 } else { 502 },
                        latency_ms: 5 + a,
                        error_code: (a == 0).then(|| "upstream_timeout".to_owned()),
                    })
                    .collect(),
                cache: i.is_multiple_of(4).then(|| "miss".to_owned()),
                guardrail: i.is_multiple_of(8).then(|| "pass".to_owned()),
                trace_id: Some(format!("{i:032x}")),
            }
        } else {
            CallDetails::default()
        },
    }
}

pub(crate) fn options(spill_dir: &Path) -> WriterOptions {
    WriterOptions {
        batch_size: 64,
        flush_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(10),
        spill_dir: spill_dir.to_path_buf(),
        retry_start: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
    }
}

/// A running writer with its queue.
pub(crate) struct Running {
    pub(crate) queue: UsageQueue,
    pub(crate) handle: WriterHandle,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Running {
    pub(crate) fn start(db: &TestDb, capacity: usize, options: WriterOptions) -> Running {
        let (queue, rx) = UsageQueue::channel(capacity);
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let handle = UsageWriter::spawn(db.store.clone(), rx, options, &tracker, cancel.clone());
        Running {
            queue,
            handle,
            tracker,
            cancel,
        }
    }

    pub(crate) fn send(&self, record: UsageRecord) {
        self.queue
            .reserve()
            .expect("a free usage slot")
            .send(record);
    }

    /// Cancels the writer and waits for its task to end.
    pub(crate) async fn stop(self) -> switchboard_store::WriterStats {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.handle.stats()
    }
}

async fn row_count(db: &TestDb) -> i64 {
    let totals = db
        .store
        .usage_totals(&UsageFilter::default(), None)
        .await
        .unwrap();
    totals[0].requests
}

async fn assert_stored_once(db: &TestDb, ids: impl IntoIterator<Item = u64>) {
    for i in ids {
        let stored = db
            .store
            .usage_by_request(&format!("req-{i}"))
            .await
            .unwrap();
        assert_eq!(stored, vec![record(i)], "record {i}");
    }
}

/// Moves the table away (every insert fails) or back.
async fn table_away(db: &TestDb, away: bool) {
    let (from, to) = if away {
        ("usage_records", "usage_records_away")
    } else {
        ("usage_records_away", "usage_records")
    };
    db.execute_raw(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .await;
}

fn spill_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SPILL_PREFIX))
        })
        .collect();
    files.sort();
    files
}

async fn writer_writes_concurrent_records_exactly_once(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(db, 2048, options(dir.path()));
    let tasks: Vec<_> = (0..16u64)
        .map(|task| {
            let queue = running.queue.clone();
            tokio::spawn(async move {
                for i in (task * 50)..(task * 50 + 50) {
                    queue.reserve().expect("a free usage slot").send(record(i));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stats = running.handle.wait_written(800).await;
    assert_eq!(stats.written, 800);
    assert_eq!(stats.received, 800);
    assert_eq!(stats.failed_flushes, 0);
    assert!(stats.batches >= 800 / (64 * CATCH_UP as u64), "{stats:?}");
    assert_eq!(row_count(db).await, 800);
    assert_stored_once(db, 0..800).await;
    // A reused request id gives two rows, in the order written.
    running.send(record(3));
    running.handle.wait_written(801).await;
    assert_eq!(
        db.store.usage_by_request("req-3").await.unwrap(),
        vec![record(3), record(3)]
    );
    assert!(db.store.usage_by_request("nope").await.unwrap().is_empty());
    let stats = running.stop().await;
    assert!(stats.stopped);
    assert_eq!(stats.written, 801);
}

/// A writer that finds a backlog when its batch is full takes up to `CATCH_UP` batches into one
/// transaction (here 700 records with batches of 200: one transaction, with the long statements
/// of a catch-up); a writer that is not behind goes back to single batches.
async fn a_writer_behind_catches_up_in_larger_transactions(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let (queue, rx) = UsageQueue::channel(1024);
    for i in 0..700 {
        queue.reserve().expect("a free usage slot").send(record(i));
    }
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let options = WriterOptions {
        batch_size: 200,
        ..options(dir.path())
    };
    let handle = UsageWriter::spawn(db.store.clone(), rx, options, &tracker, cancel.clone());
    let stats = handle.wait_written(700).await;
    assert_eq!((stats.written, stats.batches), (700, 1), "{stats:?}");
    assert_stored_once(db, 0..700).await;
    for i in 700..710 {
        queue.reserve().expect("a free usage slot").send(record(i));
    }
    let stats = handle.wait_written(710).await;
    assert_eq!((stats.written, stats.batches), (710, 2), "{stats:?}");
    assert_stored_once(db, 0..710).await;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

async fn writer_survives_an_outage_and_sheds_meanwhile(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 8;
    let options = WriterOptions {
        batch_size: 4,
        ..options(dir.path())
    };
    let running = Running::start(db, capacity, options);
    for i in 0..4 {
        running.send(record(i));
    }
    running.handle.wait_written(4).await;

    table_away(db, true).await;
    running.send(record(4));
    running.handle.wait_until(|s| s.failed_flushes >= 1).await;
    // The writer keeps its failed batch and takes nothing more while it retries, so the
    // channel fills: the gateway would shed new requests now.
    let mut sent = 5;
    while let Some(slot) = running.queue.reserve() {
        slot.send(record(sent));
        sent += 1;
        assert!(sent <= 5 + capacity as u64, "the queue never filled");
    }
    assert_eq!(sent, 5 + capacity as u64);
    let stats = running.handle.wait_until(|s| s.failed_flushes >= 3).await;
    assert!(stats.written == 4 && stats.failed_flushes >= 3, "{stats:?}");
    assert!(running.queue.reserve().is_none());

    table_away(db, false).await;
    let stats = running.handle.wait_written(sent).await;
    assert_eq!(stats.written, sent);
    assert_eq!(row_count(db).await, sent as i64);
    assert_stored_once(db, 0..sent).await;
    // Room again.
    running.send(record(sent));
    running.handle.wait_written(sent + 1).await;
    running.stop().await;
}

async fn shutdown_drains_buffered_records_and_open_slots(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    // Nothing is flushed by time: only the shutdown can write these.
    let options = WriterOptions {
        batch_size: 512,
        flush_interval: Duration::from_secs(3600),
        ..options(dir.path())
    };
    let running = Running::start(db, 1024, options);
    for i in 0..100 {
        running.send(record(i));
    }
    // Requests in flight hold slots and send their records after the shutdown began.
    let slots: Vec<_> = (0..3).map(|_| running.queue.reserve().unwrap()).collect();
    running.cancel.cancel();
    let late = tokio::spawn(async move {
        for (i, slot) in slots.into_iter().enumerate() {
            slot.send(record(100 + i as u64));
        }
    });
    let stats = running.handle.stopped().await;
    late.await.unwrap();
    assert_eq!(stats.written, 103, "{stats:?}");
    assert_eq!(stats.spilled, 0);
    assert!(running.queue.reserve().is_none(), "the channel is closed");
    assert_eq!(row_count(db).await, 103);
    assert_stored_once(db, 0..103).await;
    running.stop().await;
    assert!(spill_files(dir.path()).is_empty());
}

async fn records_spill_at_shutdown_and_are_imported_at_start(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let options = WriterOptions {
        shutdown_grace: Duration::from_millis(200),
        ..options(dir.path())
    };
    table_away(db, true).await;
    let running = Running::start(db, 64, options.clone());
    for i in 0..10 {
        running.send(record(i));
    }
    running.handle.wait_until(|s| s.failed_flushes >= 1).await;
    let stats = running.stop().await;
    assert_eq!(stats.written, 0, "{stats:?}");
    assert_eq!(stats.spilled, 10, "{stats:?}");
    let files = spill_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(text.lines().count(), 10);
    // No temporary file is left next to it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // The database is back: the next writer imports the file, deletes it and goes on.
    table_away(db, false).await;
    let running = Running::start(db, 64, options);
    let stats = running.handle.wait_until(|s| s.imported >= 10).await;
    assert_eq!(stats.imported, 10, "{stats:?}");
    assert!(spill_files(dir.path()).is_empty());
    assert_eq!(row_count(db).await, 10);
    assert_stored_once(db, 0..10).await;
    running.send(record(10));
    running.handle.wait_written(11).await;
    running.stop().await;
    assert_eq!(row_count(db).await, 11);
}

async fn write_all(db: &TestDb, records: &[UsageRecord]) {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(db, 4096, options(dir.path()));
    for r in records {
        running.send(r.clone());
    }
    running.handle.wait_written(records.len() as u64).await;
    running.stop().await;
}

fn matches(filter: &UsageFilter, r: &UsageRecord) -> bool {
    let eq = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
    eq(&filter.org, &r.caller.org)
        && eq(&filter.team, &r.caller.team)
        && eq(&filter.app, &r.caller.app)
        && eq(&filter.key_id, &r.caller.key_id)
        && (filter.alias.is_none() || filter.alias.as_deref() == Some(r.alias.as_str()))
        && filter.from_ms.is_none_or(|from| r.started_at_ms >= from)
        && filter.to_ms.is_none_or(|to| r.started_at_ms < to)
}

fn group_of(group: Option<UsageGroup>, r: &UsageRecord) -> Option<String> {
    let c = &r.caller;
    let joined = |parts: &[&Option<String>]| {
        parts.last().unwrap().as_ref()?;
        Some(
            parts
                .iter()
                .map(|p| p.as_deref().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("/"),
        )
    };
    match group? {
        UsageGroup::Key => c.key_id.clone(),
        UsageGroup::App => joined(&[&c.org, &c.team, &c.app]),
        UsageGroup::Team => joined(&[&c.org, &c.team]),
        UsageGroup::Org => c.org.clone(),
        UsageGroup::Alias => Some(r.alias.clone()),
        UsageGroup::Model => r.model.clone(),
        UsageGroup::Day => {
            let day = (r.started_at_ms - BASE_MS) / 86_400_000;
            // The records span a few days of January 2024.
            Some(format!("2024-01-{:02}", day + 1))
        }
    }
}

fn expected(
    records: &[UsageRecord],
    filter: &UsageFilter,
    group: Option<UsageGroup>,
) -> Vec<UsageTotals> {
    let mut out: BTreeMap<Option<String>, UsageTotals> = BTreeMap::new();
    if group.is_none() {
        out.insert(None, UsageTotals::default());
    }
    for r in records.iter().filter(|r| matches(filter, r)) {
        let key = group_of(group, r);
        let t = out.entry(key.clone()).or_insert_with(|| UsageTotals {
            group: key,
            ..UsageTotals::default()
        });
        t.requests += 1;
        t.errors += i64::from(r.outcome != Outcome::Ok);
        t.input_tokens += r.usage.input_tokens as i64;
        t.output_tokens += r.usage.output_tokens as i64;
        t.cached_input_tokens += r.usage.cached_input_tokens as i64;
        t.cache_write_tokens += r.usage.cache_write_tokens as i64;
        t.reasoning_tokens += r.usage.reasoning_tokens as i64;
        t.cost_micros += r.cost.0;
    }
    out.into_values().collect()
}

async fn totals_and_groups_equal_the_raw_rows(db: &TestDb) {
    // 60 records × 7 hours: up to 2024-01-18, below the end of the month `group_of` assumes.
    let records: Vec<_> = (0..60).map(record).collect();
    write_all(db, &records).await;
    let s = |v: &str| Some(v.to_owned());
    let filters = [
        UsageFilter::default(),
        UsageFilter {
            org: s("acme"),
            ..UsageFilter::default()
        },
        UsageFilter {
            org: s("globex"),
            team: s("ops"),
            ..UsageFilter::default()
        },
        UsageFilter {
            org: s("acme"),
            team: s("web"),
            app: s("bot"),
            ..UsageFilter::default()
        },
        UsageFilter {
            key_id: s("key_3"),
            ..UsageFilter::default()
        },
        UsageFilter {
            alias: s("fast"),
            from_ms: Some(BASE_MS + 86_400_000),
            to_ms: Some(BASE_MS + 5 * 86_400_000),
            ..UsageFilter::default()
        },
        UsageFilter {
            org: s("nobody"),
            ..UsageFilter::default()
        },
    ];
    let groups = [
        None,
        Some(UsageGroup::Key),
        Some(UsageGroup::App),
        Some(UsageGroup::Team),
        Some(UsageGroup::Org),
        Some(UsageGroup::Alias),
        Some(UsageGroup::Model),
        Some(UsageGroup::Day),
    ];
    for filter in &filters {
        for group in groups {
            let got = db.store.usage_totals(filter, group).await.unwrap();
            assert_eq!(
                got,
                expected(&records, filter, group),
                "{filter:?} {group:?}"
            );
        }
    }
    // Spot checks that the expectation itself is not vacuous.
    let all = db
        .store
        .usage_totals(&UsageFilter::default(), None)
        .await
        .unwrap();
    assert_eq!(all[0].requests, 60);
    assert_eq!(all[0].errors, 30);
    let days = db
        .store
        .usage_totals(&UsageFilter::default(), Some(UsageGroup::Day))
        .await
        .unwrap();
    assert_eq!(days[0].group.as_deref(), Some("2024-01-01"));
    assert_eq!(days[0].requests, 4);
    let none = db
        .store
        .usage_totals(&filters[6], Some(UsageGroup::Key))
        .await
        .unwrap();
    assert!(none.is_empty());
}

fn expected_spend(records: &[UsageRecord], scope: Scope, since_ms: i64) -> Vec<(String, i64)> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for r in records.iter().filter(|r| r.started_at_ms >= since_ms) {
        let c = &r.caller;
        let parts = match scope {
            Scope::Key => vec![&c.key_id],
            Scope::App => vec![&c.org, &c.team, &c.app],
            Scope::Team => vec![&c.org, &c.team],
            Scope::Org => vec![&c.org],
            Scope::Alias | Scope::Target => unreachable!(),
        };
        let Some(parts) = parts.into_iter().cloned().collect::<Option<Vec<String>>>() else {
            continue;
        };
        *out.entry(parts.join("/")).or_default() += r.cost.0;
    }
    out.into_iter().collect()
}

async fn spend_per_subject(db: &TestDb) {
    let records: Vec<_> = (0..40).map(record).collect();
    write_all(db, &records).await;
    let since = BASE_MS + 2 * 86_400_000;
    for scope in [Scope::Key, Scope::App, Scope::Team, Scope::Org] {
        for since in [0, since] {
            let by_subject = db.store.spend_by_subject(scope, since).await.unwrap();
            let want = expected_spend(&records, scope, since);
            assert!(!want.is_empty());
            assert_eq!(by_subject, want, "{scope:?} since {since}");
        }
    }
    let subjects = [
        (Scope::Key, "key_2"),
        (Scope::App, "acme/web/bot"),
        (Scope::Team, "acme/web"),
        (Scope::Org, "acme"),
    ];
    for (scope, subject) in subjects {
        let want = expected_spend(&records, scope, since)
            .into_iter()
            .find(|(s, _)| s == subject)
            .map_or(0, |(_, spent)| spent);
        assert!(want > 0, "{scope:?}");
        assert_eq!(
            db.store.spend_since(scope, subject, since).await.unwrap(),
            want,
            "{scope:?}"
        );
    }
    assert_eq!(
        db.store
            .spend_since(Scope::Org, "initech", 0)
            .await
            .unwrap(),
        0
    );
    for (scope, bad) in [
        (Scope::App, "acme/web"),
        (Scope::Team, "acme"),
        (Scope::Key, ""),
        (Scope::Target, "openai"),
    ] {
        assert!(
            matches!(
                db.store.spend_since(scope, bad, 0).await,
                Err(StoreError::Invalid(_))
            ),
            "{scope:?} {bad}"
        );
    }
    // Alias and target subjects too (every record has an alias; some no provider).
    let fast: i64 = records
        .iter()
        .filter(|r| r.alias == "fast")
        .map(|r| r.cost.0)
        .sum();
    assert_eq!(
        db.store.spend_since(Scope::Alias, "fast", 0).await.unwrap(),
        fast
    );
    let target: i64 = records
        .iter()
        .filter(|r| r.provider.as_deref() == Some("openai") && r.model.as_deref() == Some("gpt-4o"))
        .map(|r| r.cost.0)
        .sum();
    assert!(target > 0);
    assert_eq!(
        db.store
            .spend_since(Scope::Target, "openai/gpt-4o", 0)
            .await
            .unwrap(),
        target
    );
    let by_target = db.store.spend_by_subject(Scope::Target, 0).await.unwrap();
    assert!(by_target.contains(&("openai/gpt-4o".to_owned(), target)));
    let by_alias = db.store.spend_by_subject(Scope::Alias, 0).await.unwrap();
    assert_eq!(
        by_alias.iter().map(|(_, s)| s).sum::<i64>(),
        records.iter().map(|r| r.cost.0).sum::<i64>()
    );
}

both!(
    writer_writes_concurrent_records_exactly_once,
    a_writer_behind_catches_up_in_larger_transactions,
    writer_survives_an_outage_and_sheds_meanwhile,
    shutdown_drains_buffered_records_and_open_slots,
    records_spill_at_shutdown_and_are_imported_at_start,
    totals_and_groups_equal_the_raw_rows,
    spend_per_subject,
);

/// In-memory SQLite: the writer commits through the store's one `Any` connection, not a
/// typed pool of its own.
mod in_memory {
    use crate::common::TestDb;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writer_writes_concurrent_records_exactly_once() {
        super::writer_writes_concurrent_records_exactly_once(&TestDb::sqlite_memory().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn totals_and_groups_equal_the_raw_rows() {
        super::totals_and_groups_equal_the_raw_rows(&TestDb::sqlite_memory().await).await;
    }
}
