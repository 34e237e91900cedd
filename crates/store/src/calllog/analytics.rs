//! Analytics from the rollups (`usage_rollups` per minute, `usage_rollups_hourly` per hour,
//! both filled by the usage writer): time series per minute, hour or day and top-N lists, for
//! one dimension (`all`, `alias`, `target`, `team`, `app`, `key` or `tag`) at a time,
//! optionally within one organisation.
//!
//! Reading the rollups instead of `usage_records` keeps these queries proportional to the
//! number of buckets and group values in the range, not to the number of requests. The whole
//! hours of a range are read from the hourly table (up to 60 times fewer rows than their
//! minutes) and only the partial hours at its edges from the minute table, each part its own
//! index range, joined by `UNION ALL` before the same `GROUP BY`: the answer is exactly the minute
//! table's, for any range. A series by minute reads minutes only.
//!
//! Rollups hold one dimension per row, so a query filters or groups by one dimension only
//! (plus the organisation). Sums are cast to BIGINT for Postgres (see `usage/queries.rs`);
//! buckets wider than a minute are `(bucket_ms / width) * width`, integer division in both
//! databases (hours and days are whole hours, so an hourly row falls in the bucket of each of
//! its minutes).

use super::percentile::percentile_ms;
use super::sql::{Bound, Where};
use crate::db::Store;
use crate::error::StoreError;
use crate::usage::rollup::Table;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::sync::OnceLock;

/// Latency buckets per rollup row (`lat_00`..`lat_29`), as the writer fills them.
pub const LATENCY_BUCKETS: usize = crate::usage::rollup::LAT_BUCKETS;

/// What a rollup row is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Everything (value `''`).
    All,
    Alias,
    /// `provider/model`.
    Target,
    /// `org/team`.
    Team,
    /// `org/team/app`.
    App,
    /// The key id.
    Key,
    /// `k=v`, one row per tag.
    Tag,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::All => "all",
            Dimension::Alias => "alias",
            Dimension::Target => "target",
            Dimension::Team => "team",
            Dimension::App => "app",
            Dimension::Key => "key",
            Dimension::Tag => "tag",
        }
    }

    pub fn parse(text: &str) -> Option<Dimension> {
        Some(match text {
            "all" | "none" => Dimension::All,
            "alias" => Dimension::Alias,
            "target" => Dimension::Target,
            "team" => Dimension::Team,
            "app" => Dimension::App,
            "key" => Dimension::Key,
            "tag" => Dimension::Tag,
            _ => return None,
        })
    }
}

/// The width of a time-series bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Minute,
    Hour,
    Day,
}

impl Interval {
    pub fn width_ms(self) -> i64 {
        match self {
            Interval::Minute => 60_000,
            Interval::Hour => 3_600_000,
            Interval::Day => 86_400_000,
        }
    }
}

/// What a top-N list is ordered by (largest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopOrder {
    Requests,
    Cost,
    /// Input plus output tokens.
    Tokens,
    Errors,
    /// The p95 latency.
    Latency,
}

/// Which rollups to read: one dimension (every value, or the one given), within `org` when
/// given, over `from_ms <= bucket_ms < to_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupQuery {
    pub org: Option<String>,
    pub dimension: Dimension,
    pub value: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Sums over some rollup rows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RollupStats {
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
    /// Requests per latency bucket.
    pub latency_counts: Vec<i64>,
}

impl RollupStats {
    /// Errors per request (0 when there were none).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// A latency percentile (`p` in 0..=1), interpolated in its bucket.
    pub fn latency_percentile(&self, p: f64) -> Option<f64> {
        percentile_ms(&self.latency_counts, p)
    }

    pub fn avg_latency_ms(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.latency_ms_sum as f64 / self.requests as f64)
    }

    pub fn avg_ttft_ms(&self) -> Option<f64> {
        (self.ttft_count > 0).then(|| self.ttft_ms_sum as f64 / self.ttft_count as f64)
    }

    pub fn total_tokens(&self) -> i64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    fn from_row(row: &AnyRow) -> Result<RollupStats, StoreError> {
        let mut latency_counts = Vec::with_capacity(LATENCY_BUCKETS);
        for i in 0..LATENCY_BUCKETS {
            latency_counts.push(row.try_get::<i64, _>(format!("lat_{i:02}").as_str())?);
        }
        Ok(RollupStats {
            requests: row.try_get("requests")?,
            errors: row.try_get("errors")?,
            cancelled: row.try_get("cancelled")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cached_input_tokens: row.try_get("cached_input_tokens")?,
            cache_write_tokens: row.try_get("cache_write_tokens")?,
            reasoning_tokens: row.try_get("reasoning_tokens")?,
            cost_micros: row.try_get("cost_micros")?,
            latency_ms_sum: row.try_get("latency_ms_sum")?,
            ttft_ms_sum: row.try_get("ttft_ms_sum")?,
            ttft_count: row.try_get("ttft_count")?,
            latency_counts,
        })
    }
}

