//! The call bodies' writer: drains the body queue into `call_bodies` in batches, one
//! multi-row `INSERT` each. Bodies are droppable (their calls' rows are in `usage_records`):
//! a batch that fails is logged and dropped, counted with the queue's drops
//! (`switchboard_log_rows_dropped_total`), and the writer goes on. At cancel it writes what
//! is queued once and stops. The queue's depth is read when `/metrics` is scraped.

use super::Placeholders;
use crate::db::Store;
use crate::error::StoreError;
use switchboard_core::metrics::Counter;
use switchboard_core::usage::{BodyReceiver, CallBody};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

/// Most bodies per statement (5 parameters each).
const BATCH: usize = 256;

/// The body writer's counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyStats {
    /// Bodies committed.
    pub written: u64,
    /// Bodies dropped because their batch could not be written.
    pub failed: u64,
    /// The writer has returned.
    pub stopped: bool,
}

/// Watches a running body writer; cheap to clone.
#[derive(Clone, Debug)]
pub struct BodyWriterHandle {
    stats: watch::Receiver<BodyStats>,
}

impl BodyWriterHandle {
    pub fn stats(&self) -> BodyStats {
        *self.stats.borrow()
    }

    /// Waits until `done` holds for the counters, or the writer has returned.
    pub async fn wait_until(&self, mut done: impl FnMut(&BodyStats) -> bool) -> BodyStats {
        let mut stats = self.stats.clone();
        let result = stats.wait_for(|s| s.stopped || done(s)).await.map(|s| *s);
        result.unwrap_or_else(|_| *stats.borrow())
    }
}

/// The batch writer of call bodies.
pub struct BodyWriter;

impl BodyWriter {
    /// Starts the writer on `tracker`; it stops after draining when `cancel` fires or every
    /// sender is gone.
    pub fn spawn(
        store: Store,
        mut rx: BodyReceiver,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> BodyWriterHandle {
        let (stats, watcher) = watch::channel(BodyStats::default());
        tracker.spawn(async move {
            let mut buf = Vec::with_capacity(BATCH);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    n = rx.recv_many(&mut buf, BATCH) => {
                        if n == 0 {
                            break;
                        }
                        write(&store, &mut buf, &stats).await;
                    }
                }
            }
            rx.close();
            while rx.recv_many(&mut buf, BATCH).await > 0 {
                write(&store, &mut buf, &stats).await;
            }
            stats.send_modify(|s| s.stopped = true);
        });
        BodyWriterHandle { stats: watcher }
    }
}

async fn write(store: &Store, buf: &mut Vec<CallBody>, stats: &watch::Sender<BodyStats>) {
    let n = buf.len() as u64;
    match store.insert_bodies(buf).await {
        Ok(()) => stats.send_modify(|s| s.written += n),
        Err(e) => {
            warn!(error = %e, bodies = n, "Cannot write call bodies; dropping them.");
            for _ in 0..n {
                Counter::LogRowsDropped.increment();
            }
            stats.send_modify(|s| s.failed += n);
        }
    }
    buf.clear();
}

impl Store {
    /// Inserts call bodies (one statement per [`BATCH`]).
    pub async fn insert_bodies(&self, bodies: &[CallBody]) -> Result<(), StoreError> {
        for chunk in bodies.chunks(BATCH) {
            let mut sql = "INSERT INTO call_bodies (request_id, started_at_ms, request_body, \
                 response_body, truncated) VALUES "
                .to_owned();
            Placeholders::new(self.backend()).rows(&mut sql, chunk.len(), 5);
            // Only placeholders are spliced in: the values travel as bound parameters.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for body in chunk {
                query = query
                    .bind(body.request_id.clone())
                    .bind(body.started_at_ms)
                    .bind(body.request.clone())
                    .bind(body.response.clone())
                    .bind(i64::from(body.truncated));
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// The bodies logged for a request, oldest first: `(request, response, truncated)`.
    pub async fn bodies_of(
        &self,
        request_id: &str,
    ) -> Result<Vec<(Option<String>, Option<String>, bool)>, StoreError> {
        use sqlx::Row;
        let rows = sqlx::query(
            "SELECT request_body, response_body, truncated FROM call_bodies \
             WHERE request_id = $1 ORDER BY id",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("request_body")?,
                    row.try_get("response_body")?,
                    row.try_get::<i64, _>("truncated")? != 0,
                ))
            })
            .collect()
    }
}
