//! The call log's store side: rollups per minute and per hour written with the usage records
//! (checked against sums computed here from the records, after many batches and with two
//! writers on one database), the hourly backfill of migration 0005, and retention. The details' round trip is checked by the usage tests (`record(i)` carries
//! them).

use crate::common::TestDb;
use crate::usage::{options, record, Running, BASE_MS};
use sqlx::Row;
use std::collections::BTreeMap;
use switchboard_core::config::Retention;
use switchboard_core::usage::{
    bucket_index, BodyQueue, CallBody, Outcome, UsageQueue, UsageRecord,
};
use switchboard_store::{
    BodyWriter, UsageFilter, UsageWriter, WriterOptions, CATCH_UP, ROLLUP_BUCKET_MS,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// requests, errors, cancelled, 5 token counts, cost, latency sum, ttft sum, ttft count, and
/// the latency histogram.
type Sums = ([i64; 12], [i64; 30]);
type Groups = BTreeMap<(String, String, String, i64), Sums>;

/// `record(i)` moved into one of `minutes` minutes, so batches add to the same rollup rows.
fn clustered(i: u64, minutes: i64) -> UsageRecord {
    let mut r = record(i);
    r.started_at_ms = BASE_MS + (i as i64 % minutes) * ROLLUP_BUCKET_MS + (i as i64 % 59_000);
    r
}

const HOUR_MS: i64 = 3_600_000;

/// The rollups the records should give in buckets of `width` ms (a minute or an hour),
/// computed independently of the writer.
fn expected(records: &[UsageRecord], width: i64) -> Groups {
    let mut out = Groups::new();
    for r in records {
        let c = &r.caller;
        let org = c.org.clone().unwrap_or_default();
        let part = |p: &Option<String>| p.clone().unwrap_or_default();
        let mut dims = vec![("all", String::new()), ("alias", r.alias.clone())];
        if let (Some(p), Some(m)) = (&r.provider, &r.model) {
            dims.push(("target", format!("{p}/{m}")));
        }
        if c.team.is_some() {
            dims.push(("team", format!("{org}/{}", part(&c.team))));
        }
        if c.app.is_some() {
            dims.push(("app", format!("{org}/{}/{}", part(&c.team), part(&c.app))));
        }
        if let Some(key) = &c.key_id {
            dims.push(("key", key.clone()));
        }
        let mut tags: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        tags.sort();
        tags.dedup();
        dims.extend(tags.into_iter().map(|t| ("tag", t)));
        let bucket = r.started_at_ms - r.started_at_ms.rem_euclid(width);
        for (dim, value) in dims {
            let e = out
                .entry((dim.to_owned(), value, org.clone(), bucket))
                .or_default();
            let u = &r.usage;
            let add = [
                1,
                i64::from(r.outcome == Outcome::Error),
                i64::from(r.outcome == Outcome::Cancelled),
                u.input_tokens as i64,
                u.output_tokens as i64,
                u.cached_input_tokens as i64,
                u.cache_write_tokens as i64,
                u.reasoning_tokens as i64,
                r.cost.0,
                r.latency_ms as i64,
                r.ttft_ms.unwrap_or(0) as i64,
                i64::from(r.ttft_ms.is_some()),
            ];
            for (sum, n) in e.0.iter_mut().zip(add) {
                *sum += n;
            }
            e.1[bucket_index(r.latency_ms)] += 1;
        }
    }
    out
}

const SUM_COLUMNS: [&str; 12] = [
    "requests",
    "errors",
    "cancelled",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_micros",
    "latency_ms_sum",
    "ttft_ms_sum",
    "ttft_count",
];

/// The minute rollups as stored.
async fn stored(db: &TestDb) -> Groups {
    stored_in(db, "usage_rollups").await
}

/// The rows of one rollup table (`usage_rollups` or `usage_rollups_hourly`).
async fn stored_in(db: &TestDb, table: &str) -> Groups {
    let lat: Vec<String> = (0..30).map(|i| format!("lat_{i:02}")).collect();
    let sql = format!(
        "SELECT dimension, value, org, bucket_ms, {}, {} FROM {table}",
        SUM_COLUMNS.join(", "),
        lat.join(", ")
    );
    let mut out = Groups::new();
    for row in db.query_raw(&sql).await {
        let mut sums: Sums = Default::default();
        for (i, c) in SUM_COLUMNS.iter().enumerate() {
            sums.0[i] = row.get::<i64, _>(*c);
        }
        for (i, c) in lat.iter().enumerate() {
            sums.1[i] = row.get::<i64, _>(c.as_str());
        }
        let key = (
            row.get::<String, _>("dimension"),
            row.get::<String, _>("value"),
            row.get::<String, _>("org"),
            row.get::<i64, _>("bucket_ms"),
        );
        assert!(out.insert(key, sums).is_none(), "one row per key");
    }
    out
}

/// `groups` summed into hours.
fn by_hour(groups: &Groups) -> Groups {
    let mut out = Groups::new();
    for ((dim, value, org, bucket), sums) in groups {
        let hour = bucket - bucket.rem_euclid(HOUR_MS);
        let e = out
            .entry((dim.clone(), value.clone(), org.clone(), hour))
            .or_default();
        for (a, n) in e.0.iter_mut().zip(sums.0) {
            *a += n;
        }
        for (a, n) in e.1.iter_mut().zip(sums.1) {
            *a += n;
        }
    }
    out
}

fn assert_groups_eq(got: &Groups, want: &Groups, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (key, sums) in want {
        assert_eq!(got.get(key), Some(sums), "{what}: {key:?}");
    }
}

/// The hourly rollups are the minute rollups summed by hour.
async fn assert_hours_sum_minutes(db: &TestDb) {
    let minutes = stored(db).await;
    assert!(!minutes.is_empty());
    let hours = stored_in(db, "usage_rollups_hourly").await;
    assert!(hours.keys().all(|k| k.3.rem_euclid(HOUR_MS) == 0));
    assert_groups_eq(&hours, &by_hour(&minutes), "hours against minutes");
}

/// Rollups (both tables) equal the raw rows' sums, also per dimension `all` against the
/// ledger's totals.
async fn assert_rollups_match(db: &TestDb, records: &[UsageRecord]) {
    let got = stored(db).await;
    assert_groups_eq(&got, &expected(records, 60_000), "minutes");
    let hours = stored_in(db, "usage_rollups_hourly").await;
    assert_groups_eq(&hours, &expected(records, HOUR_MS), "hours");
    let totals = db
        .store
        .usage_totals(&UsageFilter::default(), None)
        .await
        .unwrap();
    let all = got
        .iter()
        .filter(|(k, _)| k.0 == "all")
        .fold([0i64; 12], |mut acc, (_, s)| {
            for (a, n) in acc.iter_mut().zip(s.0) {
                *a += n;
            }
            acc
        });
    let t = &totals[0];
    assert_eq!(all[0], t.requests);
    assert_eq!(all[1] + all[2], t.errors);
    assert_eq!(all[3], t.input_tokens);
    assert_eq!(all[8], t.cost_micros);
}

async fn rollups_equal_the_raw_rows(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(db, 1024, options(dir.path()));
    // Minutes 58..62 of the first hours: rows in two hours.
    let records: Vec<_> = (0..500)
        .map(|i| {
            let mut r = clustered(i, 4);
            r.started_at_ms += 58 * ROLLUP_BUCKET_MS;
            r
        })
        .collect();
    for r in &records {
        running.send(r.clone());
    }
    let stats = running.handle.wait_written(500).await;
    assert!(stats.batches >= 500 / (64 * CATCH_UP as u64), "{stats:?}");
    assert_rollups_match(db, &records).await;
    running.stop().await;
}

async fn two_writers_add_to_the_same_rollups(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let writer_options = WriterOptions {
        batch_size: 16,
        ..options(dir.path())
    };
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let mut queues = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (queue, rx) = UsageQueue::channel(1024);
        let store = db.open().await;
        handles.push(UsageWriter::spawn(
            store,
            rx,
            writer_options.clone(),
            &tracker,
            cancel.clone(),
        ));
        queues.push(queue);
    }
    let records: Vec<_> = (0..600).map(|i| clustered(i, 3)).collect();
    let senders: Vec<_> = queues
        .iter()
        .enumerate()
        .map(|(w, queue)| {
            let queue = queue.clone();
            let mine: Vec<_> = records.iter().skip(w).step_by(2).cloned().collect();
            tokio::spawn(async move {
                for r in mine {
                    queue.reserve().expect("a free usage slot").send(r);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    for h in &handles {
        h.wait_written(300).await;
    }
    assert_rollups_match(db, &records).await;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

/// A small deterministic generator (xorshift), so failures repeat.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Records at random times over five hours, written in bursts of random sizes (so batches
/// of every size, several adding to one hour): the hourly table stays the minute table summed
/// by hour, and both equal the raw rows.
async fn hourly_rollups_are_minutes_summed_by_hour(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(db, 1024, options(dir.path()));
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut records = Vec::new();
    let mut i = 0;
    while records.len() < 700 {
        let burst = 1 + rng.below(150);
        for _ in 0..burst {
            let mut r = record(i);
            r.started_at_ms = BASE_MS + 1 + rng.below(5 * HOUR_MS as u64) as i64;
            running.send(r.clone());
            records.push(r);
            i += 1;
        }
        running.handle.wait_written(records.len() as u64).await;
    }
    running.stop().await;
    assert_hours_sum_minutes(db).await;
    assert_rollups_match(db, &records).await;
}

/// The statement of migration 0005 that fills the hourly table from the minute one.
fn hourly_backfill(db: &TestDb) -> &'static str {
    let migration = match db.backend {
        switchboard_store::Backend::Sqlite => {
            include_str!("../../migrations/sqlite/0005_hourly_rollups.sql")
        }
        switchboard_store::Backend::Postgres => {
            include_str!("../../migrations/postgres/0005_hourly_rollups.sql")
        }
    };
    let start = migration.find("INSERT INTO usage_rollups_hourly").unwrap();
    &migration[start..]
}

/// Makes the hourly rollups anew from the minute rollups, as migration 0005 does: for tests
/// that insert minute rows by hand.
pub(crate) async fn rebuild_hourly_rollups(db: &TestDb) {
    db.execute_raw("DELETE FROM usage_rollups_hourly").await;
    db.execute_raw(hourly_backfill(db)).await;
}

/// Migration 0005's backfill sums the minute rollups written before it by hour.
async fn backfill_sums_minutes_by_hour(db: &TestDb) {
    let records: Vec<_> = (0..300)
        .map(|i| {
            let mut r = record(i);
            r.started_at_ms = BASE_MS + i as i64 * 61_000;
            r
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(db, 1024, options(dir.path()));
    for r in &records {
        running.send(r.clone());
    }
    running.handle.wait_written(300).await;
    running.stop().await;
    rebuild_hourly_rollups(db).await;
    assert_hours_sum_minutes(db).await;
    assert_groups_eq(
        &stored_in(db, "usage_rollups_hourly").await,
        &expected(&records, HOUR_MS),
        "backfilled hours",
    );
}

both!(
    rollups_equal_the_raw_rows,
    two_writers_add_to_the_same_rollups,
    hourly_rollups_are_minutes_summed_by_hour,
    backfill_sums_minutes_by_hour,
);

/// Not a test: how long the writer takes for 40 batches of 512 records of one busy minute
/// (`cargo test --release -p switchboard-store --test store writer_batch_cost -- --ignored
/// --nocapture`), to compare with and without rollups.
async fn writer_batch_cost(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let writer_options = WriterOptions {
        batch_size: 512,
        ..options(dir.path())
    };
    let running = Running::start(db, 512 * 40, writer_options);
    let unique_tags = std::env::var_os("SB_UNIQUE_TAGS").is_some();
    let records: Vec<_> = (0..512 * 40)
        .map(|i| {
            let mut r = clustered(i, 1);
            if !unique_tags {
                // Low-cardinality tags, as tags for analytics should be.
                r.tags.retain(|(k, _)| k != "ticket");
            }
            r
        })
        .collect();
    let started = std::time::Instant::now();
    for r in records {
        running.send(r);
    }
    let stats = running.handle.wait_written(512 * 40).await;
    let elapsed = started.elapsed();
    eprintln!(
        "{:?}: {} records in {} batches, {:.2} ms per batch",
        db.backend,
        stats.written,
        stats.batches,
        elapsed.as_secs_f64() * 1000.0 / stats.batches as f64
    );
    running.stop().await;
}

mod writer_batch_cost {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement"]
    async fn sqlite() {
        super::writer_batch_cost(&crate::common::TestDb::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement"]
    async fn postgres() {
        if let Some(db) = crate::common::TestDb::postgres().await {
            super::writer_batch_cost(&db).await;
            db.drop_schema().await;
        }
    }
}

/// Records, bodies and rollups older than their retention go, in batches; newer ones stay.
async fn retention_deletes_old_rows_in_batches(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let running = Running::start(db, 1024, options(dir.path()));
    // 40 records a day apart from BASE_MS (and so 40 days of rollups).
    let records: Vec<_> = (0..40u64)
        .map(|i| {
            let mut r = record(i);
            r.started_at_ms = BASE_MS + i as i64 * 86_400_000;
            r
        })
        .collect();
    for r in &records {
        running.send(r.clone());
    }
    running.handle.wait_written(40).await;
    running.stop().await;
    for i in 0..40i64 {
        db.execute_raw(&format!(
            "INSERT INTO call_bodies (request_id, started_at_ms, request_body) VALUES ('b{i}', {}, '{{}}')",
            BASE_MS + i * 86_400_000
        ))
        .await;
    }
    let rollups_before = stored(db).await.len();
    let hourly_before = stored_in(db, "usage_rollups_hourly").await.len();
    let now = BASE_MS + 40 * 86_400_000;
    let policy = Retention {
        calls_days: Some(30),
        bodies_days: Some(7),
        rollups_days: Some(35),
        batch: 3,
        interval: std::time::Duration::from_secs(60),
    };
    let stats = db
        .store
        .retention_pass(&policy, now, &CancellationToken::new())
        .await
        .unwrap();
    // Days 0..=9 of records, 0..=32 of bodies, 0..=4 of rollups are older than their cutoff.
    assert_eq!(stats.calls, 10);
    assert_eq!(stats.bodies, 33);
    let count = |sql: &'static str| async move { db.query_raw(sql).await[0].get::<i64, _>(0) };
    assert_eq!(count("SELECT COUNT(*) FROM usage_records").await, 30);
    assert_eq!(
        count("SELECT MIN(started_at_ms) FROM usage_records").await,
        BASE_MS + 10 * 86_400_000
    );
    assert_eq!(count("SELECT COUNT(*) FROM call_bodies").await, 7);
    assert_eq!(
        count("SELECT COUNT(*) FROM usage_rollups WHERE bucket_ms < 1704499200000").await,
        0
    );
    assert_eq!(
        stored(db).await.len() as u64,
        rollups_before as u64 - stats.rollups
    );
    assert!(stats.rollups > 0);
    // The hourly rollups go by the same cutoff.
    assert_eq!(
        count("SELECT COUNT(*) FROM usage_rollups_hourly WHERE bucket_ms < 1704499200000").await,
        0
    );
    let hourly_after = stored_in(db, "usage_rollups_hourly").await.len() as u64;
    assert!(stats.hourly_rollups > 0);
    assert_eq!(hourly_after, hourly_before as u64 - stats.hourly_rollups);
    assert!(hourly_after > 0);
    assert_hours_sum_minutes(db).await;
    // Batches of 3: every table needed several statements (plus the one that found less).
    let want =
        (10u64 / 3 + 1) + (33 / 3 + 1) + (stats.rollups / 3 + 1) + (stats.hourly_rollups / 3 + 1);
    assert_eq!(stats.batches, want);
    // A second pass finds nothing; spend of the kept rollups is still there.
    let again = db
        .store
        .retention_pass(&policy, now, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        (
            again.calls,
            again.bodies,
            again.rollups,
            again.hourly_rollups
        ),
        (0, 0, 0, 0)
    );
    let kept: i64 = records[5..].iter().map(|r| r.cost.0).sum();
    let spent: i64 = db
        .store
        .spend_by_subject(switchboard_core::limits::Scope::Alias, 0)
        .await
        .unwrap()
        .iter()
        .map(|(_, s)| s)
        .sum();
    assert_eq!(spent, kept);
}

both!(retention_deletes_old_rows_in_batches);

fn body(i: u64) -> CallBody {
    CallBody {
        request_id: format!("req-{i}"),
        started_at_ms: BASE_MS + i as i64,
        request: Some(format!("{{\"n\":{i}}}")),
        response: i.is_multiple_of(2).then(|| format!("data: {i}\n\n")),
        truncated: i.is_multiple_of(3),
    }
}

/// The body writer writes what the queue holds; a batch it cannot write is dropped and
/// counted, and it goes on; a full queue refuses (and counts) without waiting.
async fn bodies_are_written_or_dropped_and_counted(db: &TestDb) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (queue, rx) = BodyQueue::channel(64);
    let handle = BodyWriter::spawn(db.store.clone(), rx, &tracker, cancel.clone());
    for i in 0..10 {
        assert!(queue.offer(body(i)));
    }
    handle.wait_until(|s| s.written >= 10).await;
    assert_eq!(
        db.store.bodies_of("req-4").await.unwrap(),
        vec![(
            Some("{\"n\":4}".to_owned()),
            Some("data: 4\n\n".to_owned()),
            false
        )]
    );
    assert_eq!(
        db.store.bodies_of("req-3").await.unwrap(),
        vec![(Some("{\"n\":3}".to_owned()), None, true)]
    );
    db.execute_raw("ALTER TABLE call_bodies RENAME TO call_bodies_away")
        .await;
    assert!(queue.offer(body(10)));
    let stats = handle.wait_until(|s| s.failed >= 1).await;
    assert_eq!((stats.written, stats.failed), (10, 1));
    db.execute_raw("ALTER TABLE call_bodies_away RENAME TO call_bodies")
        .await;
    assert!(queue.offer(body(11)));
    handle.wait_until(|s| s.written >= 11).await;
    assert!(db.store.bodies_of("req-10").await.unwrap().is_empty());
    // Shutdown writes what is queued.
    for i in 12..20 {
        assert!(queue.offer(body(i)));
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    let stats = handle.stats();
    assert!(stats.stopped);
    assert_eq!(stats.written, 19);
    // A full queue refuses at once.
    let (full, _rx) = BodyQueue::channel(2);
    assert!(full.offer(body(0)) && full.offer(body(1)));
    assert!(!full.offer(body(2)));
}

both!(bodies_are_written_or_dropped_and_counted);
