//! One database for one test, shared by the integration-test binaries (included with
//! `#[path]`): a SQLite file in a fresh folder, or a fresh schema of the test Postgres
//! (`SWITCHBOARD_TEST_POSTGRES`), dropped afterwards.

use std::path::PathBuf;
use std::sync::Once;

pub const POSTGRES_ENV: &str = "SWITCHBOARD_TEST_POSTGRES";

#[derive(Clone, Debug)]
pub struct Db {
    /// What the servers' `database:` says.
    pub url: String,
    dir: Option<PathBuf>,
    /// Postgres: the database URL without the schema, and the schema.
    pg: Option<(String, String)>,
}

impl Db {
    /// A SQLite file in a fresh folder (a file, not `:memory:`, so that several gateways of
    /// one test share it).
    pub fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(format!("sb-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Db {
            url: format!("sqlite://{}", dir.join("db.sqlite").display()),
            dir: Some(dir),
            pg: None,
        }
    }

    /// A new schema in the test Postgres, or `None` with a loud note (once per binary).
    pub async fn postgres() -> Option<Db> {
        let Ok(base) = std::env::var(POSTGRES_ENV) else {
            static NOTE: Once = Once::new();
            NOTE.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED (postgres): set {POSTGRES_ENV} to run these tests against \
                     Postgres too, e.g. postgres://postgres@127.0.0.1:5432/test ***\n"
                );
            });
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        raw(&base, &format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Db {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            dir: None,
            pg: Some((base, schema)),
        })
    }

    /// Postgres when it is configured, else a SQLite file (for tests that run on either).
    #[allow(
        dead_code,
        reason = "used by some of the binaries that include this file"
    )]
    pub async fn shared() -> Db {
        match Db::postgres().await {
            Some(db) => db,
            None => Db::sqlite(),
        }
    }

    /// The SQLite file's folder (`None` on Postgres), for files a test writes beside it.
    #[allow(
        dead_code,
        reason = "used by some of the binaries that include this file"
    )]
    pub fn folder(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
    }

    /// Postgres only: the base URL and this test's schema.
    #[allow(
        dead_code,
        reason = "used by some of the binaries that include this file"
    )]
    pub fn postgres_parts(&self) -> Option<(&str, &str)> {
        self.pg
            .as_ref()
            .map(|(base, schema)| (base.as_str(), schema.as_str()))
    }

    /// Statements that lift the audit log's append-only protection.
    #[allow(
        dead_code,
        reason = "used by some of the binaries that include this file"
    )]
    pub fn lift_audit_protection(&self) -> [&'static str; 2] {
        if self.pg.is_some() {
            [
                "DROP RULE audit_log_no_update ON audit_log",
                "DROP RULE audit_log_no_delete ON audit_log",
            ]
        } else {
            [
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
            ]
        }
    }

    /// Runs raw SQL on `url` (tests that break or tamper with storage).
    #[allow(
        dead_code,
        reason = "used by some of the binaries that include this file"
    )]
    pub async fn execute(&self, sql: &str, url: &str) {
        raw(url, sql).await.unwrap();
    }

    pub async fn drop(&self) {
        if let Some((base, schema)) = &self.pg {
            let _ = raw(base, &format!("DROP SCHEMA {schema} CASCADE")).await;
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn raw(url: &str, sql: &str) -> Result<(), String> {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}
