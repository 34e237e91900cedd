//! Analytics from the per-minute rollups (`usage_rollups`, filled by the usage writer): time
//! series per minute, hour or day and top-N lists, for one dimension (`all`, `alias`,
//! `target`, `team`, `app`, `key` or `tag`) at a time, optionally within one organisation.
//!
//! Reading the rollups instead of `usage_records` keeps these queries proportional to the
//! number of minutes and group values in the range, not to the number of requests. Rollups
//! hold one dimension per row, so a query filters or groups by one dimension only (plus the
//! organisation). Sums are cast to BIGINT for Postgres (see `usage/queries.rs`); buckets wider
//! than a minute are `(bucket_ms / width) * width`, integer division in both databases.

use super::percentile::percentile_ms;
use super::sql::{Bound, Where};
use crate::db::Store;
use crate::error::StoreError;
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

/// `CAST(COALESCE(SUM(col), 0) AS BIGINT) AS col` for every summed column.
fn sums() -> &'static str {
    static SUMS: OnceLock<String> = OnceLock::new();
    SUMS.get_or_init(|| {
        // The writer's summed columns, in its order (one list for both sides).
        let mut columns: Vec<String> = crate::usage::rollup::SUMS
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        columns.extend((0..LATENCY_BUCKETS).map(|i| format!("lat_{i:02}")));
        columns
            .iter()
            .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT) AS {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn where_of(query: &RollupQuery) -> Where {
    let mut w = Where::default();
    w.text("dimension", Some(query.dimension.as_str()));
    if query.dimension == Dimension::All {
        w.text("value", Some(""));
    } else {
        w.text("value", query.value.as_deref());
    }
    w.text("org", query.org.as_deref());
    w.push(
        "bucket_ms >= ? AND bucket_ms < ?",
        vec![Bound::Int(query.from_ms), Bound::Int(query.to_ms)],
    );
    w
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
        let w = where_of(query);
        let bucket = format!("(bucket_ms / {width}) * {width}");
        let sql = format!(
            "SELECT {bucket} AS t, value, {} FROM usage_rollups{} GROUP BY {bucket}, value \
             ORDER BY t, value",
            sums(),
            w.sql
        );
        let rows = w.fetch_all(self, sql).await?;
        rows.iter()
            .map(|row| point_from_row(row, query.dimension, true))
            .collect()
    }

    /// Sums per group value over the whole range, in order of the value.
    pub async fn rollup_totals(&self, query: &RollupQuery) -> Result<Vec<RollupPoint>, StoreError> {
        let w = where_of(query);
        let sql = format!(
            "SELECT value, {} FROM usage_rollups{} GROUP BY value ORDER BY value",
            sums(),
            w.sql
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
