//! Measures the call log and analytics queries on a large ledger (docs/observability.md):
//! writes N usage records (default 1,000,000, spread over 7 days) through the usage writer,
//! which fills the per-minute rollups as the gateway does, then times the analytics and log
//! queries (median of 5 runs) and, for comparison, the same series computed from the raw rows.
//!
//! ```text
//! cargo run --release -p switchboard-store --example analytics_bench -- sqlite:///tmp/bench.db
//! cargo run --release -p switchboard-store --example analytics_bench -- \
//!     postgres://postgres@127.0.0.1:5432/test [records]
//! ```
//! Postgres runs in the schema `analytics_bench` (dropped and made afresh); a SQLite file is
//! replaced.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a measuring tool that fails loudly"
)]

use futures::StreamExt;
use std::time::{Duration, Instant};
use switchboard_core::usage::{CallKind, Caller, Outcome, UsageQueue, UsageRecord, UsageSource};
use switchboard_store::{
    Dimension, Interval, LogFilter, RollupQuery, Store, StoreOptions, TopOrder, UsageFilter,
    UsageGroup, UsageWriter, WriterOptions,
};
use switchboard_types::{MicroUsd, Usage};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SCHEMA: &str = "analytics_bench";
const DAY: i64 = 86_400_000;

/// A cheap deterministic mix of `i` and a salt.
fn mix(i: u64, salt: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

fn record(i: u64, n: u64, start_ms: i64, span_ms: i64) -> UsageRecord {
    let org = ["acme", "globex", "initech"][(mix(i, 1) % 3) as usize];
    let team = format!("team{}", mix(i, 2) % 5);
    let app = format!("app{}", mix(i, 3) % 2);
    let alias = format!("alias-{}", mix(i, 4) % 10);
    let (provider, model) = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet"),
        ("anthropic", "claude-haiku"),
        ("gemini", "gemini-pro"),
        ("gemini", "gemini-flash"),
    ][(mix(i, 5) % 6) as usize];
    let error = mix(i, 6) % 100 < 3;
    // Latencies from 20 ms to ~20 s, most of them short.
    let latency = 20 + (mix(i, 7) % 1000).pow(3) / 50_000;
    let stream = mix(i, 8).is_multiple_of(2);
    let offset = (i as i128 * span_ms as i128 / n as i128) as i64;
    UsageRecord {
        request_id: format!("bench-{i}"),
        started_at_ms: start_ms + offset,
        caller: Caller {
            org: Some(org.to_owned()),
            team: Some(team),
            app: Some(app),
            key_id: Some(format!("key_{}", mix(i, 9) % 200)),
            user: None,
        },
        kind: CallKind::Chat,
        alias,
        served_alias: None,
        provider: Some(provider.to_owned()),
        model: Some(model.to_owned()),
        stream,
        usage: Usage {
            input_tokens: 100 + mix(i, 10) % 2000,
            output_tokens: 10 + mix(i, 11) % 500,
            ..Usage::default()
        },
        usage_source: UsageSource::Reported,
        cost: MicroUsd((mix(i, 12) % 5_000) as i64),
        priced: true,
        latency_ms: latency,
        ttft_ms: stream.then_some(latency / 4),
        attempts: 1,
        outcome: if error { Outcome::Error } else { Outcome::Ok },
        status: if error { 502 } else { 200 },
        error_code: error.then(|| "upstream_error".to_owned()),
        tags: vec![
            (
                "env".to_owned(),
                ["prod", "dev"][(mix(i, 13) % 2) as usize].to_owned(),
            ),
            ("feature".to_owned(), format!("f{}", mix(i, 14) % 20)),
        ],
        details: Default::default(),
    }
}

async fn open(url: &str, reuse: bool) -> Store {
    let mut options = StoreOptions::default();
    if url.starts_with("postgres") {
        if !reuse {
            use sqlx::Connection;
            let mut conn = sqlx::postgres::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(
                "DROP SCHEMA IF EXISTS analytics_bench CASCADE; CREATE SCHEMA analytics_bench",
            )
            .execute(&mut conn)
            .await
            .unwrap();
        }
        options.schema = Some(SCHEMA.to_owned());
    } else if let Some(path) = url.strip_prefix("sqlite://").filter(|_| !reuse) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    let store = Store::connect(url, &options).await.unwrap();
    if !reuse {
        store.migrate().await.unwrap();
    }
    store
}

