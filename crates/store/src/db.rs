//! Connecting, migrating, and the small helpers every table module shares (ids, clock).

use crate::crypto::{SecretCipher, SECRET_KEY_ENV};
use crate::error::StoreError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Database, Executor, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Invalid(format!(
                "unsupported database URL `{}`: use sqlite://FILE or postgres://...",
                redact_url(url)
            )))
        }
    }
}

/// How to open the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// Wait at most this long for a connection (a down database fails requests fast).
    pub acquire_timeout: Duration,
    /// Postgres only: the schema every connection uses (`SET search_path`), created by the
    /// caller. Lets several stores share one database, e.g. one schema per test.
    pub schema: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            schema: None,
        }
    }
}

/// The storage handle; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The usage writer's pool (see [`LedgerPool`]).
    pub(crate) ledger: LedgerPool,
    pub(crate) changes: crate::changes::ChangeFeed,
    /// Encrypts provider API keys at rest; `None` refuses to store them.
    pub(crate) cipher: Option<SecretCipher>,
}

/// What the usage writer commits its batches through: a typed pool or connection, so that a
/// record's values go straight into the driver's arguments instead of through `AnyArguments`
/// and their conversion (4.7k instructions a record in `map_arguments` alone; callgrind).
/// Everything else stays on the `Any` pool.
#[derive(Clone, Debug)]
pub(crate) enum LedgerPool {
    /// In-memory SQLite: a second pool would open a second, empty database, so the writer
    /// uses the `Any` pool's one connection.
    Any,
    /// A SQLite file: rusqlite on a blocking thread (see `usage/sqlite_ledger.rs`).
    Sqlite(crate::usage::SqliteLedger),
    Postgres(PgPool),
}

/// Connections of the Postgres ledger pool: the writer commits one batch at a time.
const LEDGER_CONNECTIONS: u32 = 2;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens a pool. SQLite files are created if missing and use WAL with foreign keys on.
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let url = match backend {
            Backend::Sqlite => sqlite_url(url),
            Backend::Postgres => url.to_owned(),
        };
        let changes = crate::changes::ChangeFeed::new(backend, &url);
        let connect = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        if backend == Backend::Sqlite {
            // An in-memory database exists once per connection: keep exactly one.
            if is_memory(&url) {
                pool = pool
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
            }
        }
        let schema = checked_schema(backend, options)?;
        let pool = with_search_path(pool, schema).connect_with(connect).await?;
        if backend == Backend::Sqlite && !is_memory(&url) {
            // WAL lets readers go on while one writer writes. The mode is stored in the file,
            // so setting it once per open is enough.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let ledger = ledger_pool(backend, &url, options, schema)?;
        Ok(Store {
            pool,
            backend,
            ledger,
            changes,
            cipher: None,
        })
    }

    /// Uses `cipher` to encrypt and decrypt stored provider API keys (see
    /// [`SecretCipher::from_env`]).
    pub fn with_cipher(mut self, cipher: Option<SecretCipher>) -> Store {
        self.cipher = cipher;
        self
    }

    /// Whether provider API keys can be stored (a cipher was given).
    pub fn has_cipher(&self) -> bool {
        self.cipher.is_some()
    }

    /// The cipher for stored secrets, or the error that says how to configure one.
    pub(crate) fn cipher(&self) -> Result<&SecretCipher, StoreError> {
        self.cipher.as_ref().ok_or_else(|| {
            StoreError::Crypto(format!(
                "set {SECRET_KEY_ENV} (base64 of 32 random bytes, e.g. `openssl rand -base64 32`) \
                 to store provider API keys in the database"
            ))
        })
    }

    /// Runs the embedded migrations of this database kind (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// The schema of [`StoreOptions::schema`], checked to be a plain identifier (so that it can be
/// spliced into `SET search_path`) and to be asked of Postgres only.
fn checked_schema(backend: Backend, options: &StoreOptions) -> Result<Option<&str>, StoreError> {
    let Some(schema) = options.schema.as_deref() else {
        return Ok(None);
    };
    if backend != Backend::Postgres {
        return Err(StoreError::Invalid(
            "a schema can only be chosen for Postgres".to_owned(),
        ));
    }
    if schema.is_empty()
        || !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(StoreError::Invalid(format!(
            "invalid schema name `{schema}`: use letters, digits and `_`"
        )));
    }
    Ok(Some(schema))
}

/// Makes every connection of the pool use `schema` (checked by [`checked_schema`]).
fn with_search_path<DB: Database>(pool: PoolOptions<DB>, schema: Option<&str>) -> PoolOptions<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let Some(schema) = schema else { return pool };
    let set = format!("SET search_path TO \"{schema}\"");
    pool.after_connect(move |conn, _meta| {
        let set = sqlx::AssertSqlSafe(set.clone());
        Box::pin(async move {
            sqlx::raw_sql(set).execute(conn).await?;
            Ok(())
        })
    })
}

/// The usage writer's pool on the database of `url` (already made by [`sqlite_url`]). Lazy:
/// it connects when the writer first commits.
fn ledger_pool(
    backend: Backend,
    url: &str,
    options: &StoreOptions,
    schema: Option<&str>,
) -> Result<LedgerPool, StoreError> {
    Ok(match backend {
        Backend::Sqlite if is_memory(url) => LedgerPool::Any,
        Backend::Sqlite => {
            // The file named as the `Any` driver reads the URL.
            let connect = SqliteConnectOptions::from_str(url)?;
            LedgerPool::Sqlite(crate::usage::SqliteLedger::new(connect.get_filename()))
        }
        Backend::Postgres => {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(LEDGER_CONNECTIONS)
                .acquire_timeout(options.acquire_timeout);
            LedgerPool::Postgres(with_search_path(pool, schema).connect_lazy_with(connect))
        }
    })
}

/// SQLite: create the file if missing, WAL journal, foreign keys enforced, wait on a busy lock
/// instead of failing.
fn sqlite_url(url: &str) -> String {
    let mut url = url.to_owned();
    let sep = if url.contains('?') { '&' } else { '?' };
    if !url.contains(":memory:") && !url.contains("mode=") {
        url.push(sep);
        url.push_str("mode=rwc");
    }
    url
}

/// Whether a SQLite URL names an in-memory database.
fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// A URL with its password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:*****{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A new id: a short prefix naming the kind, then a UUIDv7 (time-ordered, so ids sort by
/// creation, which cursor paging relies on).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

pub(crate) use switchboard_types::calendar::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://sb:secret@db:5432/x"),
            "postgres://sb:*****@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }
}
