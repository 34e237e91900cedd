//! Reads of the call log: the `usage_records` table seen as one log row per request, with the
//! log columns of migration 0003 and the optional bodies of `call_bodies`.
//!
//! - this file: filters, newest-first keyset paging with an opaque cursor over
//!   `(started_at_ms, id)`, one request's calls with their bodies;
//! - `export.rs`: every matching row as a stream, page by page, in bounded memory;
//! - `analytics.rs`, `percentile.rs`: time series and top-N from `usage_rollups`;
//! - `sql.rs`: the WHERE builder shared by these.

mod analytics;
mod export;
mod percentile;
mod sql;

pub use analytics::{
    Dimension, Interval, RollupPoint, RollupQuery, RollupStats, TopOrder, LATENCY_BUCKETS,
};
pub use percentile::percentile_ms;

use crate::db::Store;
use crate::error::StoreError;
use crate::rows::from_json;
use crate::usage::record_from_row;
use base64::Engine;
use serde::Serialize;
use sql::{escape_like, Bound, Where};
use sqlx::any::AnyRow;
use sqlx::Row;
use switchboard_core::usage::{CallDetails, UsageRecord};

/// The most rows one page may hold.
pub const MAX_PAGE: usize = 1_000;

/// Which calls to list; every field given must match (times: `from_ms <= started_at_ms <
/// to_ms`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub org: Option<String>,
    pub team: Option<String>,
    pub app: Option<String>,
    pub key_id: Option<String>,
    pub alias: Option<String>,
    /// `provider/model`, or just `provider`.
    pub target: Option<String>,
    /// `ok`, `error` or `cancelled`.
    pub outcome: Option<String>,
    /// The HTTP status the client got.
    pub status: Option<i64>,
    pub error_code: Option<String>,
    /// A tag `(key, value)` the request carried.
    pub tag: Option<(String, String)>,
    pub request_id: Option<String>,
}

/// Where a page starts: strictly older than this `(started_at_ms, id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCursor {
    pub started_at_ms: i64,
    pub id: i64,
}

impl LogCursor {
    /// The opaque text form handed to clients.
    pub fn encode(self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}:{}", self.started_at_ms, self.id))
    }

    /// The cursor of [`LogCursor::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<LogCursor> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (started, id) = text.split_once(':')?;
        Some(LogCursor {
            started_at_ms: started.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// Stored request and response bodies of a call (redacted before they were queued).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallBodies {
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// Whether a body was cut at the configured size.
    pub truncated: bool,
}

/// One row of the call log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallLogEntry {
    /// The row's id (ids order rows written at the same millisecond).
    pub id: i64,
    pub record: UsageRecord,
    /// Filled by [`Store::calls_by_request`] only.
    pub bodies: Option<CallBodies>,
}

/// One page of the call log, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct LogPage {
    pub entries: Vec<CallLogEntry>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<LogCursor>,
}

/// Every column of a log row.
const SELECT: &str = "SELECT id, request_id, started_at_ms, org, team, app, key_id, user_id, \
     kind, alias, served_alias, provider, model, stream, input_tokens, output_tokens, \
     cached_input_tokens, cache_write_tokens, reasoning_tokens, usage_source, cost_micros, \
     priced, latency_ms, ttft_ms, attempts, outcome, status, error_code, tags, client_ip, \
     user_agent, route, attempt_log, cache_status, guardrail, trace_id FROM usage_records";

fn entry_from_row(row: &AnyRow) -> Result<CallLogEntry, StoreError> {
    let mut record = record_from_row(row)?;
    record.details = CallDetails {
        client_ip: row.try_get("client_ip")?,
        user_agent: row.try_get("user_agent")?,
        route: row.try_get("route")?,
        attempts: from_json("attempt_log", &row.try_get::<String, _>("attempt_log")?)?,
        cache: row.try_get("cache_status")?,
        guardrail: row.try_get("guardrail")?,
        trace_id: row.try_get("trace_id")?,
    };
    Ok(CallLogEntry {
        id: row.try_get("id")?,
        record,
        bodies: None,
    })
}