/// The median of 5 runs of `f`, in milliseconds, and its last result.
async fn time<T, F, Fut>(f: F) -> (f64, T)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let t = Instant::now();
        last = Some(f().await);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[2], last.unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("a database URL");
    let n: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    // `reuse` as the third argument measures the database an earlier run left (e.g. after
    // adding an index by hand) without writing or migrating it again.
    let reuse = args.next().as_deref() == Some("reuse");
    let store = open(&url, reuse).await;
    let days = 7;
    let end_ms = 1_767_225_600_000; // 2026-01-01
    let start_ms = end_ms - days * DAY;

    // Write through the usage writer (rollups included), as the gateway does.
    let dir = std::env::temp_dir();
    let (queue, rx) = UsageQueue::channel(65_536);
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let options = WriterOptions {
        batch_size: 4_096,
        flush_interval: Duration::from_millis(50),
        spill_dir: dir,
        ..WriterOptions::default()
    };
    let handle = UsageWriter::spawn(store.clone(), rx, options, &tracker, cancel.clone());
    let t = Instant::now();
    for i in (0..n).filter(|_| !reuse) {
        let r = record(i, n, start_ms, days * DAY);
        loop {
            if let Some(slot) = queue.reserve() {
                slot.send(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    if !reuse {
        handle.wait_written(n).await;
    }
    let write_s = t.elapsed().as_secs_f64();
    if url.starts_with("postgres") && !reuse {
        // Autovacuum analyzes a table once a tenth of its rows changed, which a growing call log
        // keeps doing; right after this bulk load it has not run yet, and the planner would
        // plan with the empty tables' statistics (a tag filter's first page then took 0.6-0.9 s
        // on 1M rows, 1.3 ms once analyzed). Measure what a live database sees.
        use sqlx::Connection;
        let mut conn = sqlx::postgres::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("ANALYZE").execute(&mut conn).await.unwrap();
    }
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    let rollup_rows: i64 = {
        let q = RollupQuery {
            org: None,
            dimension: Dimension::All,
            value: None,
            from_ms: 0,
            to_ms: i64::MAX,
        };
        store.rollup_totals(&q).await.unwrap()[0].stats.requests
    };
    assert_eq!(rollup_rows as u64, n, "rollups count every record");
    println!("backend: {:?}", store.backend());
    println!(
        "wrote {n} records in {write_s:.1} s ({:.0}/s), rollups included",
        n as f64 / write_s
    );

    let day_from = end_ms - DAY;
    let series_q = |org: Option<&str>| RollupQuery {
        org: org.map(str::to_owned),
        dimension: Dimension::Alias,
        value: None,
        from_ms: day_from,
        to_ms: end_ms,
    };
    let one_org = series_q(Some("acme"));
    let (ms, points) = time(|| store.rollup_series(&one_org, Interval::Hour)).await;
    println!(
        "timeseries 1 day by hour, grouped by alias, one org: {ms:.1} ms ({} points)",
        points.unwrap().len()
    );
    let all_orgs = series_q(None);
    let (ms, points) = time(|| store.rollup_series(&all_orgs, Interval::Hour)).await;
    println!(
        "timeseries 1 day by hour, grouped by alias, all orgs: {ms:.1} ms ({} points)",
        points.unwrap().len()
    );
    let week = RollupQuery {
        from_ms: start_ms,
        ..series_q(None)
    };
    let (ms, points) = time(|| store.rollup_series(&week, Interval::Day)).await;
    println!(
        "timeseries 7 days by day, grouped by alias, all orgs: {ms:.1} ms ({} points)",
        points.unwrap().len()
    );
    let minutes = RollupQuery {
        dimension: Dimension::All,
        ..series_q(Some("acme"))
    };
    let (ms, points) = time(|| store.rollup_series(&minutes, Interval::Minute)).await;
    println!(
        "timeseries 1 day by minute, ungrouped, one org: {ms:.1} ms ({} points)",
        points.unwrap().len()
    );
    let keys = RollupQuery {
        dimension: Dimension::Key,
        from_ms: start_ms,
        ..series_q(None)
    };
    let (ms, top) = time(|| store.rollup_top(&keys, TopOrder::Cost, 10)).await;
    println!(
        "top 10 keys by cost over 7 days: {ms:.1} ms ({} rows)",
        top.unwrap().len()
    );
    let aliases = RollupQuery {
        from_ms: day_from,
        ..series_q(Some("acme"))
    };
    let (ms, top) = time(|| store.rollup_top(&aliases, TopOrder::Latency, 5)).await;
    println!(
        "top 5 aliases by p95 over 1 day, one org: {ms:.1} ms ({} rows)",
        top.unwrap().len()
    );

    // For comparison: the daily series from the raw rows (what rollups avoid).
    let raw_filter = UsageFilter {
        from_ms: Some(day_from),
        to_ms: Some(end_ms),
        ..UsageFilter::default()
    };
    let (ms, _) = time(|| store.usage_totals(&raw_filter, Some(UsageGroup::Alias))).await;
    println!("raw rows: totals by alias over 1 day, all orgs (no percentiles): {ms:.1} ms");

    // The call log.
    let org = LogFilter {
        org: Some("acme".into()),
        ..LogFilter::default()
    };
    let (ms, _) = time(|| store.list_calls(&org, None, 50)).await;
    println!("log: first page of 50, one org: {ms:.1} ms");
    let page = store.list_calls(&org, None, 50).await.unwrap();
    let (ms, _) = time(|| store.list_calls(&org, page.next, 50)).await;
    println!("log: next page by cursor: {ms:.1} ms");
    let tagged = LogFilter {
        tag: Some(("feature".into(), "f7".into())),
        ..org.clone()
    };
    let (ms, _) = time(|| store.list_calls(&tagged, None, 50)).await;
    println!("log: first page with a tag filter: {ms:.1} ms");
    let rare = LogFilter {
        error_code: Some("upstream_error".into()),
        key_id: Some("key_7".into()),
        ..LogFilter::default()
    };
    let (ms, _) = time(|| store.list_calls(&rare, None, 50)).await;
    println!("log: first page, key + error code: {ms:.1} ms");
    let (ms, found) = time(|| store.calls_by_request("bench-123456", None)).await;
    println!(
        "log: one request id: {ms:.2} ms ({} rows)",
        found.unwrap().len()
    );
    let day = LogFilter {
        from_ms: Some(end_ms - DAY),
        to_ms: Some(end_ms),
        ..LogFilter::default()
    };
    let t = Instant::now();
    let exported = store
        .export_calls(day)
        .fold(0u64, |n, r| async move {
            r.unwrap();
            n + 1
        })
        .await;
    let s = t.elapsed().as_secs_f64();
    println!(
        "log: export of one day ({exported} rows): {s:.1} s ({:.0} rows/s)",
        exported as f64 / s
    );
}
