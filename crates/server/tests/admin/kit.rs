//! The harness of the admin API tests: a gateway on port 0 with a database of its own (a SQLite
//! file, or a fresh schema of the Postgres named by `SWITCHBOARD_TEST_POSTGRES`), a local "side"
//! server that plays the OIDC issuer (a JWKS) and the approval webhook's receiver, tokens signed
//! with an Ed25519 test key, and helpers for calls and fixtures.

#![allow(dead_code, reason = "each helper is used by some tests only")]

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Once};
use switchboard::runtime::ConfigSource;
use switchboard::serve::{self, Server};

pub const ADMIN: &str = "sk-test-admin-api";
pub const AUDIENCE: &str = "switchboard";
pub const POSTGRES_ENV: &str = "SWITCHBOARD_TEST_POSTGRES";

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
                    cleanup.drop().await;
                }
            }
        }
    )+};
}
pub(crate) use both;

/// base64 of 32 bytes of 42: the key stored provider API keys are encrypted with (the same
/// value the config-as-code tests in this binary use).
pub const SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// The server reads `SWITCHBOARD_SECRET_KEY` from its environment: set once, before the first
/// server starts.
pub fn secret_key_env() {
    static SET: Once = Once::new();
    SET.call_once(|| std::env::set_var("SWITCHBOARD_SECRET_KEY", SECRET_KEY));
}

