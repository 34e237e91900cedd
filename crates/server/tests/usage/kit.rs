//! The harness of the usage, limit and budget tests: a database (a SQLite file, or a fresh
//! schema of the Postgres named by `SWITCHBOARD_TEST_POSTGRES`) that several gateways may
//! share, gateways on port 0 started from YAML, orgs and virtual keys made through the admin
//! API, chat calls in both client formats, the stored usage records (waited for on the usage
//! writer's counters, never on a clock), the Redis named by `SWITCHBOARD_TEST_REDIS`, and a
//! small receiver for budget alert webhooks.

#![allow(dead_code, reason = "each helper is used by some tests only")]

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use parking_lot::Mutex;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use switchboard::runtime::ConfigSource;
use switchboard::serve::{self, Server};
use switchboard_core::usage::UsageRecord;

pub const ADMIN: &str = "sk-usage-test-admin";
pub const REDIS_ENV: &str = "SWITCHBOARD_TEST_REDIS";

/// Prices in dollars per million tokens, every class different so that a token counted in the
/// wrong class changes the cost. $1 per million tokens is one micro-dollar per token.
pub const PRICE: &str = "{ input_per_mtok: \"2.5\", output_per_mtok: \"10\", \
     cached_input_per_mtok: \"1.25\", cache_write_per_mtok: \"3.75\", reasoning_per_mtok: \"12\" }";

/// A name no earlier run used: Redis counters outlive a test, and their keys include rule
/// names and subjects.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// The test Redis, or `None` after a loud note naming the skipped test.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var(REDIS_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED ({test}): set {REDIS_ENV} to run it, e.g. redis://127.0.0.1:6379 ***\n"
            );
            None
        }
    }
}

pub use super::db::Db;

/// The full config of a gateway on `db`: listen on port 0, the admin key, then `body`.
pub fn config(db: &Db, body: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n{body}",
        db.url
    )
}

/// Starts a gateway from `yaml` (as [`config`] makes it), or gives `Runtime::open`'s error.
pub async fn try_start(yaml: &str) -> anyhow::Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = ConfigSource::Text {
        name: "usage-test.yaml".into(),
        text: yaml.to_owned(),
    };
    serve::start(listener, source).await
}

/// A gateway and a client for it.
pub struct Gw {
    pub server: Server,
    pub client: reqwest::Client,
}

/// A virtual key: its id and secret.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

/// The client format of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `POST /v1/chat/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
}

/// One chat call.
#[derive(Clone, Debug)]
pub struct Call {
    pub format: Format,
    pub model: String,
    pub stream: bool,
    pub text: String,
    pub max_tokens: Option<u32>,
    pub tags: Option<String>,
    pub request_id: String,
}

impl Call {
    /// A JSON OpenAI-format call of `model` with a fresh request id.
    pub fn new(model: &str) -> Call {
        Call {
            format: Format::OpenAi,
            model: model.to_owned(),
            stream: false,
            text: "hello".to_owned(),
            max_tokens: None,
            tags: None,
            request_id: new_request_id(),
        }
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": self.text}],
            "stream": self.stream,
        });
        match (self.format, self.max_tokens) {
            (_, Some(max)) => body["max_tokens"] = json!(max),
            // Anthropic's API requires max_tokens.
            (Format::Anthropic, None) => body["max_tokens"] = json!(1024),
            (Format::OpenAi, None) => {}
        }
        body
    }

    pub fn path(&self) -> &'static str {
        match self.format {
            Format::OpenAi => "/v1/chat/completions",
            Format::Anthropic => "/v1/messages",
        }
    }
}

/// Reads a stream until `needle` has arrived, then drops it (the client goes away). Returns
/// the text received.
pub async fn read_until_then_leave(resp: reqwest::Response, needle: &str) -> String {
    let mut resp = resp;
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(30), resp.chunk())
            .await
            .expect("stream chunk")
            .expect("stream readable")
            .expect("stream not over yet");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(resp);
    seen
}

pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4().simple())
}

