//! The call log's reads (filters, newest-first paging that never repeats or skips a row,
//! export, one request with its bodies) and the analytics over the rollups (series, top-N,
//! organisation filter), each checked against values computed here from the inputs.

use crate::common::TestDb;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::time::Duration;
use switchboard_core::limits::Scope;
use switchboard_core::usage::{
    bucket_index, CallKind, Caller, Outcome, UsageQueue, UsageRecord, UsageSource,
};
use switchboard_store::{
    CallLogEntry, Dimension, Interval, LogCursor, LogFilter, RollupPoint, RollupQuery, RollupStats,
    TopOrder, UsageWriter, WriterOptions, LATENCY_BUCKETS,
};
use switchboard_types::{MicroUsd, Usage};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// 2024-01-01T00:00:00Z.
const BASE_MS: i64 = 1_704_067_200_000;

/// Records that share start times in threes, so paging must order ties by id.
pub fn record(i: u64) -> UsageRecord {
    let n = i as i64;
    let outcome = [Outcome::Ok, Outcome::Error, Outcome::Cancelled, Outcome::Ok][(i % 4) as usize];
    UsageRecord {
        request_id: format!("req-{i}"),
        started_at_ms: BASE_MS + (n / 3) * 1_000,
        caller: Caller {
            org: Some(["acme", "globex"][(i % 2) as usize].to_owned()),
            team: Some(["research", "ops", "web"][(i % 3) as usize].to_owned()),
            app: Some("bot".to_owned()),
            key_id: Some(format!("key_{}", i % 5)),
            user: None,
        },
        kind: CallKind::Chat,
        alias: ["smart", "fast"][(i % 2) as usize].to_owned(),
        served_alias: None,
        provider: Some(["openai", "anthropic", "gemini"][(i % 3) as usize].to_owned()),
        model: Some("m-1".to_owned()),
        stream: false,
        usage: Usage {
            input_tokens: 10 + i,
            output_tokens: 5,
            ..Usage::default()
        },
        usage_source: UsageSource::Reported,
        cost: MicroUsd(100 + n),
        priced: true,
        latency_ms: 20 + i,
        ttft_ms: None,
        attempts: 1,
        status: if outcome == Outcome::Error { 502 } else { 200 },
        error_code: (outcome == Outcome::Error).then(|| "upstream_error".to_owned()),
        outcome,
        tags: if i.is_multiple_of(4) {
            vec![("env".to_owned(), "prod_1%".to_owned())]
        } else {
            vec![("env".to_owned(), "prodX1%".to_owned())]
        },
        details: Default::default(),
    }
}

/// Writes `records` through the usage writer (the path the gateway uses) and waits for them.
pub async fn write(db: &TestDb, records: Vec<UsageRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let (queue, rx) = UsageQueue::channel(records.len() + 1);
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let options = WriterOptions {
        batch_size: 128,
        flush_interval: Duration::from_millis(10),
        shutdown_grace: Duration::from_secs(10),
        spill_dir: dir.path().to_path_buf(),
        retry_start: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
    };
    let handle = UsageWriter::spawn(db.store.clone(), rx, options, &tracker, cancel.clone());
    let n = records.len() as u64;
    for r in records {
        queue.reserve().unwrap().send(r);
    }
    handle.wait_written(n).await;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
}

async fn all_pages(db: &TestDb, filter: &LogFilter, limit: usize) -> Vec<CallLogEntry> {
    let mut out = Vec::new();
    let mut cursor: Option<LogCursor> = None;
    loop {
        let page = db.store.list_calls(filter, cursor, limit).await.unwrap();
        assert!(page.entries.len() <= limit);
        out.extend(page.entries);
        match page.next {
            // The cursor crosses the API as text.
            Some(next) => cursor = Some(LogCursor::decode(&next.encode()).unwrap()),
            None => return out,
        }
    }
}