/// The conditions of `filter`.
fn where_of(filter: &LogFilter) -> Where {
    let mut w = Where::default();
    w.int("started_at_ms >= ?", filter.from_ms);
    w.int("started_at_ms < ?", filter.to_ms);
    w.text("org", filter.org.as_deref());
    w.text("team", filter.team.as_deref());
    w.text("app", filter.app.as_deref());
    w.text("key_id", filter.key_id.as_deref());
    w.text("alias", filter.alias.as_deref());
    if let Some(target) = &filter.target {
        match target.split_once('/') {
            Some((provider, model)) => {
                w.text("provider", Some(provider));
                w.text("model", Some(model));
            }
            None => w.text("provider", Some(target)),
        }
    }
    w.text("outcome", filter.outcome.as_deref());
    w.int("status = ?", filter.status);
    w.text("error_code", filter.error_code.as_deref());
    w.text("request_id", filter.request_id.as_deref());
    if let Some((key, value)) = &filter.tag {
        // Tags are stored as the JSON text of `[[key, value], ...]` (serde_json, as written),
        // so one pair is the substring `["key","value"]`.
        let pair = serde_json::json!([key, value]).to_string();
        w.push(
            "tags LIKE ? ESCAPE '\\'",
            vec![Bound::Text(format!("%{}%", escape_like(&pair)))],
        );
    }
    w
}

/// Adds "older than the cursor" to `w`.
fn older_than(w: &mut Where, cursor: LogCursor) {
    w.push(
        "(started_at_ms < ? OR (started_at_ms = ? AND id < ?))",
        vec![
            Bound::Int(cursor.started_at_ms),
            Bound::Int(cursor.started_at_ms),
            Bound::Int(cursor.id),
        ],
    );
}

impl Store {
    /// One page of the calls matching `filter`, newest first, starting after `cursor`;
    /// `limit` is clamped to 1..=[`MAX_PAGE`].
    pub async fn list_calls(
        &self,
        filter: &LogFilter,
        cursor: Option<LogCursor>,
        limit: usize,
    ) -> Result<LogPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut w = where_of(filter);
        if let Some(cursor) = cursor {
            older_than(&mut w, cursor);
        }
        // One row more than asked tells whether another page follows.
        let sql = format!(
            "{SELECT}{} ORDER BY started_at_ms DESC, id DESC LIMIT {}",
            w.sql,
            limit + 1
        );
        let rows = w.fetch_all(self, sql).await?;
        let mut entries = rows
            .iter()
            .take(limit)
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if rows.len() > limit {
            entries.last().map(|e| LogCursor {
                started_at_ms: e.record.started_at_ms,
                id: e.id,
            })
        } else {
            None
        };
        entries.shrink_to_fit();
        Ok(LogPage { entries, next })
    }

    /// Every call recorded under `request_id` (clients may reuse ids), oldest first, each with
    /// its bodies when they were stored. `org`, when given, must match too.
    pub async fn calls_by_request(
        &self,
        request_id: &str,
        org: Option<&str>,
    ) -> Result<Vec<CallLogEntry>, StoreError> {
        let mut w = Where::default();
        w.text("request_id", Some(request_id));
        w.text("org", org);
        let sql = format!("{SELECT}{} ORDER BY started_at_ms, id", w.sql);
        let rows = w.fetch_all(self, sql).await?;
        let mut entries = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Ok(entries);
        }
        let rows = sqlx::query(
            "SELECT started_at_ms, request_body, response_body, truncated FROM call_bodies \
             WHERE request_id = $1 ORDER BY id",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let started: i64 = row.try_get("started_at_ms")?;
            let bodies = CallBodies {
                request_body: row.try_get("request_body")?,
                response_body: row.try_get("response_body")?,
                truncated: row.try_get::<i64, _>("truncated")? != 0,
            };
            // Bodies belong to the call of the same request id that started closest to them
            // (the capture and the meter take their start times a moment apart).
            if let Some(entry) = entries
                .iter_mut()
                .filter(|e| e.bodies.is_none())
                .min_by_key(|e| e.record.started_at_ms.abs_diff(started))
            {
                entry.bodies = Some(bodies);
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = LogCursor {
            started_at_ms: 1_704_067_200_000,
            id: 42,
        };
        assert_eq!(LogCursor::decode(&c.encode()), Some(c));
        assert_eq!(LogCursor::decode("nope"), None);
        assert_eq!(LogCursor::decode(""), None);
    }
}
