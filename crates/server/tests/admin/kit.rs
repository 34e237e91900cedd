//! The harness of the admin API, config-as-code and CLI tests: a gateway on port 0 with a
//! database of its own (a SQLite file, or a fresh schema of the Postgres named by
//! `SWITCHBOARD_TEST_POSTGRES`), a local "side" server that plays the OIDC issuer (a JWKS) and
//! the approval webhook's receiver, tokens signed with an Ed25519 test key, helpers for calls
//! and fixtures, raw SQL for tampering, and a way to run the `switchboard` binary against the
//! server.

#![allow(dead_code, reason = "each helper is used by some tests only")]

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use switchboard::runtime::ConfigSource;
use switchboard::serve::{self, Server};

pub const ADMIN: &str = "sk-test-admin-api";
pub const AUDIENCE: &str = "switchboard";

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

/// base64 of 32 bytes of 42: the key stored provider API keys are encrypted with.
pub const SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// The server reads `SWITCHBOARD_SECRET_KEY` from its environment: set once, before the first
/// server starts.
pub fn secret_key_env() {
    static SET: Once = Once::new();
    SET.call_once(|| std::env::set_var("SWITCHBOARD_SECRET_KEY", SECRET_KEY));
}

pub use super::db::Db;

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

/// A provider and a model in the server's own file for the config-as-code tests: documents may
/// use them, not define them.
pub const CONFIG_ENTRIES: &str = "providers:\n  base: { type: mock }\nmodels:\n  base-model: { targets: [ { provider: base, model: echo } ] }\n";

/// A running gateway, its side server and a client.
pub struct Env {
    pub server: Server,
    pub side: Side,
    pub db: Db,
    pub client: reqwest::Client,
    /// The server's config text.
    pub yaml: String,
}

/// An answer: status, body and content type.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub content_type: String,
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
        Env::launch(db, side, yaml).await
    }

    /// A gateway on `db` for the config-as-code and CLI tests: [`CONFIG_ENTRIES`] plus `extra`
    /// (top-level YAML), no `access:` section.
    pub async fn config(db: Db, extra: &str) -> Env {
        secret_key_env();
        let side = Side::start().await;
        let yaml = format!(
            "listen: 127.0.0.1:0\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n{CONFIG_ENTRIES}{extra}",
            db.url
        );
        Env::launch(db, side, yaml).await
    }

    pub async fn launch(db: Db, side: Side, yaml: String) -> Env {
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

    /// The model aliases `GET /v1/models` lists for the admin key (no status check).
    pub async fn admin_model_ids(&self) -> Vec<String> {
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
            let reply = self.admin(Method::GET, &path, None).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let json = reply.json();
            count += json["data"].as_array().map_or(0, Vec::len);
            match json["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return count,
            }
        }
    }

    /// Stops the gateway and hands back its database.
    pub async fn stop(self) -> Db {
        self.server.shutdown().await;
        self.db
    }
}

// ---------------------------------------------------------------- config-as-code and the CLI

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
    let dir = db.folder().map(Path::to_path_buf).unwrap_or_else(|| {
        let dir = std::env::temp_dir().join(format!("sb-admin-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn path_str(path: &Path) -> String {
    path.display().to_string()
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
pub async fn run_cli(gw: Option<&Env>, args: &[&str], env: &[(&str, &str)]) -> Run {
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
