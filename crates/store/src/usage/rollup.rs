//! Analytics rollups per minute (`usage_rollups`) and per hour (`usage_rollups_hourly`), added
//! to in the transaction that inserts a batch of usage records, so rollups and raw rows never
//! disagree. The hourly table lets analytics over days read fewer rows (up to 60 times fewer;
//! 19 times on the 1M-call measurement of docs/observability.md).
//!
//! A batch is first summed in memory per (dimension, value, org, minute): one upsert row per
//! group, because one `INSERT ... ON CONFLICT DO UPDATE` may touch a row only once (Postgres
//! refuses otherwise) and because a batch of a busy minute folds into a few dozen rows. The
//! hourly groups are the minute groups summed again by hour (no second pass over the records),
//! so a batch costs at most as many hourly rows as minute rows. Rows go out sorted by the
//! primary key, minute table first, so two writers on one Postgres database lock shared rows
//! in the same order and cannot deadlock each other.
//!
//! Dimensions (docs/observability.md): `all` (value ''), `alias` (the alias asked for),
//! `target` (`provider/model`), `team` (`org/team`), `app` (`org/team/app`), `key` (key id)
//! and `tag` (`k=v`, one row per distinct tag). A dimension whose value is missing (no key, no
//! upstream) is skipped. Composite values leave missing leading parts empty (`/team`), like
//! the usage totals do.

use super::{count, encode_error, Bind, LedgerDb, Placeholders};
use crate::error::StoreError;
use crate::Backend;
use sqlx::error::BoxDynError;
use sqlx::{Arguments, Transaction};
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use switchboard_core::usage::{bucket_index, Outcome, UsageRecord, LATENCY_BUCKETS_MS};

/// A rollup bucket's width: one minute.
pub const BUCKET_MS: i64 = 60_000;

/// An hourly rollup bucket's width.
pub const HOUR_MS: i64 = 3_600_000;

/// One of the two rollup tables: same columns and key, different bucket width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    Minute,
    Hour,
}

impl Table {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Table::Minute => "usage_rollups",
            Table::Hour => "usage_rollups_hourly",
        }
    }

    pub(crate) const fn width_ms(self) -> i64 {
        match self {
            Table::Minute => BUCKET_MS,
            Table::Hour => HOUR_MS,
        }
    }

    /// The start of the bucket holding `ms`.
    pub(crate) const fn bucket(self, ms: i64) -> i64 {
        ms.div_euclid(self.width_ms()) * self.width_ms()
    }
}