async fn paging_returns_every_row_once_newest_first(db: &TestDb) {
    write(db, (0..250).map(record).collect()).await;
    let rows = all_pages(db, &LogFilter::default(), 7).await;
    assert_eq!(rows.len(), 250);
    let ids: BTreeSet<i64> = rows.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 250, "no row twice");
    for pair in rows.windows(2) {
        let a = (pair[0].record.started_at_ms, pair[0].id);
        let b = (pair[1].record.started_at_ms, pair[1].id);
        assert!(a > b, "newest first: {a:?} then {b:?}");
    }
    let mut got: Vec<String> = rows.iter().map(|e| e.record.request_id.clone()).collect();
    got.sort();
    let mut want: Vec<String> = (0..250).map(|i| format!("req-{i}")).collect();
    want.sort();
    assert_eq!(got, want, "none missed");
    // A record reads back as written.
    let first = rows
        .iter()
        .find(|e| e.record.request_id == "req-17")
        .unwrap();
    assert_eq!(first.record, record(17));
}

async fn filters_match_what_they_name(db: &TestDb) {
    // Apps, models and error codes vary too (independently of org, team and provider), so
    // that a filter that ignored one of them would match too much.
    let records: Vec<UsageRecord> = (0..120)
        .map(|i| {
            let mut r = record(i);
            r.caller.app = Some(["bot", "cli"][((i / 4) % 2) as usize].to_owned());
            r.model = Some(["m-1", "m-2"][((i / 6) % 2) as usize].to_owned());
            if r.error_code.is_some() && (i / 8) % 2 == 1 {
                r.error_code = Some("upstream_timeout".to_owned());
            }
            r
        })
        .collect();
    write(db, records.clone()).await;
    let check = |name: &str, filter: LogFilter, want: &dyn Fn(&UsageRecord) -> bool| {
        let want: BTreeSet<String> = records
            .iter()
            .filter(|r| want(r))
            .map(|r| r.request_id.clone())
            .collect();
        (name.to_owned(), filter, want)
    };
    let s = |v: &str| Some(v.to_owned());
    let cases = vec![
        check(
            "org",
            LogFilter {
                org: s("acme"),
                ..Default::default()
            },
            &|r| r.caller.org.as_deref() == Some("acme"),
        ),
        check(
            "org+team+app",
            LogFilter {
                org: s("globex"),
                team: s("ops"),
                app: s("bot"),
                ..Default::default()
            },
            &|r| {
                r.caller.org.as_deref() == Some("globex")
                    && r.caller.team.as_deref() == Some("ops")
                    && r.caller.app.as_deref() == Some("bot")
            },
        ),
        check(
            "key",
            LogFilter {
                key_id: s("key_3"),
                ..Default::default()
            },
            &|r| r.caller.key_id.as_deref() == Some("key_3"),
        ),
        check(
            "alias",
            LogFilter {
                alias: s("fast"),
                ..Default::default()
            },
            &|r| r.alias == "fast",
        ),
        check(
            "target",
            LogFilter {
                target: s("gemini/m-1"),
                ..Default::default()
            },
            &|r| r.provider.as_deref() == Some("gemini") && r.model.as_deref() == Some("m-1"),
        ),
        check(
            "provider",
            LogFilter {
                target: s("openai"),
                ..Default::default()
            },
            &|r| r.provider.as_deref() == Some("openai"),
        ),
        check(
            "outcome",
            LogFilter {
                outcome: s("cancelled"),
                ..Default::default()
            },
            &|r| r.outcome == Outcome::Cancelled,
        ),
        check(
            "status",
            LogFilter {
                status: Some(502),
                ..Default::default()
            },
            &|r| r.status == 502,
        ),
        check(
            "error code",
            LogFilter {
                error_code: s("upstream_error"),
                ..Default::default()
            },
            &|r| r.error_code.as_deref() == Some("upstream_error"),
        ),
        // `_` and `%` in a tag are literal, not wildcards.
        check(
            "tag",
            LogFilter {
                tag: Some(("env".into(), "prod_1%".into())),
                ..Default::default()
            },
            &|r| r.tags.iter().any(|(_, v)| v == "prod_1%"),
        ),
        check(
            "request id",
            LogFilter {
                request_id: s("req-42"),
                ..Default::default()
            },
            &|r| r.request_id == "req-42",
        ),
        check(
            "time range",
            LogFilter {
                from_ms: Some(BASE_MS + 10_000),
                to_ms: Some(BASE_MS + 20_000),
                ..Default::default()
            },
            &|r| r.started_at_ms >= BASE_MS + 10_000 && r.started_at_ms < BASE_MS + 20_000,
        ),
    ];
    for (name, filter, want) in cases {
        let got: BTreeSet<String> = all_pages(db, &filter, 50)
            .await
            .into_iter()
            .map(|e| e.record.request_id)
            .collect();
        assert!(!want.is_empty(), "{name}: the case matches something");
        assert!(
            want.len() < records.len(),
            "{name}: the case leaves something out"
        );
        assert_eq!(got, want, "{name}");
    }
}