/// One point of a series (or one group of a top-N list, `bucket_ms: None`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RollupPoint {
    /// The bucket's start (Unix ms), for series.
    pub bucket_ms: Option<i64>,
    /// The group's value; `None` for dimension `all`.
    pub group: Option<String>,
    pub stats: RollupStats,
}

/// The summed columns of a rollup row, in the writer's order (one list for both sides).
fn summed_columns() -> &'static [String] {
    static COLUMNS: OnceLock<Vec<String>> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        let mut columns: Vec<String> = crate::usage::rollup::SUMS
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        columns.extend((0..LATENCY_BUCKETS).map(|i| format!("lat_{i:02}")));
        columns
    })
}

/// `CAST(COALESCE(SUM(col), 0) AS BIGINT) AS col` for every summed column.
fn sums() -> &'static str {
    static SUMS: OnceLock<String> = OnceLock::new();
    SUMS.get_or_init(|| {
        summed_columns()
            .iter()
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// `SELECT bucket_ms, value, <summed columns> FROM ` for one part of a `UNION ALL`.
fn part_select() -> &'static str {
    static SELECT: OnceLock<String> = OnceLock::new();
    SELECT.get_or_init(|| {
        format!(
            "SELECT bucket_ms, value, {} FROM ",
            summed_columns().join(", ")
        )
    })
}

/// Which rollup rows answer `from_ms <= bucket_ms < to_ms`: the whole hours of the range from
/// the hourly table, the minutes before the first and after the last whole hour from the
/// minute table. Every minute of the range is in exactly one part.
#[derive(Debug, PartialEq, Eq)]
struct Split {
    /// Hourly buckets `[from, to)`, when the range holds at least one whole hour.
    hours: Option<(i64, i64)>,
    /// Minute buckets `[from, to)`, non-empty ranges; never empty when `hours` is `None`.
    minutes: Vec<(i64, i64)>,
}

impl Split {
    /// `hourly: false` reads minutes only (a series by minute cannot use hourly rows).
    fn of(from_ms: i64, to_ms: i64, hourly: bool) -> Split {
        let hour = Table::Hour.width_ms();
        // The first hour starting at or after `from_ms`, the last one ending at or before
        // `to_ms`; saturating at the ends of i64 (then no hour fits, and minutes are read).
        let first = match from_ms.rem_euclid(hour) {
            0 => from_ms,
            rem => from_ms.saturating_add(hour - rem),
        };
        let last = to_ms.saturating_sub(to_ms.rem_euclid(hour));
        if !hourly || first >= last {
            return Split {
                hours: None,
                minutes: vec![(from_ms, to_ms)],
            };
        }
        Split {
            hours: Some((first, last)),
            minutes: [(from_ms, first), (last, to_ms)]
                .into_iter()
                .filter(|(from, to)| from < to)
                .collect(),
        }
    }
}

/// The conditions both tables' parts share: the dimension, its value, the organisation.
fn push_group(w: &mut Where, query: &RollupQuery) {
    w.text("dimension", Some(query.dimension.as_str()));
    if query.dimension == Dimension::All {
        w.text("value", Some(""));
    } else {
        w.text("value", query.value.as_deref());
    }
    w.text("org", query.org.as_deref());
}

/// What the analytics SELECT reads `FROM`, with its bound values: the minute table alone
/// (with its WHERE) when one part answers, else a `UNION ALL` of every part. Each part is one
/// plain range of `(dimension, bucket_ms, org)`, which both planners scan by index; `OR`ed
/// ranges in one part are a shape they may answer by reading every bucket of the dimension.
fn source(query: &RollupQuery, hourly: bool) -> (String, Where) {
    let split = Split::of(query.from_ms, query.to_ms, hourly);
    let mut w = Where::default();
    let mut parts: Vec<(Table, String)> = Vec::new();
    let hours = split.hours.map(|range| (Table::Hour, range));
    let minutes = split.minutes.iter().map(|range| (Table::Minute, *range));
    for (table, (from, to)) in hours.into_iter().chain(minutes) {
        push_group(&mut w, query);
        w.push(
            "bucket_ms >= ? AND bucket_ms < ?",
            vec![Bound::Int(from), Bound::Int(to)],
        );
        parts.push((table, w.take_sql()));
    }
    let sql = match parts.as_slice() {
        [(table, conditions)] => format!("{}{conditions}", table.name()),
        _ => {
            let selects: Vec<String> = parts
                .iter()
                .map(|(table, conditions)| format!("{}{}{conditions}", part_select(), table.name()))
                .collect();
            format!("({}) AS parts", selects.join(" UNION ALL "))
        }
    };
    (sql, w)
}

fn point_from_row(
    row: &AnyRow,
    dimension: Dimension,
    series: bool,
) -> Result<RollupPoint, StoreError> {
    Ok(RollupPoint {
        bucket_ms: if series {
            Some(row.try_get("t")?)
        } else {
            None
        },
        group: if dimension == Dimension::All {
            None
        } else {
            Some(row.try_get("value")?)
        },
        stats: RollupStats::from_row(row)?,
    })
}

impl Store {
    /// Sums per `interval` bucket and group value, in order of bucket then value. Buckets
    /// without requests are left out.
    pub async fn rollup_series(
        &self,
        query: &RollupQuery,
        interval: Interval,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        let width = interval.width_ms();
        // Hours and days are made of whole hours; minutes are not.
        let hourly = width % Table::Hour.width_ms() == 0;
        let (from, w) = source(query, hourly);
        let bucket = format!("(bucket_ms / {width}) * {width}");
        let sql = format!(
            "SELECT {bucket} AS t, value, {} FROM {from} GROUP BY {bucket}, value \
             ORDER BY t, value",
            sums(),
        );
        let rows = w.fetch_all(self, sql).await?;
        rows.iter()
            .map(|row| point_from_row(row, query.dimension, true))
            .collect()
    }

    /// Sums per group value over the whole range, in order of the value.
    pub async fn rollup_totals(&self, query: &RollupQuery) -> Result<Vec<RollupPoint>, StoreError> {
        let (from, w) = source(query, true);
        let sql = format!(
            "SELECT value, {} FROM {from} GROUP BY value ORDER BY value",
            sums(),
        );
        let rows = w.fetch_all(self, sql).await?;
        rows.iter()
            .map(|row| point_from_row(row, query.dimension, false))
            .collect()
    }

    /// The `n` group values with the most of `order` over the range (ties by value).
    pub async fn rollup_top(
        &self,
        query: &RollupQuery,
        order: TopOrder,
        n: usize,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        let mut points = self.rollup_totals(query).await?;
        let key = |p: &RollupPoint| -> f64 {
            let s = &p.stats;
            match order {
                TopOrder::Requests => s.requests as f64,
                TopOrder::Cost => s.cost_micros as f64,
                TopOrder::Tokens => s.total_tokens() as f64,
                TopOrder::Errors => s.errors as f64,
                TopOrder::Latency => s.latency_percentile(0.95).unwrap_or(0.0),
            }
        };
        points.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then_with(|| a.group.cmp(&b.group))
        });
        points.truncate(n);
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const M: i64 = 60_000;

    fn split(from: i64, to: i64) -> Split {
        Split::of(from, to, true)
    }

    #[test]
    fn whole_hours_come_from_the_hourly_table() {
        // Aligned: hours only.
        assert_eq!(
            split(2 * H, 5 * H),
            Split {
                hours: Some((2 * H, 5 * H)),
                minutes: vec![]
            }
        );
        // Ragged edges: the partial hours from minutes, on both sides.
        assert_eq!(
            split(2 * H + 7 * M, 5 * H + 3 * M + 1),
            Split {
                hours: Some((3 * H, 5 * H)),
                minutes: vec![(2 * H + 7 * M, 3 * H), (5 * H, 5 * H + 3 * M + 1)]
            }
        );
        // Exactly one whole hour inside.
        assert_eq!(split(H - 1, 2 * H + 1).hours, Some((H, 2 * H)));
    }

    #[test]
    fn ranges_without_a_whole_hour_read_minutes() {
        let minutes_only = |from, to| Split {
            hours: None,
            minutes: vec![(from, to)],
        };
        assert_eq!(split(H + M, 2 * H - M), minutes_only(H + M, 2 * H - M));
        // Two partial hours, no whole one.
        assert_eq!(split(H + 1, 3 * H - 1), minutes_only(H + 1, 3 * H - 1));
        assert_eq!(split(H - M, 2 * H - M), minutes_only(H - M, 2 * H - M));
        assert_eq!(split(5 * H, 5 * H), minutes_only(5 * H, 5 * H));
        assert_eq!(split(6 * H, 2 * H), minutes_only(6 * H, 2 * H));
        // A series by minute never reads hours.
        assert_eq!(Split::of(0, 10 * H, false), minutes_only(0, 10 * H));
        // The ends of i64 (the bench reads `0..i64::MAX`).
        assert_eq!(split(0, i64::MAX).hours, Some((0, i64::MAX - i64::MAX % H)));
        assert_eq!(split(i64::MIN, i64::MIN + 1).hours, None);
        assert_eq!(split(i64::MAX - 1, i64::MAX).hours, None);
    }

    #[test]
    fn parts_number_their_placeholders_on() {
        let query = RollupQuery {
            org: Some("acme".into()),
            dimension: Dimension::Key,
            value: None,
            from_ms: H + M,
            to_ms: 4 * H + M,
        };
        let (sql, _) = source(&query, true);
        assert_eq!(sql.matches("UNION ALL").count(), 2, "{sql}");
        assert!(sql.contains("FROM usage_rollups_hourly WHERE dimension = $1 AND org = $2 AND bucket_ms >= $3 AND bucket_ms < $4"), "{sql}");
        assert!(sql.ends_with("FROM usage_rollups WHERE dimension = $9 AND org = $10 AND bucket_ms >= $11 AND bucket_ms < $12) AS parts"), "{sql}");
        let (sql, _) = source(&query, false);
        assert_eq!(
            sql,
            "usage_rollups WHERE dimension = $1 AND org = $2 AND bucket_ms >= $3 AND bucket_ms < $4"
        );
    }
}