/// A finished answer: status, headers, body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            text,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of an OpenAI-format error.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Gw {
    /// Starts a gateway on `db` with `body` (providers, models, limits ...).
    pub async fn start(db: &Db, body: &str) -> Gw {
        let yaml = config(db, body);
        let server = try_start(&yaml)
            .await
            .unwrap_or_else(|e| panic!("gateway does not start: {e:#}\n---\n{yaml}"));
        Gw {
            server,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    /// An admin API call (below `/admin/v1`) that must answer `status`.
    pub async fn admin(&self, path: &str, body: Value, status: u16) -> Value {
        let resp = self
            .client
            .post(self.url(&format!("/admin/v1{path}")))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let reply = Reply::read(resp).await;
        assert_eq!(reply.status, status, "POST {path}: {}", reply.text);
        reply.json()
    }

    /// Creates `org` (unless `org_exists`) and in it `team` with the app `<team>-app`.
    pub async fn seed_team(&self, org: &str, team: &str, org_exists: bool) {
        if !org_exists {
            self.admin("/orgs", json!({"name": org}), 201).await;
        }
        self.admin(&format!("/orgs/{org}/teams"), json!({"name": team}), 201)
            .await;
        let app = json!({"name": format!("{team}-app")});
        self.admin(&format!("/orgs/{org}/teams/{team}/apps"), app, 201)
            .await;
    }

    /// A new key of `<team>-app` in `org`.
    pub async fn key(&self, org: &str, team: &str) -> Key {
        let body = json!({"team": team, "app": format!("{team}-app"), "name": "usage test"});
        let created = self.admin(&format!("/orgs/{org}/keys"), body, 201).await;
        Key {
            id: created["id"].as_str().unwrap().to_owned(),
            secret: created["secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Sends `call` with `cred` (a key's secret or the admin key) and returns the response
    /// unread (streams, cancellation).
    pub async fn send(&self, cred: &str, call: &Call) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(call.path()))
            .header("x-request-id", &call.request_id)
            .json(&call.body());
        req = match call.format {
            Format::OpenAi => req.bearer_auth(cred),
            Format::Anthropic => req
                .header("x-api-key", cred)
                .header("anthropic-version", "2023-06-01"),
        };
        if let Some(tags) = &call.tags {
            req = req.header("x-switchboard-tags", tags);
        }
        req.send().await.expect("request to the gateway")
    }

    /// Sends `call` and reads the whole answer.
    pub async fn call(&self, cred: &str, call: &Call) -> Reply {
        Reply::read(self.send(cred, call).await).await
    }

    /// A JSON OpenAI-format chat of `model` with `cred`.
    pub async fn chat(&self, cred: &str, model: &str) -> Reply {
        self.call(cred, &Call::new(model)).await
    }

    /// Waits until this gateway's writer committed `n` records in all.
    pub async fn wait_records(&self, n: u64) {
        let writer = &self.server.runtime.usage_writer;
        let stats = tokio::time::timeout(Duration::from_secs(30), writer.wait_written(n))
            .await
            .unwrap_or_else(|_| panic!("{n} usage records not written: {:?}", writer.stats()));
        assert!(stats.written >= n, "the writer stopped: {stats:?}");
    }

    /// The stored records of one request.
    pub async fn records_of(&self, request_id: &str) -> Vec<UsageRecord> {
        self.server
            .runtime
            .store
            .usage_by_request(request_id)
            .await
            .unwrap()
    }

    /// The one stored record of a request (after [`Gw::wait_records`]).
    pub async fn record(&self, request_id: &str) -> UsageRecord {
        let mut records = self.records_of(request_id).await;
        assert_eq!(records.len(), 1, "records of {request_id}: {records:#?}");
        records.remove(0)
    }

    /// Waits until every limit settlement queued so far is done (and its alerts delivered).
    pub async fn settled(&self) {
        tokio::time::timeout(
            Duration::from_secs(30),
            self.server.gateway.limits().flush(),
        )
        .await
        .expect("limit settlements finish");
    }
}

/// Request windows are fixed and aligned to the minute: a burst that straddles a boundary meets
/// two windows and may rightly admit twice the limit. When the current minute has less than
/// ten seconds left, this waits for the next one, so that one burst meets one window. (Not a
/// synchronisation: nothing is waited for but the wall clock's minute.)
pub async fn clear_of_minute_boundary() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = u64::try_from(now.as_millis() % 60_000).unwrap();
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis(60_000 - into + 100)).await;
    }
}

/// The minute window a moment falls in, for checking a burst stayed within one.
pub fn minute_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        / 60_000
}

// ---------------------------------------------------------------- the alert receiver

/// Receives `limits.alert_webhook` deliveries at `/alerts`.
pub struct Hooks {
    pub url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hooks {
    pub async fn start() -> Hooks {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/alerts", post(receive))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Hooks { url, seen, task }
    }

    /// Deliveries so far. Alerts are sent by the settle worker before it reports a settlement
    /// done, so after [`Gw::settled`] this is complete.
    pub fn seen(&self) -> Vec<Value> {
        self.seen.lock().clone()
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(seen): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>) {
    seen.lock().push(body);
}