async fn export_streams_every_matching_row(db: &TestDb) {
    write(db, (0..1_203).map(record).collect()).await;
    let filter = LogFilter {
        org: Some("acme".into()),
        ..Default::default()
    };
    let exported: Vec<CallLogEntry> = db
        .store
        .export_calls(filter.clone())
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(exported.len(), 602);
    assert_eq!(exported, all_pages(db, &filter, 1_000).await);
}

async fn one_request_comes_with_its_bodies(db: &TestDb) {
    write(db, vec![record(7), record(8)]).await;
    let started = record(7).started_at_ms;
    db.execute_raw(&format!(
        "INSERT INTO call_bodies (request_id, started_at_ms, request_body, response_body, \
         truncated) VALUES ('req-7', {started}, '{{\"q\":1}}', '{{\"a\":2}}', 1)"
    ))
    .await;
    let calls = db.store.calls_by_request("req-7", None).await.unwrap();
    assert_eq!(calls.len(), 1);
    let bodies = calls[0].bodies.as_ref().unwrap();
    assert_eq!(bodies.request_body.as_deref(), Some("{\"q\":1}"));
    assert!(bodies.truncated);
    let other = db.store.calls_by_request("req-8", None).await.unwrap();
    assert_eq!(other[0].bodies, None);
    // Another organisation's request is not found (req-7 is globex's).
    assert!(db
        .store
        .calls_by_request("req-7", Some("acme"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        db.store
            .calls_by_request("req-7", Some("globex"))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Inserts one rollup row with `requests` requests of `latency` ms each.
async fn rollup(
    db: &TestDb,
    minute: i64,
    org: &str,
    dim: &str,
    value: &str,
    requests: i64,
    latency: u64,
) {
    let bucket = bucket_index(latency);
    db.execute_raw(&format!(
        "INSERT INTO usage_rollups (bucket_ms, org, dimension, value, requests, errors, \
         input_tokens, output_tokens, cost_micros, latency_ms_sum, ttft_ms_sum, ttft_count, \
         lat_{bucket:02}) VALUES ({}, '{org}', '{dim}', '{value}', {requests}, {}, {}, {}, {}, \
         {}, {}, {}, {requests})",
        BASE_MS + minute * 60_000,
        requests / 4,
        requests * 10,
        requests * 2,
        requests * 1_000,
        requests * latency as i64,
        requests * 5,
        requests,
    ))
    .await;
}

async fn analytics_sum_rollups_by_bucket_and_group(db: &TestDb) {
    // Two hours of minutes; `smart` is slow and busy, `fast` quick.
    for minute in 0..120 {
        rollup(db, minute, "acme", "alias", "smart", 8, 900).await;
        rollup(db, minute, "acme", "alias", "fast", 4, 40).await;
        rollup(db, minute, "globex", "alias", "fast", 2, 40).await;
        rollup(db, minute, "acme", "all", "", 12, 500).await;
    }
    crate::calllog::rebuild_hourly_rollups(db).await;
    let q = RollupQuery {
        org: Some("acme".into()),
        dimension: Dimension::Alias,
        value: None,
        from_ms: BASE_MS,
        to_ms: BASE_MS + 2 * 3_600_000,
    };
    let series = db.store.rollup_series(&q, Interval::Hour).await.unwrap();
    assert_eq!(series.len(), 4, "two hours by two aliases");
    let first = &series[0];
    assert_eq!(first.bucket_ms, Some(BASE_MS));
    assert_eq!(first.group.as_deref(), Some("fast"));
    assert_eq!(first.stats.requests, 240);
    assert_eq!(first.stats.errors, 60);
    assert_eq!(first.stats.cost_micros, 240_000);
    assert_eq!(first.stats.avg_ttft_ms(), Some(5.0));
    let p95 = series[1].stats.latency_percentile(0.95).unwrap();
    assert!(
        (750.0..=1_000.0).contains(&p95),
        "p95 of 900ms rows in its bucket: {p95}"
    );
    // Minutes, one alias, whole platform (both organisations).
    let q_all = RollupQuery {
        org: None,
        value: Some("fast".into()),
        ..q.clone()
    };
    let minutes = db
        .store
        .rollup_series(&q_all, Interval::Minute)
        .await
        .unwrap();
    assert_eq!(minutes.len(), 120);
    assert!(minutes.iter().all(|p| p.stats.requests == 6));
    // Ungrouped.
    let q_total = RollupQuery {
        dimension: Dimension::All,
        ..q.clone()
    };
    let days = db
        .store
        .rollup_series(&q_total, Interval::Day)
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].group, None);
    assert_eq!(days[0].stats.requests, 12 * 120);
    // Top-N.
    let top = db
        .store
        .rollup_top(&q, TopOrder::Requests, 1)
        .await
        .unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].group.as_deref(), Some("smart"));
    assert_eq!(top[0].stats.requests, 8 * 120);
    let by_latency = db
        .store
        .rollup_top(&q_all_orgs(&q), TopOrder::Latency, 5)
        .await
        .unwrap();
    assert_eq!(by_latency[0].group.as_deref(), Some("smart"));
    assert_eq!(by_latency[1].stats.requests, 6 * 120);
    // A range with nothing.
    let empty = RollupQuery {
        from_ms: 0,
        to_ms: 1,
        ..q
    };
    assert!(db
        .store
        .rollup_series(&empty, Interval::Hour)
        .await
        .unwrap()
        .is_empty());
}

