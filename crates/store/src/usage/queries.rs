//! Reads of the usage ledger: the records of one request, totals filtered and grouped for the
//! admin API, and spend per budget subject for the limiter (which seeds its budget counters
//! from them after a restart; read from the rollups, which outlive the raw rows).
//!
//! Sums are cast to BIGINT because Postgres sums BIGINT columns as NUMERIC, which the `Any`
//! driver cannot read. Days are grouped as `started_at_ms / 86400000` (integer division in both
//! databases) and turned into UTC dates here, so no date function differs between them.
//! Composite groups (`org/team/app`) are grouped by their columns and joined here.

use super::rollup::Table;
use super::{record_from_row, select_usage};
use crate::db::Store;
use crate::error::StoreError;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use switchboard_core::limits::Scope;
use switchboard_core::usage::UsageRecord;

/// Which records to total; every field given must match (times: `from_ms <= started_at_ms <
/// to_ms`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub org: Option<String>,
    pub team: Option<String>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    pub alias: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// What to group totals by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UsageGroup {
    /// The virtual key id.
    Key,
    /// `org/team/app` (app names are unique within a team only).
    App,
    /// `org/team`.
    Team,
    Org,
    /// The alias the client asked for.
    Alias,
    /// The upstream model that served.
    Model,
    /// The UTC date the request started, `YYYY-MM-DD`.
    Day,
}

impl UsageGroup {
    /// The grouped columns, as selected and in `GROUP BY`.
    fn columns(self) -> &'static str {
        match self {
            UsageGroup::Key => "key_id",
            UsageGroup::App => "org, team, app",
            UsageGroup::Team => "org, team",
            UsageGroup::Org => "org",
            UsageGroup::Alias => "alias",
            UsageGroup::Model => "model",
            UsageGroup::Day => "started_at_ms / 86400000",
        }
    }

    /// The group's value from a row.
    fn value(self, row: &AnyRow) -> Result<Option<String>, StoreError> {
        let text = |i: usize| row.try_get::<Option<String>, _>(i);
        Ok(match self {
            UsageGroup::Key | UsageGroup::Org | UsageGroup::Alias | UsageGroup::Model => text(0)?,
            UsageGroup::App => join(&[text(0)?, text(1)?, text(2)?]),
            UsageGroup::Team => join(&[text(0)?, text(1)?]),
            UsageGroup::Day => Some(utc_date(row.try_get::<i64, _>(0)?)),
        })
    }
}

/// Totals of one group (or of everything, `group: None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    /// The group's value; `None` for ungrouped totals and for records without the value
    /// (e.g. no key for a JWT caller).
    pub group: Option<String>,
    pub requests: i64,
    /// Records whose outcome is not `ok` (errors and cancellations).
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_input_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micros: i64,
}

/// `a/b/c` when the last part is known (missing leading parts are left empty); `None` when
/// the last part is missing.
fn join(parts: &[Option<String>]) -> Option<String> {
    parts.last()?.as_ref()?;
    Some(
        parts
            .iter()
            .map(|p| p.as_deref().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/"),
    )
}

/// `YYYY-MM-DD` of a day number since 1970-01-01.
fn utc_date(days: i64) -> String {
    switchboard_types::calendar::utc_date(days.saturating_mul(switchboard_types::calendar::DAY_MS))
}

/// A WHERE clause and the values of its `$N` placeholders, built together so they match.
#[derive(Default)]
struct Where {
    sql: String,
    values: Vec<Bound>,
}

enum Bound {
    Text(String),
    Int(i64),
}

impl Where {
    fn push(&mut self, condition: &str, value: Bound) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.values.push(value);
        self.sql
            .push_str(&condition.replace('?', &format!("${}", self.values.len())));
    }

    /// Takes the conditions so far and starts a new WHERE clause whose placeholders go on
    /// numbering after them (for the parts of a `UNION ALL`).
    fn take_sql(&mut self) -> String {
        std::mem::take(&mut self.sql)
    }

    fn text(&mut self, column: &str, value: Option<&String>) {
        if let Some(value) = value {
            self.push(&format!("{column} = ?"), Bound::Text(value.clone()));
        }
    }

    fn of_filter(filter: &UsageFilter) -> Where {
        let mut w = Where::default();
        w.text("org", filter.org.as_ref());
        w.text("team", filter.team.as_ref());
        w.text("app", filter.app.as_ref());
        w.text("key_id", filter.key_id.as_ref());
        w.text("alias", filter.alias.as_ref());
        if let Some(from) = filter.from_ms {
            w.push("started_at_ms >= ?", Bound::Int(from));
        }
        if let Some(to) = filter.to_ms {
            w.push("started_at_ms < ?", Bound::Int(to));
        }
        w
    }

    async fn fetch_all(self, store: &Store, sql: String) -> Result<Vec<AnyRow>, StoreError> {
        // Only column names and placeholders are spliced in; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in self.values {
            query = match value {
                Bound::Text(text) => query.bind(text),
                Bound::Int(int) => query.bind(int),
            };
        }
        Ok(query.fetch_all(&store.pool).await?)
    }
}

