//! The usage writer's connection to a SQLite file: each batch is committed through rusqlite on a
//! blocking thread, in the same multi-row statements as on sqlx's pools, instead of through
//! sqlx's SQLite worker.
//!
//! Why not sqlx on this one path (callgrind, the benchmark's `off` config, per request): sqlx
//! copies every text value into two allocations of its own before SQLite copies it again
//! (`Arc<String>`), looks up each parameter's name, and clears every binding of a statement
//! after each run (64 rows × 35 columns); binding was ~6.8k instructions and clearing ~2.9k of
//! the ~23k that SQLite's thread spent per record, `sqlite3_step` ~12k. Here a value goes from
//! the record straight into `sqlite3_bind_*`, a cached statement's bindings are cleared once
//! per batch, and the whole transaction is one trip to the blocking thread instead of one per
//! statement. Everything else, reads included, stays on sqlx's pools.
//!
//! The connection is opened at the first commit, with the settings of the store's own
//! connections (foreign keys on, a 5 s busy timeout so that a writer on another pool makes this
//! one wait rather than fail, SQLite's default `synchronous`), and reopened after a failure.

use super::rollup;
use super::{bind_record, insert_statement, Bind};
use crate::error::StoreError;
use crate::Backend;
use parking_lot::Mutex;
use rusqlite::types::Null;
use rusqlite::{CachedStatement, Connection, OpenFlags, TransactionBehavior};
use sqlx::error::BoxDynError;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::usage::UsageRecord;

/// How long a commit waits for another connection's write lock before failing (the value
/// sqlx gives the store's other connections).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Statements kept prepared: one per row count (`super::SQLITE_CHUNKS`) for the records and
/// for each rollup table, so that no batch prepares a long statement again.
const STATEMENT_CACHE: usize = 3 * super::SQLITE_CHUNKS.len();

/// The ledger's connection to one SQLite file; cheap to clone (one connection is shared).
#[derive(Clone, Debug)]
pub(crate) struct SqliteLedger {
    path: PathBuf,
    /// `None` until the first commit, and again after a failed one.
    conn: Arc<Mutex<Option<Connection>>>,
}