fn q_all_orgs(q: &RollupQuery) -> RollupQuery {
    RollupQuery {
        org: None,
        ..q.clone()
    }
}

both!(
    paging_returns_every_row_once_newest_first,
    filters_match_what_they_name,
    export_streams_every_matching_row,
    one_request_comes_with_its_bodies,
    analytics_sum_rollups_by_bucket_and_group,
);

/// Records through the writer (which fills the rollups): analytics totals equal the sums over
/// `usage_records`, per organisation and per alias, and the log shows each call's details.
async fn analytics_totals_equal_the_raw_rows(db: &TestDb) {
    let records: Vec<UsageRecord> = (0..400)
        .map(|i| {
            let mut r = record(i);
            r.started_at_ms = BASE_MS + (i as i64) * 37_000;
            r.details.route = Some("/v1/chat/completions".into());
            r.details.attempts = vec![switchboard_core::usage::AttemptLog {
                target: "openai/m-1".into(),
                status: 200,
                latency_ms: 12,
                error_code: None,
            }];
            r
        })
        .collect();
    write(db, records.clone()).await;
    let to_ms = BASE_MS + 400 * 37_000 + 60_000;
    for org in ["acme", "globex"] {
        let raw = db
            .store
            .usage_totals(
                &switchboard_store::UsageFilter {
                    org: Some(org.into()),
                    ..Default::default()
                },
                Some(switchboard_store::UsageGroup::Alias),
            )
            .await
            .unwrap();
        let q = RollupQuery {
            org: Some(org.into()),
            dimension: Dimension::Alias,
            value: None,
            from_ms: BASE_MS,
            to_ms,
        };
        let rolled = db.store.rollup_totals(&q).await.unwrap();
        assert_eq!(rolled.len(), raw.len(), "{org}");
        for (r, t) in rolled.iter().zip(&raw) {
            assert_eq!(r.group, t.group);
            assert_eq!(r.stats.requests, t.requests);
            // Raw `errors` counts every outcome but ok; rollups split errors and cancellations.
            assert_eq!(r.stats.errors + r.stats.cancelled, t.errors);
            assert_eq!(r.stats.input_tokens, t.input_tokens);
            assert_eq!(r.stats.output_tokens, t.output_tokens);
            assert_eq!(r.stats.cost_micros, t.cost_micros);
        }
        // An hourly series adds up to the same totals.
        let series = db.store.rollup_series(&q, Interval::Hour).await.unwrap();
        let requests: i64 = series.iter().map(|p| p.stats.requests).sum();
        assert_eq!(requests, raw.iter().map(|t| t.requests).sum::<i64>());
        // The exact p95 of the raw latencies lies within a bucket of the interpolated one.
        let mut latencies: Vec<u64> = records
            .iter()
            .filter(|r| r.caller.org.as_deref() == Some(org))
            .map(|r| r.latency_ms)
            .collect();
        latencies.sort_unstable();
        let all = RollupQuery {
            dimension: Dimension::All,
            ..q.clone()
        };
        let total = &db.store.rollup_totals(&all).await.unwrap()[0];
        let exact = latencies[(latencies.len() * 95).div_ceil(100) - 1];
        let got = total.stats.latency_percentile(0.95).unwrap();
        let b = bucket_index(exact);
        let width = (switchboard_core::usage::LATENCY_BUCKETS_MS[b]
            - if b == 0 {
                0
            } else {
                switchboard_core::usage::LATENCY_BUCKETS_MS[b - 1]
            }) as f64;
        assert!((got - exact as f64).abs() <= width, "p95 {got} vs {exact}");
    }
    let page = db
        .store
        .list_calls(&LogFilter::default(), None, 1)
        .await
        .unwrap();
    let details = &page.entries[0].record.details;
    assert_eq!(details.route.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(details.attempts.len(), 1);
}

both!(analytics_totals_equal_the_raw_rows);

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// One record's contribution to a rollup row.
fn stats_of(r: &UsageRecord) -> RollupStats {
    let mut latency_counts = vec![0; LATENCY_BUCKETS];
    latency_counts[bucket_index(r.latency_ms).min(LATENCY_BUCKETS - 1)] = 1;
    RollupStats {
        requests: 1,
        errors: i64::from(r.outcome == Outcome::Error),
        cancelled: i64::from(r.outcome == Outcome::Cancelled),
        input_tokens: r.usage.input_tokens as i64,
        output_tokens: r.usage.output_tokens as i64,
        cached_input_tokens: r.usage.cached_input_tokens as i64,
        cache_write_tokens: r.usage.cache_write_tokens as i64,
        reasoning_tokens: r.usage.reasoning_tokens as i64,
        cost_micros: r.cost.0,
        latency_ms_sum: r.latency_ms as i64,
        ttft_ms_sum: r.ttft_ms.unwrap_or(0) as i64,
        ttft_count: i64::from(r.ttft_ms.is_some()),
        latency_counts,
    }
}

fn add(into: &mut RollupStats, s: &RollupStats) {
    into.requests += s.requests;
    into.errors += s.errors;
    into.cancelled += s.cancelled;
    into.input_tokens += s.input_tokens;
    into.output_tokens += s.output_tokens;
    into.cached_input_tokens += s.cached_input_tokens;
    into.cache_write_tokens += s.cache_write_tokens;
    into.reasoning_tokens += s.reasoning_tokens;
    into.cost_micros += s.cost_micros;
    into.latency_ms_sum += s.latency_ms_sum;
    into.ttft_ms_sum += s.ttft_ms_sum;
    into.ttft_count += s.ttft_count;
    if into.latency_counts.is_empty() {
        into.latency_counts = vec![0; LATENCY_BUCKETS];
    }
    for (a, n) in into.latency_counts.iter_mut().zip(&s.latency_counts) {
        *a += n;
    }
}

/// What the minute rollups alone answer, from the raw records: the records whose minute
/// starts in the range, per bucket of `width` (or over the whole range, `None`) and group
/// value, sorted by bucket and group.
fn reference(records: &[UsageRecord], q: &RollupQuery, width: Option<i64>) -> Vec<RollupPoint> {
    let mut out: std::collections::BTreeMap<(Option<i64>, Option<String>), RollupStats> =
        Default::default();
    for r in records {
        let minute = r.started_at_ms - r.started_at_ms.rem_euclid(MINUTE);
        if minute < q.from_ms || minute >= q.to_ms {
            continue;
        }
        if q.org.is_some() && r.caller.org != q.org {
            continue;
        }
        let group = match q.dimension {
            Dimension::All => None,
            Dimension::Alias => Some(r.alias.clone()),
            Dimension::Key => match &r.caller.key_id {
                Some(key) => Some(key.clone()),
                None => continue,
            },
            other => unreachable!("{other:?}"),
        };
        if q.value.is_some() && group != q.value {
            continue;
        }
        let bucket = width.map(|w| minute - minute.rem_euclid(w));
        add(out.entry((bucket, group)).or_default(), &stats_of(r));
    }
    out.into_iter()
        .map(|((bucket_ms, group), stats)| RollupPoint {
            bucket_ms,
            group,
            stats,
        })
        .collect()
}

fn sorted(mut points: Vec<RollupPoint>) -> Vec<RollupPoint> {
    points.sort_by(|a, b| (a.bucket_ms, &a.group).cmp(&(b.bucket_ms, &b.group)));
    points
}

/// The ranges checked (offsets from BASE_MS): aligned days, edges inside hours and inside
/// minutes, ranges inside one hour and across one hour boundary, past the data, inverted,
/// and the ends of i64.
fn ranges() -> Vec<(i64, i64)> {
    let at = |ms: i64| BASE_MS + ms;
    vec![
        (at(0), at(3 * DAY)),
        (
            at(5 * HOUR + 17 * MINUTE + 123),
            at(2 * DAY + 7 * HOUR + 41 * MINUTE + 5),
        ),
        (
            at(5 * HOUR + 17 * MINUTE),
            at(2 * DAY + 7 * HOUR + 41 * MINUTE),
        ),
        (at(10 * HOUR + 5 * MINUTE), at(10 * HOUR + 50 * MINUTE)),
        (at(10 * HOUR + 40 * MINUTE + 1), at(11 * HOUR + 20 * MINUTE)),
        (at(10 * HOUR), at(11 * HOUR)),
        (at(10 * HOUR - 1), at(11 * HOUR + 1)),
        (at(DAY), at(2 * DAY + 30 * MINUTE)),
        (at(DAY + 1), at(2 * DAY)),
        (at(-DAY), at(4 * DAY)),
        (at(2 * DAY), at(DAY)),
        (0, i64::MAX),
        (i64::MIN, i64::MAX),
    ]
}

/// 900 records at random times over three days, written through the writer (which fills both
/// rollup tables).
async fn three_random_days(db: &TestDb) -> Vec<UsageRecord> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let records: Vec<UsageRecord> = (0..900)
        .map(|i| {
            let mut r = record(i);
            r.started_at_ms = BASE_MS + rand(3 * DAY as u64) as i64;
            r.ttft_ms = i.is_multiple_of(3).then_some(i % 17);
            r
        })
        .collect();
    write(db, records.clone()).await;
    records
}