/// One database for one test.
#[derive(Clone, Debug)]
pub struct Db {
    /// What the server's `database:` says.
    pub url: String,
    dir: Option<PathBuf>,
    /// Postgres: the database URL without the schema, and the schema.
    pg: Option<(String, String)>,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(format!("sb-admin-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Db {
            url: format!("sqlite://{}", dir.join("db.sqlite").display()),
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
                    "\n*** SKIPPED (postgres): set {POSTGRES_ENV} to run the admin API tests \
                     against Postgres too, e.g. postgres://postgres@127.0.0.1:5432/test ***\n"
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

    /// Postgres only: the base URL and this test's schema.
    pub fn postgres_parts(&self) -> Option<(&str, &str)> {
        self.pg
            .as_ref()
            .map(|(base, schema)| (base.as_str(), schema.as_str()))
    }

    /// Runs raw SQL on `url` (tests that break or tamper with storage).
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

// ---------------------------------------------------------------- the side server

/// What the side server saw and serves.
#[derive(Default)]
struct SideState {
    jwks: Value,
    hooks: Vec<Value>,
}

/// The OIDC issuer's JWKS at `/jwks` and the approval webhook's receiver at `/hook`.
pub struct Side {
    pub url: String,
    state: Arc<Mutex<SideState>>,
    key: EncodingKey,
    task: tokio::task::JoinHandle<()>,
}

impl Side {
    pub async fn start() -> Side {
        // An Ed25519 key from a fixed seed: PKCS#8 v1 is a fixed 16-byte prefix and the seed.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&[7u8; 32]);
        let key = EncodingKey::from_ed_der(&der);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
        jwk.common.key_id = Some("test-1".to_owned());
        let state = Arc::new(Mutex::new(SideState {
            jwks: serde_json::to_value(JwkSet { keys: vec![jwk] }).unwrap(),
            hooks: Vec::new(),
        }));
        let app = Router::new()
            .route("/jwks", get(jwks))
            .route("/hook", post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Side {
            url,
            state,
            key,
            task,
        }
    }

    /// A token for `sub` with these extra claims (e.g. `{"org": "acme", "role": "admin"}`).
    pub fn token(&self, sub: &str, claims: Value) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut all = json!({
            "iss": self.url, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600,
        });
        if let (Some(all), Value::Object(extra)) = (all.as_object_mut(), claims) {
            all.extend(extra);
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("test-1".to_owned());
        jsonwebtoken::encode(&header, &all, &self.key).unwrap()
    }

    /// The webhook deliveries so far.
    pub fn hooks(&self) -> Vec<Value> {
        self.state.lock().hooks.clone()
    }

    /// Waits until `n` webhook deliveries arrived and returns them.
    pub async fn wait_hooks(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let hooks = self.hooks();
            if hooks.len() >= n {
                return hooks;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("expected {n} webhook deliveries, got {:?}", self.hooks());
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks(State(state): State<Arc<Mutex<SideState>>>) -> Json<Value> {
    Json(state.lock().jwks.clone())
}

async fn hook(State(state): State<Arc<Mutex<SideState>>>, Json(body): Json<Value>) {
    state.lock().hooks.push(body);
}

// ---------------------------------------------------------------- the gateway

/// A provider and models in the server's own file: `open` needs no approval, `gated` does.
pub const SERVER_ENTRIES: &str = "\
providers:
  mock: { type: mock }
models:
  open: { targets: [ { provider: mock, model: echo } ] }
  gated: { requires_approval: true, targets: [ { provider: mock, model: echo } ] }
  other: { targets: [ { provider: mock, model: echo } ] }
";

/// A running gateway, its side server and a client.
pub struct Env {
    pub server: Server,
    pub side: Side,
    pub db: Db,
    pub client: reqwest::Client,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    /// `error.code`.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `error.message`.
    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `data` of a page.
    pub fn data(&self) -> Vec<Value> {
        self.json()["data"].as_array().cloned().unwrap_or_default()
    }
}

impl Env {
    /// A gateway on `db` with [`SERVER_ENTRIES`], OIDC and the webhook pointed at the side server.
    pub async fn start(db: Db) -> Env {
        Env::with(db, "").await
    }

    /// [`Env::start`] with `access_extra` added to the `access:` mapping (e.g.
    /// `, rotation_grace_ms: 1000`).
    pub async fn with(db: Db, access_extra: &str) -> Env {
        secret_key_env();
        let side = Side::start().await;
        let yaml = format!(
            "listen: 127.0.0.1:0\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n\
             access: {{ approval_webhook: \"{url}/hook\", oidc: {{ issuer: \"{url}\", \
             audience: {AUDIENCE}, jwks_url: \"{url}/jwks\" }}{access_extra} }}\n{SERVER_ENTRIES}",
            db.url,
            url = side.url
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = ConfigSource::Text {
            name: "server.yaml".into(),
            text: yaml.clone(),
        };
        let server = serve::start(listener, source)
            .await
            .unwrap_or_else(|e| panic!("gateway does not start: {e:#}\n---\n{yaml}"));
        Env {
            server,
            side,
            db,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request to the gateway");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        Reply { status, text }
    }

    /// An admin call (`path` below `/admin/v1`) with `cred` as the Bearer credential.
    pub async fn call(
        &self,
        cred: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(&format!("/admin/v1{path}")));
        if let Some(cred) = cred {
            req = req.bearer_auth(cred);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    /// An admin call with a raw body.
    pub async fn call_raw(&self, cred: &str, method: Method, path: &str, body: &str) -> Reply {
        let req = self
            .client
            .request(method, self.url(&format!("/admin/v1{path}")))
            .bearer_auth(cred)
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.send(req).await
    }

    /// An admin call with the admin key.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(Some(ADMIN), method, path, body).await
    }

    /// An admin call with the admin key that must answer `status`; returns the JSON body.
    pub async fn admin_ok(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        let body = (method != Method::GET && method != Method::DELETE).then_some(body);
        let reply = self.admin(method.clone(), path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        if reply.text.is_empty() {
            Value::Null
        } else {
            reply.json()
        }
    }

    /// `POST /v1/chat/completions` for `model` with `key`.
    pub async fn chat(&self, key: &str, model: &str) -> Reply {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        let req = self
            .client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body);
        self.send(req).await
    }

    /// The aliases `GET /v1/models` lists for `key`.
    pub async fn model_ids(&self, key: &str) -> Vec<String> {
        let reply = self
            .send(self.client.get(self.url("/v1/models")).bearer_auth(key))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply
            .data()
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// Creates org `org` with teams, each with one app `<team>-app` (allowed `models`, null =
    /// all).
    pub async fn seed_org(&self, org: &str, teams: &[&str], models: Option<Value>) {
        self.admin_ok(Method::POST, "/orgs", json!({"name": org}), 201)
            .await;
        for team in teams {
            self.admin_ok(
                Method::POST,
                &format!("/orgs/{org}/teams"),
                json!({"name": team}),
                201,
            )
            .await;
            let mut app = json!({"name": format!("{team}-app")});
            if let Some(models) = &models {
                app["models"] = models.clone();
            }
            self.admin_ok(
                Method::POST,
                &format!("/orgs/{org}/teams/{team}/apps"),
                app,
                201,
            )
            .await;
        }
    }

    /// A key of `<team>-app` in `org`: (id, secret).
    pub async fn app_key(&self, org: &str, team: &str) -> (String, String) {
        let created = self
            .admin_ok(
                Method::POST,
                &format!("/orgs/{org}/keys"),
                json!({"team": team, "app": format!("{team}-app"), "name": "test key"}),
                201,
            )
            .await;
        (
            created["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}