/// Latency histogram buckets: the bounded ones plus the open last one.
pub(crate) const LAT_BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// The summed columns after the key columns, in bind order (then `lat_00..lat_29`).
pub(crate) const SUMS: [&str; 12] = [
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

/// Key columns + sums + latency buckets.
const COLUMNS: usize = 4 + SUMS.len() + LAT_BUCKETS;

// Groups per statement: at most 256 (`super::longest_statement`); 256 × 46 parameters stays far
// below both databases' limits.

/// One group: sorted like the primary key `(dimension, value, org, bucket_ms)`.
type Key = (&'static str, String, String, i64);

/// The sums of one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    pub requests: i64,
    pub errors: i64,
    pub cancelled: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms_sum: i64,
    pub ttft_ms_sum: i64,
    pub ttft_count: i64,
    pub lat: [i64; LAT_BUCKETS],
}

impl Sums {
    fn of_record(r: &UsageRecord) -> Sums {
        let mut lat = [0; LAT_BUCKETS];
        lat[bucket_index(r.latency_ms).min(LAT_BUCKETS - 1)] = 1;
        Sums {
            requests: 1,
            errors: i64::from(r.outcome == Outcome::Error),
            cancelled: i64::from(r.outcome == Outcome::Cancelled),
            input_tokens: count(r.usage.input_tokens),
            output_tokens: count(r.usage.output_tokens),
            cached_input_tokens: count(r.usage.cached_input_tokens),
            cache_write_tokens: count(r.usage.cache_write_tokens),
            reasoning_tokens: count(r.usage.reasoning_tokens),
            cost_micros: r.cost.0,
            latency_ms_sum: count(r.latency_ms),
            ttft_ms_sum: r.ttft_ms.map_or(0, count),
            ttft_count: i64::from(r.ttft_ms.is_some()),
            lat,
        }
    }

    fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.cancelled += o.cancelled;
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(o.cached_input_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.cost_micros = self.cost_micros.saturating_add(o.cost_micros);
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(o.latency_ms_sum);
        self.ttft_ms_sum = self.ttft_ms_sum.saturating_add(o.ttft_ms_sum);
        self.ttft_count += o.ttft_count;
        for (mine, theirs) in self.lat.iter_mut().zip(o.lat.iter()) {
            *mine += theirs;
        }
    }
}

/// `a/b/c` with missing leading parts empty; `None` when the last part is missing.
fn path(parts: &[Option<&str>]) -> Option<String> {
    parts.last().copied().flatten()?;
    Some(
        parts
            .iter()
            .map(|p| p.unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/"),
    )
}

/// The (dimension, value) pairs one record adds to.
fn dimensions(r: &UsageRecord) -> Vec<(&'static str, String)> {
    let c = &r.caller;
    let mut out = Vec::with_capacity(6 + r.tags.len());
    out.push(("all", String::new()));
    out.push(("alias", r.alias.clone()));
    if let (Some(provider), Some(model)) = (&r.provider, &r.model) {
        out.push(("target", format!("{provider}/{model}")));
    }
    let (org, team, app) = (c.org.as_deref(), c.team.as_deref(), c.app.as_deref());
    if let Some(team) = path(&[org, team]) {
        out.push(("team", team));
    }
    if let Some(app) = path(&[org, team, app]) {
        out.push(("app", app));
    }
    if let Some(key) = &c.key_id {
        out.push(("key", key.clone()));
    }
    for (i, (k, v)) in r.tags.iter().enumerate() {
        // A tag given twice counts the request once.
        if r.tags[..i].iter().any(|(k2, v2)| k2 == k && v2 == v) {
            continue;
        }
        out.push(("tag", format!("{k}={v}")));
    }
    out
}

/// What decides the groups a record adds to: records of one batch that agree on it (most of
/// a busy minute's) are summed once and expanded into their groups once, instead of building
/// each record's dimension strings and looking each up in the map.
#[derive(PartialEq, Eq, Hash)]
struct Profile<'a> {
    bucket: i64,
    org: Option<&'a str>,
    team: Option<&'a str>,
    app: Option<&'a str>,
    key_id: Option<&'a str>,
    alias: &'a str,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    tags: &'a [(String, String)],
}

impl<'a> Profile<'a> {
    fn of(r: &'a UsageRecord) -> Profile<'a> {
        let c = &r.caller;
        Profile {
            bucket: bucket_of(r),
            org: c.org.as_deref(),
            team: c.team.as_deref(),
            app: c.app.as_deref(),
            key_id: c.key_id.as_deref(),
            alias: &r.alias,
            provider: r.provider.as_deref(),
            model: r.model.as_deref(),
            tags: &r.tags,
        }
    }
}

fn bucket_of(r: &UsageRecord) -> i64 {
    Table::Minute.bucket(r.started_at_ms)
}

/// The batch's groups, in primary-key order.
pub(crate) fn aggregate(records: &[UsageRecord]) -> BTreeMap<Key, Sums> {
    // Each profile keeps its first record: `dimensions` reads only what the profile holds.
    // Hashed with foldhash, not SipHash: a profile is nine fields, most of them strings, hashed
    // for every record of every batch (SipHash was ~0.7-1.2k instructions a record).
    let mut profiles: HashMap<Profile<'_>, (&UsageRecord, Sums), foldhash::fast::RandomState> =
        HashMap::default();
    for r in records {
        let sums = Sums::of_record(r);
        match profiles.entry(Profile::of(r)) {
            Entry::Occupied(mut seen) => seen.get_mut().1.add(&sums),
            Entry::Vacant(new) => {
                new.insert((r, sums));
            }
        }
    }
    let mut groups: BTreeMap<Key, Sums> = BTreeMap::new();
    for (r, sums) in profiles.into_values() {
        let bucket = bucket_of(r);
        let org = r.caller.org.clone().unwrap_or_default();
        for (dimension, value) in dimensions(r) {
            groups
                .entry((dimension, value, org.clone(), bucket))
                .or_default()
                .add(&sums);
        }
    }
    groups
}

/// Minute groups summed into `table`'s buckets (the hourly groups of a batch), in
/// primary-key order.
pub(crate) fn regroup(minutes: &BTreeMap<Key, Sums>, table: Table) -> BTreeMap<Key, Sums> {
    let mut groups: BTreeMap<Key, Sums> = BTreeMap::new();
    for ((dimension, value, org, bucket), sums) in minutes {
        groups
            .entry((dimension, value.clone(), org.clone(), table.bucket(*bucket)))
            .or_default()
            .add(sums);
    }
    groups
}

/// `INSERT INTO <table> (...) VALUES ... ON CONFLICT (...) DO UPDATE SET c = old + new`.
fn upsert_sql(table: Table, rows: usize, backend: Backend) -> String {
    let mut columns = vec![
        "bucket_ms".to_owned(),
        "org".to_owned(),
        "dimension".to_owned(),
        "value".to_owned(),
    ];
    let mut summed: Vec<String> = SUMS.iter().map(|s| (*s).to_owned()).collect();
    summed.extend((0..LAT_BUCKETS).map(|i| format!("lat_{i:02}")));
    columns.extend(summed.iter().cloned());
    let name = table.name();
    let mut sql = format!("INSERT INTO {name} ({}) VALUES ", columns.join(", "));
    Placeholders::new(backend).rows(&mut sql, rows, COLUMNS);
    sql.push_str(" ON CONFLICT (dimension, value, org, bucket_ms) DO UPDATE SET ");
    let sets: Vec<String> = summed
        .iter()
        .map(|c| format!("{c} = {name}.{c} + excluded.{c}"))
        .collect();
    sql.push_str(&sets.join(", "));
    sql
}

/// The upsert of `rows` groups: built once per SQLite chunk size, as `super::insert_statement`
/// does (building it for every batch cost 1.1-1.4k instructions a request; callgrind).
pub(super) fn upsert_statement(table: Table, rows: usize, backend: Backend) -> Cow<'static, str> {
    const CHUNKS: usize = super::SQLITE_CHUNKS.len();
    static SQLITE: [[OnceLock<String>; CHUNKS]; 2] =
        [const { [const { OnceLock::new() }; CHUNKS] }; 2];
    match (
        backend,
        super::SQLITE_CHUNKS.iter().position(|&r| r == rows),
    ) {
        (Backend::Sqlite, Some(i)) => SQLITE[table as usize][i]
            .get_or_init(|| upsert_sql(table, rows, Backend::Sqlite))
            .as_str()
            .into(),
        _ => upsert_sql(table, rows, backend).into(),
    }
}

/// Adds one group's columns to `args`, in `upsert_sql`'s column order.
pub(super) fn bind_group<A: Bind>(
    args: &mut A,
    dimension: &'static str,
    value: &str,
    org: &str,
    bucket: i64,
    s: &Sums,
) -> Result<(), BoxDynError> {
    args.int(bucket)?;
    args.text(org)?;
    args.text(dimension)?;
    args.text(value)?;
    for n in [
        s.requests,
        s.errors,
        s.cancelled,
        s.input_tokens,
        s.output_tokens,
        s.cached_input_tokens,
        s.cache_write_tokens,
        s.reasoning_tokens,
        s.cost_micros,
        s.latency_ms_sum,
        s.ttft_ms_sum,
        s.ttft_count,
    ] {
        args.int(n)?;
    }
    for n in s.lat {
        args.int(n)?;
    }
    Ok(())
}

/// Adds `records` to both rollup tables inside the caller's transaction.
pub(crate) async fn upsert_rollups<DB: LedgerDb>(
    tx: &mut Transaction<'static, DB>,
    records: &[UsageRecord],
    longest: usize,
    backend: Backend,
) -> Result<(), StoreError> {
    for (table, groups) in by_table(records) {
        upsert_groups(tx, table, &groups, longest, backend).await?;
    }
    Ok(())
}

/// The groups `records` add to each rollup table, in the order every writer upserts them:
/// minutes first, then hours, so that all writers lock rows in one order.
pub(crate) fn by_table(records: &[UsageRecord]) -> [(Table, BTreeMap<Key, Sums>); 2] {
    let minutes = aggregate(records);
    let hours = regroup(&minutes, Table::Hour);
    [(Table::Minute, minutes), (Table::Hour, hours)]
}

/// Upserts `groups` (in primary-key order) into `table`, in chunks of one statement each.
async fn upsert_groups<DB: LedgerDb>(
    tx: &mut Transaction<'static, DB>,
    table: Table,
    groups: &BTreeMap<Key, Sums>,
    longest: usize,
    backend: Backend,
) -> Result<(), StoreError> {
    let groups: Vec<(&Key, &Sums)> = groups.iter().collect();
    // Few statement texts on SQLite, so each is prepared once (see `insert_records`).
    for chunk in super::statement_chunks(&groups, longest, backend) {
        // Collected directly, reserved once (see `super::insert_records`).
        let mut args = DB::Arguments::default();
        args.reserve(chunk.len() * COLUMNS, 0);
        for ((dimension, value, org, bucket), s) in chunk {
            bind_group(&mut args, dimension, value, org, *bucket, s).map_err(encode_error)?;
        }
        let sql = upsert_statement(table, chunk.len(), backend);
        DB::execute(&mut **tx, sql, args).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::usage::{CallKind, Caller, UsageSource};
    use switchboard_types::{MicroUsd, Usage};

    fn rec(minute: i64, org: Option<&str>, key: Option<&str>, latency_ms: u64) -> UsageRecord {
        UsageRecord {
            request_id: "r".to_owned(),
            started_at_ms: minute * BUCKET_MS + 59_999,
            caller: Caller {
                org: org.map(str::to_owned),
                team: Some("web".to_owned()),
                app: None,
                key_id: key.map(str::to_owned),
                user: None,
            },
            kind: CallKind::Chat,
            alias: "fast".to_owned(),
            served_alias: None,
            provider: Some("openai".to_owned()),
            model: Some("org/model".to_owned()),
            stream: true,
            usage: Usage {
                input_tokens: 10,
                ..Usage::default()
            },
            usage_source: UsageSource::Reported,
            cost: MicroUsd(5),
            priced: true,
            latency_ms,
            ttft_ms: Some(3),
            attempts: 1,
            outcome: Outcome::Cancelled,
            status: 499,
            error_code: None,
            tags: vec![
                ("env".to_owned(), "prod".to_owned()),
                ("env".to_owned(), "prod".to_owned()),
            ],
            details: Default::default(),
        }
    }

    #[test]
    fn groups_by_minute_org_and_dimension() {
        let records = [
            rec(1, Some("acme"), Some("k1"), 1),
            rec(1, Some("acme"), None, 200_000),
            rec(2, None, Some("k1"), 7),
        ];
        let groups = aggregate(&records);
        let all = &groups[&("all", String::new(), "acme".to_owned(), BUCKET_MS)];
        assert_eq!(all.requests, 2);
        assert_eq!(all.cancelled, 2);
        assert_eq!(all.input_tokens, 20);
        assert_eq!(all.ttft_count, 2);
        assert_eq!(all.lat[0], 1);
        assert_eq!(all.lat[LAT_BUCKETS - 1], 1);
        assert_eq!(
            groups[&("key", "k1".to_owned(), "acme".to_owned(), BUCKET_MS)].requests,
            1
        );
        // No org: the team is `/web` under org ''; no app: no app row.
        assert!(groups.contains_key(&("team", "/web".to_owned(), String::new(), 2 * BUCKET_MS)));
        assert!(!groups.keys().any(|k| k.0 == "app"));
        // The duplicate tag counts once per request.
        let tag = &groups[&("tag", "env=prod".to_owned(), "acme".to_owned(), BUCKET_MS)];
        assert_eq!(tag.requests, 2);
        assert!(groups.contains_key(&(
            "target",
            "openai/org/model".to_owned(),
            String::new(),
            2 * BUCKET_MS
        )));
    }

    #[test]
    fn records_of_one_profile_add_up() {
        // Same caller, alias, target, tags and minute: one profile, summed before expanding.
        let records = [
            rec(3, Some("acme"), Some("k1"), 1),
            rec(3, Some("acme"), Some("k1"), 200_000),
            rec(3, Some("acme"), Some("k1"), 7),
        ];
        let groups = aggregate(&records);
        assert_eq!(groups.len(), 6, "all, alias, target, team, key, tag");
        for sums in groups.values() {
            assert_eq!(sums.requests, 3);
            assert_eq!(sums.latency_ms_sum, 200_008);
            assert_eq!(sums.lat.iter().sum::<i64>(), 3);
        }
    }

    #[test]
    fn hours_sum_their_minutes() {
        // Minutes 59 and 60 straddle an hour; 61 shares the second hour with 60.
        let records = [
            rec(59, Some("acme"), Some("k1"), 1),
            rec(60, Some("acme"), Some("k1"), 1),
            rec(61, Some("acme"), Some("k1"), 1),
        ];
        let minutes = aggregate(&records);
        let hours = regroup(&minutes, Table::Hour);
        assert_eq!(minutes.len(), 3 * 6);
        assert_eq!(hours.len(), 2 * 6);
        let all = |bucket| &hours[&("all", String::new(), "acme".to_owned(), bucket)];
        assert_eq!(all(0).requests, 1);
        assert_eq!(all(HOUR_MS).requests, 2);
        assert_eq!(all(HOUR_MS).input_tokens, 20);
        // Every column of every minute group ends up in its hour.
        let total = |groups: &BTreeMap<Key, Sums>| {
            groups.values().fold(Sums::default(), |mut acc, s| {
                acc.add(s);
                acc
            })
        };
        assert_eq!(total(&minutes), total(&hours));
        assert_eq!(Table::Hour.bucket(-1), -HOUR_MS);
    }

    #[test]
    fn upsert_adds_to_existing_rows() {
        let sql = upsert_sql(Table::Minute, 2, Backend::Sqlite);
        assert_eq!(sql.matches('?').count(), 2 * COLUMNS);
        assert!(sql.contains("lat_29 = usage_rollups.lat_29 + excluded.lat_29"));
        let sql = upsert_sql(Table::Hour, 2, Backend::Sqlite);
        assert!(sql.starts_with("INSERT INTO usage_rollups_hourly ("));
        assert!(sql.contains("lat_29 = usage_rollups_hourly.lat_29 + excluded.lat_29"));
        let sql = upsert_sql(Table::Minute, 2, Backend::Postgres);
        assert!(sql.contains(&format!("${}", 2 * COLUMNS)));
        assert!(!sql.contains(&format!("${}", 2 * COLUMNS + 1)));
    }
}