/// By alias (all orgs), everything of one org, and one key.
fn queries(from_ms: i64, to_ms: i64) -> [RollupQuery; 3] {
    let base = RollupQuery {
        org: None,
        dimension: Dimension::Alias,
        value: None,
        from_ms,
        to_ms,
    };
    [
        base.clone(),
        RollupQuery {
            org: Some("acme".into()),
            dimension: Dimension::All,
            ..base.clone()
        },
        RollupQuery {
            dimension: Dimension::Key,
            value: Some("key_3".into()),
            ..base
        },
    ]
}

/// Series, totals and top-N read whole hours from the hourly table yet answer exactly what
/// the minute rows alone give, for every range and interval.
async fn analytics_equal_the_minute_rollups_for_any_range(db: &TestDb) {
    let records = three_random_days(db).await;
    for (from_ms, to_ms) in ranges() {
        for q in queries(from_ms, to_ms) {
            let what = format!("{q:?}");
            for interval in [Interval::Minute, Interval::Hour, Interval::Day] {
                let got = db.store.rollup_series(&q, interval).await.unwrap();
                let want = reference(&records, &q, Some(interval.width_ms()));
                assert_eq!(sorted(got), want, "{interval:?} {what}");
            }
            let got = db.store.rollup_totals(&q).await.unwrap();
            assert_eq!(sorted(got), reference(&records, &q, None), "totals {what}");
        }
        // Top-N is the totals, ordered.
        let keys = RollupQuery {
            dimension: Dimension::Key,
            ..queries(from_ms, to_ms)[0].clone()
        };
        let top = db.store.rollup_top(&keys, TopOrder::Cost, 2).await.unwrap();
        let mut want = reference(&records, &keys, None);
        want.sort_by(|a, b| (b.stats.cost_micros, &a.group).cmp(&(a.stats.cost_micros, &b.group)));
        want.truncate(2);
        assert_eq!(top, want, "top keys {from_ms}..{to_ms}");
    }
}