/// The totals columns, after the group columns.
const TOTALS: &str = "COUNT(*) AS requests, \
     CAST(COALESCE(SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END), 0) AS BIGINT) AS errors, \
     CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
     CAST(COALESCE(SUM(cached_input_tokens), 0) AS BIGINT) AS cached_input_tokens, \
     CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
     CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens, \
     CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost_micros";

fn totals_from_row(row: &AnyRow, group: Option<String>) -> Result<UsageTotals, StoreError> {
    Ok(UsageTotals {
        group,
        requests: row.try_get("requests")?,
        errors: row.try_get("errors")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cached_input_tokens: row.try_get("cached_input_tokens")?,
        cache_write_tokens: row.try_get("cache_write_tokens")?,
        reasoning_tokens: row.try_get("reasoning_tokens")?,
        cost_micros: row.try_get("cost_micros")?,
    })
}

impl Store {
    /// Every record of one request id, in the order written (ids may be reused by clients,
    /// and a request may be recorded more than once, e.g. an embedding batch).
    pub async fn usage_by_request(&self, request_id: &str) -> Result<Vec<UsageRecord>, StoreError> {
        let rows = sqlx::query(select_usage!("WHERE request_id = $1 ORDER BY id"))
            .bind(request_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Totals of the records matching `filter`: one entry when `group` is `None` (zeros when
    /// nothing matches), else one per group value, in order of the value (`None` first).
    pub async fn usage_totals(
        &self,
        filter: &UsageFilter,
        group: Option<UsageGroup>,
    ) -> Result<Vec<UsageTotals>, StoreError> {
        let w = Where::of_filter(filter);
        let sql = match group {
            None => format!("SELECT {TOTALS} FROM usage_records{}", w.sql),
            Some(group) => {
                let cols = group.columns();
                format!(
                    "SELECT {cols}, {TOTALS} FROM usage_records{} GROUP BY {cols}",
                    w.sql
                )
            }
        };
        let rows = w.fetch_all(self, sql).await?;
        let mut totals = rows
            .iter()
            .map(|row| {
                let value = group.map(|g| g.value(row)).transpose()?.flatten();
                totals_from_row(row, value)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        totals.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(totals)
    }

    /// Micro-dollars spent since `since_ms` by one subject of `scope`, written as
    /// [`Store::spend_by_subject`] writes it (and as core's `limits::subject` does): key ->
    /// key id, app -> `org/team/app`, team -> `org/team`, org -> `org`, alias -> alias,
    /// target -> `provider/model`. Every outcome counts (a cancelled stream is billed for
    /// what it used). A subject with the wrong number of parts is [`StoreError::Invalid`].
    ///
    /// Read from the rollups, not the raw rows, so that spend outlives the call log's
    /// retention (a `total` or `month` budget is seeded right after old rows are deleted):
    /// minutes starting at or after `since_ms` count, exact for the minute-aligned starts of
    /// budget periods (whole hours are read from the hourly rollups, see [`spend_rows`]).
    pub async fn spend_since(
        &self,
        scope: Scope,
        subject: &str,
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        let parts = match scope {
            Scope::Key | Scope::Org | Scope::Alias => 1,
            Scope::Team | Scope::Target => 2,
            Scope::App => 3,
        };
        // Names of orgs, teams, apps and providers have no `/`; a model name may.
        let split: Vec<&str> = subject.splitn(parts, '/').collect();
        if split.len() != parts || split.iter().any(|p| p.is_empty()) {
            return Err(StoreError::Invalid(format!(
                "`{subject}` is not a {} subject",
                scope.as_str()
            )));
        }
        let mut w = Where::default();
        let rows = spend_rows(&mut w, scope, Some(subject), since_ms);
        let sql =
            format!("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS spent FROM {rows}");
        let rows = w.fetch_all(self, sql).await?;
        match rows.first() {
            Some(row) => Ok(row.try_get("spent")?),
            None => Ok(0),
        }
    }

    /// Micro-dollars spent since `since_ms` per subject of `scope`, in subject order: key ->
    /// key id, app -> `org/team/app`, team -> `org/team`, org -> `org` (and alias -> alias,
    /// target -> `provider/model`). Records without the subject's names are left out. The
    /// limiter seeds budget counters from this after a restart; read from the rollups like
    /// [`Store::spend_since`].
    pub async fn spend_by_subject(
        &self,
        scope: Scope,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut w = Where::default();
        let rows = spend_rows(&mut w, scope, None, since_ms);
        let sql = format!(
            "SELECT subject, CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS spent \
             FROM {rows} GROUP BY subject"
        );
        let rows = w.fetch_all(self, sql).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let subject: String = row.try_get("subject")?;
            // Rollups keep callers without an org (`/team`) or at all (org ''): no subject.
            if subject.is_empty() || subject.starts_with('/') || subject.contains("//") {
                continue;
            }
            out.push((subject, row.try_get::<i64, _>("spent")?));
        }
        out.sort();
        Ok(out)
    }
}

/// `(SELECT subject, cost_micros ... UNION ALL ...) AS spend`: the rollup rows of `scope`'s
/// dimension (of one `subject`, when given) from `since_ms` on, conditions pushed to `w`. The
/// hours starting at or after `since_ms` come from the hourly rollups, the minutes before the
/// first of them from the minute rollups: the same sums as the minute rollups alone, from
/// fewer rows (up to 60 times: an hour holds up to 60 minute rows of a subject).
fn spend_rows(w: &mut Where, scope: Scope, subject: Option<&str>, since_ms: i64) -> String {
    let (dimension, column) = rollup_subject(scope);
    let hour = Table::Hour.width_ms();
    let first_hour = match since_ms.rem_euclid(hour) {
        0 => since_ms,
        rem => since_ms.saturating_add(hour - rem),
    };
    let mut parts = Vec::with_capacity(2);
    for table in [Table::Hour, Table::Minute] {
        w.push("dimension = ?", Bound::Text(dimension.to_owned()));
        if let Some(subject) = subject {
            w.push(&format!("{column} = ?"), Bound::Text(subject.to_owned()));
        }
        match table {
            Table::Hour => w.push("bucket_ms >= ?", Bound::Int(first_hour)),
            Table::Minute => {
                w.push("bucket_ms >= ?", Bound::Int(since_ms));
                w.push("bucket_ms < ?", Bound::Int(first_hour));
            }
        }
        parts.push(format!(
            "SELECT {column} AS subject, cost_micros FROM {}{}",
            table.name(),
            w.take_sql()
        ));
    }
    format!("({}) AS spend", parts.join(" UNION ALL "))
}

/// The rollup dimension holding a scope's spend and the column its subject is in.
fn rollup_subject(scope: Scope) -> (&'static str, &'static str) {
    match scope {
        Scope::Key => ("key", "value"),
        Scope::App => ("app", "value"),
        Scope::Team => ("team", "value"),
        Scope::Org => ("all", "org"),
        Scope::Alias => ("alias", "value"),
        Scope::Target => ("target", "value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert_eq!(utc_date(19_782), "2024-02-29");
        assert_eq!(utc_date(1_704_067_200_000 / 86_400_000), "2024-01-01");
    }

    #[test]
    fn composite_groups() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(join(&[s("a"), s("b"), s("c")]), s("a/b/c"));
        assert_eq!(join(&[None, s("b")]), s("/b"));
        assert_eq!(join(&[s("a"), None]), None);
    }
}
