//! The harness of the config-as-code and CLI tests: a gateway started on port 0 with a database
//! of its own (a SQLite file, or a fresh schema of the Postgres named by
//! `SWITCHBOARD_TEST_POSTGRES`), a client with the admin key, raw SQL for tampering, and a way
//! to run the `switchboard` binary against the server.

#![allow(dead_code, reason = "each helper is used by some tests only")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Once;
use switchboard::runtime::ConfigSource;
use switchboard::serve::{self, Server};

pub const ADMIN: &str = "sk-test-config-admin";
pub const POSTGRES_ENV: &str = "SWITCHBOARD_TEST_POSTGRES";
/// base64 of 32 bytes of 42: the key provider API keys are encrypted with in these tests.
pub const SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// Runs each named `async fn(Db)` on SQLite and, when configured, on Postgres. The invoking
/// module must have `Db` in scope.
macro_rules! both {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case(super::Db::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::Db::postgres().await {
                    let cleanup = db.clone();
                    super::$case(db).await;
                    cleanup.drop_schema().await;
                }
            }
        }
    )+};
}
pub(crate) use both;

/// The server reads `SWITCHBOARD_SECRET_KEY` from its environment; every test uses the same
/// value, set once before the first server starts.
pub fn secret_key_env() {
    static SET: Once = Once::new();
    SET.call_once(|| std::env::set_var("SWITCHBOARD_SECRET_KEY", SECRET_KEY));
}

