//! Retention of the call log: deletes `usage_records`, `call_bodies` and rollup rows (per
//! minute and per hour) older than `logging.retention` says, in small batches (one short statement each, a pause
//! between them) so that neither serving nor the usage writer ever waits long for a lock. A
//! peer's cleanup job deleting everything in one statement held locks for minutes; this one
//! holds them for one batch.
//!
//! [`RetentionTask`] runs a pass at start and then every `interval`, reading the policy from
//! the current config each time (so reloads apply); [`Store::retention_pass`] is one pass, for
//! tests and for the task.

use crate::db::{now_ms, Store};
use crate::error::StoreError;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::config::Retention;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

const DAY_MS: i64 = 86_400_000;

/// The pause between two delete batches: room for the writer and for readers.
const PAUSE: Duration = Duration::from_millis(20);

/// What one pass deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionStats {
    pub calls: u64,
    pub bodies: u64,
    /// Minute rollups (`usage_rollups`).
    pub rollups: u64,
    /// Hourly rollups (`usage_rollups_hourly`), under the same policy as the minute ones.
    pub hourly_rollups: u64,
    /// Delete statements run.
    pub batches: u64,
}

/// One table's delete: rows whose time column is before a cutoff, at most `batch` at once.
/// Ids (or the primary key) are picked by a bounded subquery, the portable form of
/// `DELETE ... LIMIT` in SQLite and Postgres.
fn delete_sql(table: &str) -> String {
    match table {
        "usage_rollups" | "usage_rollups_hourly" => format!(
            "DELETE FROM {table} WHERE (dimension, value, org, bucket_ms) IN \
             (SELECT dimension, value, org, bucket_ms FROM {table} \
             WHERE bucket_ms < $1 LIMIT $2)"
        ),
        "call_bodies" => "DELETE FROM call_bodies WHERE id IN \
             (SELECT id FROM call_bodies WHERE started_at_ms < $1 LIMIT $2)"
            .to_owned(),
        _ => "DELETE FROM usage_records WHERE id IN \
             (SELECT id FROM usage_records WHERE started_at_ms < $1 LIMIT $2)"
            .to_owned(),
    }
}

impl Store {
    /// Deletes every row of `table` older than `before_ms` in batches of `batch`; returns the
    /// rows and statements. Stops early (between batches) when `cancel` fires.
    async fn delete_before(
        &self,
        table: &str,
        before_ms: i64,
        batch: u32,
        pause: Duration,
        cancel: &CancellationToken,
    ) -> Result<(u64, u64), StoreError> {
        let sql = delete_sql(table);
        let (mut rows, mut statements) = (0, 0);
        loop {
            let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(before_ms)
                .bind(i64::from(batch))
                .execute(&self.pool)
                .await?
                .rows_affected();
            rows += done;
            statements += 1;
            if done < u64::from(batch) || cancel.is_cancelled() {
                return Ok((rows, statements));
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok((rows, statements)),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One retention pass at `now_ms`: each kind of row with a retention is deleted when
    /// older than its number of days.
    pub async fn retention_pass(
        &self,
        policy: &Retention,
        now_ms: i64,
        cancel: &CancellationToken,
    ) -> Result<RetentionStats, StoreError> {
        let mut stats = RetentionStats::default();
        let kinds = [
            ("usage_records", policy.calls_days),
            ("call_bodies", policy.bodies_days),
            ("usage_rollups", policy.rollups_days),
            // The same cutoff: an hour that began before it goes even if some of its minutes
            // stay. Analytics read an hour only when the range holds all of it, so ranges
            // starting at or after the cutoff still answer exactly.
            ("usage_rollups_hourly", policy.rollups_days),
        ];
        for (table, days) in kinds {
            let Some(days) = days else { continue };
            let before = now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
            let (rows, statements) = self
                .delete_before(table, before, policy.batch.max(1), PAUSE, cancel)
                .await?;
            stats.batches += statements;
            match table {
                "usage_records" => stats.calls = rows,
                "call_bodies" => stats.bodies = rows,
                "usage_rollups" => stats.rollups = rows,
                _ => stats.hourly_rollups = rows,
            }
        }
        Ok(stats)
    }
}

/// The background retention task.
pub struct RetentionTask;

impl RetentionTask {
    /// Runs a pass now and then every `policy().interval` until `cancel`; `policy` gives the
    /// current config's retention. A failed pass is logged and tried again at the next turn.
    pub fn spawn(
        store: Store,
        policy: Arc<dyn Fn() -> Retention + Send + Sync>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) {
        tracker.spawn(async move {
            loop {
                let current = policy();
                match store.retention_pass(&current, now_ms(), &cancel).await {
                    Ok(stats)
                        if stats.calls + stats.bodies + stats.rollups + stats.hourly_rollups
                            > 0 =>
                    {
                        info!(
                            calls = stats.calls,
                            bodies = stats.bodies,
                            rollups = stats.rollups,
                            hourly_rollups = stats.hourly_rollups,
                            "Retention deleted old call log rows."
                        )
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "Retention pass failed; trying again later."),
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(current.interval) => {}
                }
            }
        });
    }
}
