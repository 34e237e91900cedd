//! The test harness: every case runs against a fresh SQLite file and, when
//! `SWITCHBOARD_TEST_POSTGRES` names a database, against Postgres in a schema of its own.
//!
//! Write a case as `async fn name(db: &TestDb)` and list it in `both!(name, ...)`: that makes
//! the tests `name::sqlite` and `name::postgres`.

#![allow(dead_code, reason = "each helper is used by some test modules only")]

use std::io::Write;
use std::sync::Once;
use std::time::Duration;
use switchboard_store::{Actor, Backend, SecretCipher, Store, StoreOptions};

/// The variable naming the Postgres database for tests.
pub const POSTGRES_ENV: &str = "SWITCHBOARD_TEST_POSTGRES";

/// The key test stores encrypt provider API keys with.
pub const TEST_KEY: [u8; 32] = [42; 32];

/// Runs each named `async fn(&TestDb)` once per backend.
macro_rules! both {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = crate::common::TestDb::sqlite().await;
                super::$case(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = crate::common::TestDb::postgres().await {
                    super::$case(&db).await;
                    db.drop_schema().await;
                }
            }
        }
    )+};
}

/// One database for one test.
pub struct TestDb {
    /// Migrated, with the test cipher.
    pub store: Store,
    pub backend: Backend,
    url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A migrated store in a new SQLite file.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let mut db = TestDb {
            store: placeholder_store().await,
            backend: Backend::Sqlite,
            url,
            schema: None,
            _dir: Some(dir),
        };
        db.store = db.open().await;
        db.store.migrate().await.expect("migrate sqlite");
        db
    }

    /// A migrated store in an in-memory SQLite database: one connection, shared by the usage
    /// writer (its typed ledger pool would be a second, empty database). Raw SQL through
    /// [`TestDb::execute_raw`] and the like would open yet another database: not for these.
    pub async fn sqlite_memory() -> TestDb {
        let url = "sqlite::memory:".to_owned();
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .expect("in-memory sqlite")
            .with_cipher(Some(SecretCipher::from_key(&TEST_KEY)));
        store.migrate().await.expect("migrate sqlite");
        TestDb {
            store,
            backend: Backend::Sqlite,
            url,
            schema: None,
            _dir: None,
        }
    }

    /// A migrated store in a new schema of the test Postgres, or `None` (with a loud note) when
    /// `SWITCHBOARD_TEST_POSTGRES` is not set.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(url) = std::env::var(POSTGRES_ENV) else {
            static NOTE: Once = Once::new();
            NOTE.call_once(|| {
                // Straight to stderr: libtest captures print macros of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED (postgres): set {POSTGRES_ENV} to run against Postgres, \
                     e.g. postgres://postgres@127.0.0.1:5432/test ***\n"
                );
            });
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        raw_execute(&url, None, &format!("CREATE SCHEMA {schema}")).await;
        let mut db = TestDb {
            store: placeholder_store().await,
            backend: Backend::Postgres,
            url,
            schema: Some(schema),
            _dir: None,
        };
        db.store = db.open().await;
        db.store.migrate().await.expect("migrate postgres");
        Some(db)
    }

    /// Another store on the same database (as a second instance would be), with the test
    /// cipher; not migrated again.
    pub async fn open(&self) -> Store {
        self.open_with(Some(SecretCipher::from_key(&TEST_KEY)))
            .await
    }

    /// Another store on the same database with this cipher.
    pub async fn open_with(&self, cipher: Option<SecretCipher>) -> Store {
        let options = StoreOptions {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(10),
            schema: self.schema.clone(),
        };
        Store::connect(&self.url, &options)
            .await
            .expect("connect")
            .with_cipher(cipher)
    }

    /// Runs SQL outside the store (e.g. to tamper with rows), in the test's schema.
    pub async fn execute_raw(&self, sql: &str) {
        if let Err(e) = self.try_execute_raw(sql).await {
            panic!("raw SQL `{sql}` failed: {e}");
        }
    }

    /// [`TestDb::execute_raw`] that returns the database's error instead of panicking.
    pub async fn try_execute_raw(&self, sql: &str) -> Result<(), String> {
        try_raw_execute(&self.url, self.schema.as_deref(), sql).await
    }

    /// Rows of a query run outside the store (to read tables the store has no read for).
    pub async fn query_raw(&self, sql: &str) -> Vec<sqlx::any::AnyRow> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("connect");
        if let Some(schema) = &self.schema {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
                .execute(&mut conn)
                .await
                .expect("search_path");
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("raw SQL `{sql}` failed: {e}"));
        let _ = conn.close().await;
        rows
    }

    /// The database URL (for Postgres, of the whole database: combine with [`TestDb::schema`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Postgres schema of this test.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Removes the test's Postgres schema (called after a passing case; a failing one leaves
    /// it for inspection).
    pub async fn drop_schema(&self) {
        if let Some(schema) = &self.schema {
            raw_execute(&self.url, None, &format!("DROP SCHEMA {schema} CASCADE")).await;
        }
    }
}

/// A store to fill the field until the real one is open (an in-memory SQLite, unmigrated).
async fn placeholder_store() -> Store {
    Store::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .expect("in-memory sqlite")
}

async fn raw_execute(url: &str, schema: Option<&str>, sql: &str) {
    if let Err(e) = try_raw_execute(url, schema, sql).await {
        panic!("raw SQL `{sql}` failed: {e}");
    }
}

async fn try_raw_execute(url: &str, schema: Option<&str>, sql: &str) -> Result<(), String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(schema) = schema {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    let _ = conn.close().await;
    result
}

/// The bootstrap admin, for cases that do not care who acts.
pub fn admin() -> Actor {
    Actor::admin_key()
}