/// The whole hours do come from the hourly table: without an hour's minute rows, a series by
/// hour and the totals still have it, and a series by minute does not.
async fn whole_hours_come_from_the_hourly_table(db: &TestDb) {
    let records = three_random_days(db).await;
    let hour = BASE_MS + 30 * HOUR;
    db.execute_raw(&format!(
        "DELETE FROM usage_rollups WHERE bucket_ms >= {hour} AND bucket_ms < {}",
        hour + HOUR
    ))
    .await;
    let q = RollupQuery {
        from_ms: hour,
        to_ms: hour + HOUR,
        ..queries(0, 0)[0].clone()
    };
    let by_hour = db.store.rollup_series(&q, Interval::Hour).await.unwrap();
    assert!(!by_hour.is_empty());
    assert_eq!(sorted(by_hour), reference(&records, &q, Some(HOUR)));
    let totals = db.store.rollup_totals(&q).await.unwrap();
    assert_eq!(sorted(totals), reference(&records, &q, None));
    assert!(db
        .store
        .rollup_series(&q, Interval::Minute)
        .await
        .unwrap()
        .is_empty());
}

/// Budget spend from any start, read from hours and the minutes before the first of them,
/// equals the minute rows' from that start on.
async fn budget_spend_equals_the_minute_rollups(db: &TestDb) {
    let records = three_random_days(db).await;
    for since in [
        BASE_MS,
        BASE_MS + 13 * HOUR + 7 * MINUTE + 3,
        BASE_MS + DAY + 59 * MINUTE,
        BASE_MS + 2 * DAY + HOUR,
    ] {
        let q = RollupQuery {
            org: None,
            dimension: Dimension::Key,
            value: None,
            from_ms: since,
            to_ms: i64::MAX,
        };
        let want: Vec<(String, i64)> = reference(&records, &q, None)
            .into_iter()
            .map(|p| (p.group.unwrap(), p.stats.cost_micros))
            .collect();
        assert_eq!(
            db.store.spend_by_subject(Scope::Key, since).await.unwrap(),
            want,
            "since {since}"
        );
        let key_3 = want.iter().find(|(k, _)| k == "key_3").unwrap().1;
        assert_eq!(
            db.store
                .spend_since(Scope::Key, "key_3", since)
                .await
                .unwrap(),
            key_3
        );
    }
}

both!(
    analytics_equal_the_minute_rollups_for_any_range,
    whole_hours_come_from_the_hourly_table,
    budget_spend_equals_the_minute_rollups,
);