impl SqliteLedger {
    /// A ledger on the database file at `path` (which the store's pool has created).
    pub(crate) fn new(path: &Path) -> SqliteLedger {
        SqliteLedger {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// Commits `records` (all of them, or none) with their rollups, on a blocking thread.
    pub(crate) async fn commit(&self, records: Arc<Vec<UsageRecord>>) -> Result<(), StoreError> {
        let (conn, path) = (self.conn.clone(), self.path.clone());
        tokio::task::spawn_blocking(move || {
            let mut slot = conn.lock();
            let result = match &mut *slot {
                Some(conn) => commit_batch(conn, &records),
                None => open(&path).and_then(|conn| commit_batch(slot.insert(conn), &records)),
            };
            if result.is_err() {
                // The next attempt starts from a fresh connection, whatever state this one is in.
                *slot = None;
            }
            result
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("the usage commit did not finish: {e}")))?
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// One transaction: every record, then the minute and the hour rollups, in multi-row
/// statements of the sizes `super::insert_records` uses on sqlx's pools. Many rows per
/// statement matter inside SQLite: one statement keeps its B-tree cursors where the last row
/// went, where a statement per row walks every index from its root again (`sqlite3_step`
/// doubled per record when tried).
fn commit_batch(conn: &mut Connection, records: &[UsageRecord]) -> Result<(), StoreError> {
    let backend = Backend::Sqlite;
    let longest = super::longest_statement(records.len(), backend);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut inserts = Statements::new(&tx);
        for chunk in super::statement_chunks(records, longest, backend) {
            let insert = inserts.get(chunk.len(), || insert_statement(chunk.len(), backend))?;
            let mut binder = Binder::new(insert);
            for record in chunk {
                bind_record(&mut binder, record)?;
            }
            insert.statement.raw_execute()?;
            yield_core();
        }
        for (table, groups) in rollup::by_table(records) {
            let mut upserts = Statements::new(&tx);
            let groups: Vec<_> = groups.iter().collect();
            for chunk in super::statement_chunks(&groups, longest, backend) {
                let upsert = upserts.get(chunk.len(), || {
                    rollup::upsert_statement(table, chunk.len(), backend)
                })?;
                let mut binder = Binder::new(upsert);
                for ((dimension, value, org, bucket), sums) in chunk {
                    rollup::bind_group(&mut binder, dimension, value, org, *bucket, sums)
                        .map_err(super::encode_error)?;
                }
                upsert.statement.raw_execute()?;
                yield_core();
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// One statement text per row count, each taken from rusqlite's cache once per batch and held
/// until the batch ends: a statement going back to the cache clears all of its bindings (2,240
/// for 64 rows), which cost ~2k instructions a record when done after every statement.
struct Statements<'c> {
    conn: &'c Connection,
    held: Vec<Held<'c>>,
}

/// A statement held for a batch, and the value each of its parameters is bound to now.
/// Bindings outlive an execution (`sqlite3_reset` keeps them), and most of a record's columns
/// hold what the same row of the previous execution held: NULL in most optional columns, and
/// the same kind, alias, provider, model, outcome and status call after call. A parameter
/// already bound to the value is not bound again: a binding releases the old value and, for
/// text, copies the new one into SQLite (binding a NULL over a NULL was ~1k instructions a
/// record; all the unchanged values together ~2k more).
struct Held<'c> {
    rows: usize,
    statement: CachedStatement<'c>,
    bound: Vec<Bound>,
}

/// What a parameter is bound to.
#[derive(Debug, PartialEq)]
enum Bound {
    Null,
    Int(i64),
    Text(String),
}

impl<'c> Statements<'c> {
    fn new(conn: &'c Connection) -> Self {
        Statements {
            conn,
            held: Vec::new(),
        }
    }

    /// The statement for `rows` rows, prepared (or taken from the cache) from `sql` the first
    /// time.
    fn get(
        &mut self,
        rows: usize,
        sql: impl FnOnce() -> Cow<'static, str>,
    ) -> rusqlite::Result<&mut Held<'c>> {
        let at = match self.held.iter().position(|held| held.rows == rows) {
            Some(at) => at,
            None => {
                let statement = self.conn.prepare_cached(&sql())?;
                // Fresh from `prepare`, or from the cache, which cleared it: all NULL.
                let bound = std::iter::repeat_with(|| Bound::Null)
                    .take(statement.parameter_count())
                    .collect();
                self.held.push(Held {
                    rows,
                    statement,
                    bound,
                });
                self.held.len() - 1
            }
        };
        Ok(&mut self.held[at])
    }
}

/// Lets the request runtime have the core between two statements, as sqlx's worker did by
/// waiting for its next statement: on a gateway with one core this thread and the runtime share
/// it, and the scheduler lets a running thread finish its time slice (`STEADY_STATEMENT_ROWS`
/// bounds a statement's length for the same reason: long ones held requests for milliseconds).
fn yield_core() {
    std::thread::yield_now();
}

/// Binds values to a prepared statement's parameters in order, as [`Bind`] lists them, skipping
/// those already bound to the same value (see [`Held`]).
struct Binder<'s, 'c> {
    held: &'s mut Held<'c>,
    /// The last parameter bound (SQLite counts from 1).
    index: usize,
}

impl<'s, 'c> Binder<'s, 'c> {
    fn new(held: &'s mut Held<'c>) -> Self {
        Binder { held, index: 0 }
    }

    /// Moves to the next parameter; its current value, or `None` past the last one (binding
    /// there anyway lets SQLite report the error).
    fn next(&mut self) -> Option<&mut Bound> {
        self.index += 1;
        self.held.bound.get_mut(self.index - 1)
    }

    fn set(&mut self, value: impl rusqlite::ToSql) -> Result<(), BoxDynError> {
        self.held.statement.raw_bind_parameter(self.index, value)?;
        Ok(())
    }

    fn null(&mut self) -> Result<(), BoxDynError> {
        match self.next() {
            Some(Bound::Null) => Ok(()),
            Some(slot) => {
                *slot = Bound::Null;
                self.set(Null)
            }
            None => self.set(Null),
        }
    }
}

impl Bind for Binder<'_, '_> {
    fn int(&mut self, value: i64) -> Result<(), BoxDynError> {
        match self.next() {
            Some(Bound::Int(now)) if *now == value => Ok(()),
            Some(slot) => {
                *slot = Bound::Int(value);
                self.set(value)
            }
            None => self.set(value),
        }
    }
    fn opt_int(&mut self, value: Option<i64>) -> Result<(), BoxDynError> {
        match value {
            Some(value) => self.int(value),
            None => self.null(),
        }
    }
    fn text(&mut self, value: &str) -> Result<(), BoxDynError> {
        match self.next() {
            Some(Bound::Text(now)) if now == value => return Ok(()),
            // The buffer is kept: a column that changes every row (the request id) reuses it.
            Some(Bound::Text(now)) => {
                now.clear();
                now.push_str(value);
            }
            Some(slot) => *slot = Bound::Text(value.to_owned()),
            None => {}
        }
        self.set(value)
    }
    fn owned_text(&mut self, value: String) -> Result<(), BoxDynError> {
        self.text(&value)
    }
    fn opt_text(&mut self, value: Option<&str>) -> Result<(), BoxDynError> {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};
    use switchboard_core::usage::{CallKind, Caller, Outcome, UsageSource};
    use switchboard_types::{MicroUsd, Usage};

    fn record(request_id: &str, started_at_ms: i64) -> UsageRecord {
        UsageRecord {
            request_id: request_id.to_owned(),
            started_at_ms,
            caller: Caller {
                org: Some("acme".to_owned()),
                key_id: Some("k1".to_owned()),
                ..Caller::default()
            },
            kind: CallKind::Chat,
            alias: "fast".to_owned(),
            served_alias: None,
            provider: Some("openai".to_owned()),
            model: Some("gpt-4o-mini".to_owned()),
            stream: false,
            usage: Usage {
                input_tokens: 12,
                output_tokens: 20,
                ..Usage::default()
            },
            usage_source: UsageSource::Reported,
            cost: MicroUsd(7),
            priced: true,
            latency_ms: 3,
            ttft_ms: None,
            attempts: 1,
            outcome: Outcome::Ok,
            status: 200,
            error_code: None,
            tags: vec![("env".to_owned(), "prod".to_owned())],
            details: Default::default(),
        }
    }

    /// Bindings outlive an execution and NULLs are not bound again over NULLs: a column that
    /// goes from a value to NULL (and back) between the rows of one statement, or between two
    /// executions of it, must still be written as each record has it. Likewise values that
    /// repeat and then change (not bound again while they repeat), and the JSON lists, empty
    /// or not.
    #[tokio::test]
    async fn optional_columns_are_written_as_each_record_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let store = Store::connect(
            &format!("sqlite://{}", path.display()),
            &StoreOptions::default(),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        let batch: Vec<_> = (0..300)
            .map(|i| {
                let mut r = record(&format!("r{i}"), 60_000 + i);
                // Runs of 7 with and 7 without: changes inside statements and across them.
                if (i / 7) % 2 == 0 {
                    r.caller.team = Some(format!("team{i}"));
                    r.served_alias = Some("spare".to_owned());
                    r.ttft_ms = Some(i.unsigned_abs());
                    r.error_code = Some("rate_limited".to_owned());
                } else {
                    // The empty list is written as a constant, not serialised.
                    r.tags.clear();
                }
                // Runs of 5 of one value, then another: a parameter keeps its binding while
                // the value repeats, inside a statement and from one execution to the next.
                if (i / 5) % 2 == 0 {
                    r.alias = "slow".to_owned();
                    r.status = 429;
                    r.usage.output_tokens = 0;
                }
                r
            })
            .collect();
        let ledger = SqliteLedger::new(&path);
        // Twice: the second batch takes the statements from the cache, cleared.
        let (first, second) = batch.split_at(150);
        ledger.commit(Arc::new(first.to_vec())).await.unwrap();
        ledger.commit(Arc::new(second.to_vec())).await.unwrap();
        for want in &batch {
            let written = store.usage_by_request(&want.request_id).await.unwrap();
            assert_eq!(written, vec![want.clone()], "{}", want.request_id);
        }
    }

    /// A batch is written whole or not at all, and a failed commit's connection is replaced:
    /// the same batch then commits, records and rollups alike.
    #[tokio::test]
    async fn a_batch_commits_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let url = format!("sqlite://{}", path.display());
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let count = |sql: &'static str| {
            let pool = store.pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
                n
            }
        };
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON usage_records WHEN NEW.request_id = 'bad' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .execute(&store.pool)
        .await
        .unwrap();

        let ledger = SqliteLedger::new(&path);
        let batch: Vec<_> = (0..150)
            .map(|i| record(if i == 149 { "bad" } else { "ok" }, 60_000 + i))
            .collect();
        let batch = Arc::new(batch);
        let err = ledger.commit(batch.clone()).await.unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert_eq!(count("SELECT COUNT(*) FROM usage_records").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM usage_rollups").await, 0);

        sqlx::query("DROP TRIGGER refuse")
            .execute(&store.pool)
            .await
            .unwrap();
        ledger.commit(batch).await.unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM usage_records").await, 150);
        let written = store.usage_by_request("bad").await.unwrap();
        assert_eq!(written, vec![record("bad", 60_149)]);
        let requests = count(
            "SELECT requests FROM usage_rollups WHERE dimension = 'all' AND org = 'acme' \
             AND bucket_ms = 60000",
        );
        assert_eq!(requests.await, 150);
        let hourly = count(
            "SELECT requests FROM usage_rollups_hourly WHERE dimension = 'key' AND value = 'k1'",
        );
        assert_eq!(hourly.await, 150);
    }
}