/// One database for one test.
#[derive(Clone, Debug)]
pub struct Db {
    /// What the server's `database:` says.
    pub url: String,
    pub postgres: bool,
    /// SQLite: the folder holding the file (removed with the test's process exit is not
    /// guaranteed; files are small and in the temp dir).
    pub dir: Option<PathBuf>,
    /// Postgres: the database URL without the schema, and the schema.
    pg: Option<(String, String)>,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Db {
            url: format!("sqlite://{}", dir.join("test.db").display()),
            postgres: false,
            dir: Some(dir),
            pg: None,
        }
    }

    /// A new schema in the test Postgres, or None with a loud note.
    pub async fn postgres() -> Option<Db> {
        let Ok(base) = std::env::var(POSTGRES_ENV) else {
            static NOTE: Once = Once::new();
            NOTE.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED (postgres): set {POSTGRES_ENV} to run the config-as-code \
                     tests against Postgres, e.g. postgres://postgres@127.0.0.1:5432/test ***\n"
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
            postgres: true,
            dir: None,
            pg: Some((base, schema)),
        })
    }

    /// Runs SQL outside the store, in the test's database (and schema).
    pub async fn execute(&self, sql: &str) -> Result<(), String> {
        raw(&self.url, sql).await
    }

    pub async fn drop_schema(&self) {
        if let Some((base, schema)) = &self.pg {
            let _ = raw(base, &format!("DROP SCHEMA {schema} CASCADE")).await;
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Statements that lift the audit log's append-only protection.
    pub fn lift_audit_protection(&self) -> [&'static str; 2] {
        if self.postgres {
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

/// A provider and a model in the server's own file: documents may use them, not define them.
pub const SERVER_ENTRIES: &str = "providers:\n  base: { type: mock }\nmodels:\n  base-model: { targets: [ { provider: base, model: echo } ] }\n";

/// A running gateway and a client with the admin key.
pub struct Gw {
    pub server: Server,
    pub db: Db,
    pub client: reqwest::Client,
    /// The server's config text.
    pub yaml: String,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub content_type: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

impl Gw {
    /// A gateway on `db` with [`SERVER_ENTRIES`] plus `extra` (top-level YAML).
    pub async fn start(db: Db, extra: &str) -> Gw {
        secret_key_env();
        let yaml = format!(
            "listen: 127.0.0.1:0\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n{SERVER_ENTRIES}{extra}",
            db.url
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = ConfigSource::Text {
            name: "server.yaml".into(),
            text: yaml.clone(),
        };
        let server = serve::start(listener, source)
            .await
            .unwrap_or_else(|e| panic!("gateway does not start: {e:#}\n---\n{yaml}"));
        Gw {
            server,
            db,
            client: reqwest::Client::new(),
            yaml,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request to the gateway");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.expect("body");
        Reply {
            status,
            text,
            content_type,
        }
    }

    /// An admin API call with the admin key; `path` is below `/admin/v1`.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(&format!("/admin/v1{path}")))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    /// `POST /admin/v1/config/apply` with the document `doc` named `name`.
    pub async fn apply_named(&self, name: &str, doc: &str, dry_run: bool) -> Reply {
        let req = self
            .client
            .post(self.url(&format!(
                "/admin/v1/config/apply?dry_run={dry_run}&name={name}"
            )))
            .bearer_auth(ADMIN)
            .header("content-type", "application/yaml")
            .body(doc.to_owned());
        self.send(req).await
    }

    pub async fn apply(&self, doc: &str) -> Reply {
        self.apply_named("doc.yaml", doc, false).await
    }

    /// Applies `doc` and returns the changes as their diff lines; panics unless it succeeded.
    pub async fn apply_ok(&self, doc: &str) -> Vec<String> {
        let reply = self.apply(doc).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let json = reply.json();
        assert_eq!(json["applied"], true, "{json}");
        diff_lines(&json)
    }

    pub async fn export(&self) -> String {
        let reply = self
            .send(
                self.client
                    .get(self.url("/admin/v1/config/export"))
                    .bearer_auth(ADMIN),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            reply.content_type.starts_with("application/yaml"),
            "{reply:?}"
        );
        reply.text
    }

    /// The model aliases `GET /v1/models` lists for the admin key.
    pub async fn model_ids(&self) -> Vec<String> {
        let reply = self
            .send(self.client.get(self.url("/v1/models")).bearer_auth(ADMIN))
            .await;
        reply.json()["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The number of audit rows, through the admin API.
    pub async fn audit_count(&self) -> usize {
        let mut count = 0;
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/audit?limit=500".to_owned();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let reply = self.admin(reqwest::Method::GET, &path, None).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let json = reply.json();
            count += json["data"].as_array().map_or(0, Vec::len);
            match json["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return count,
            }
        }
    }

    pub async fn stop(self) -> Db {
        self.server.shutdown().await;
        self.db
    }
}

/// The `changes` of an apply answer as diff lines (`+ provider up`).
pub fn diff_lines(json: &Value) -> Vec<String> {
    json["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {json}"))
        .iter()
        .map(|c| {
            let mut line = format!(
                "{} {} {}",
                match c["op"].as_str() {
                    Some("create") => "+",
                    Some("update") => "~",
                    _ => "-",
                },
                c["kind"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            );
            if let Some(fields) = c["fields"].as_array() {
                let fields: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
                line.push_str(&format!(" ({})", fields.join(", ")));
            }
            line
        })
        .collect()
}

/// A file in the test's folder (SQLite) or the temp dir.
pub fn write_file(db: &Db, name: &str, text: &str) -> PathBuf {
    let dir = db.dir.clone().unwrap_or_else(|| {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The output of one run of the `switchboard` binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `switchboard ARGS` with `env` (plus the server's URL and admin key when `gw` is given)
/// and waits for it.
pub async fn run_cli(gw: Option<&Gw>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(args)
        .env_remove("SWITCHBOARD_URL")
        .env_remove("SWITCHBOARD_ADMIN_KEY")
        .env("RUST_LOG", "error")
        .kill_on_drop(true);
    if let Some(gw) = gw {
        cmd.env("SWITCHBOARD_URL", gw.base_url())
            .env("SWITCHBOARD_ADMIN_KEY", ADMIN);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the CLI finished within 60 s")
        .expect("the CLI runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits until `check` holds (the config rebuild after a stored change is asynchronous).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub fn path_str(path: &Path) -> String {
    path.display().to_string()
}
