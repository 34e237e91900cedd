//! The harness of the log API, analytics and alert tests: a gateway (the admin kit's `Env`,
//! with its OIDC side server for org-scoped tokens and webhook receiver) whose config has a
//! priced mock model `open`, a model `broken` whose only target refuses connections, and
//! whatever `extra` adds (e.g. `alerts:`); two organisations with a key each; calls with
//! chosen request ids and tags; waits on the usage writer, never on a clock.

#![allow(dead_code, reason = "each helper is used by some tests only")]

use super::admin_kit::{secret_key_env, Db, Env, Side, ADMIN, AUDIENCE};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use switchboard::runtime::ConfigSource;
use switchboard::serve;

/// Models: `open` (the built-in mock, $1 per million tokens either way) and `broken` (a
/// target on a port nothing listens on).
pub const ENTRIES: &str = "\
providers:
  mock: { type: mock }
  dead: { type: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: sk-dead }
models:
  open: { targets: [ { provider: mock, model: echo } ], price: { input_per_mtok: 1, output_per_mtok: 1 } }
  broken: { targets: [ { provider: dead, model: gpt-x } ] }
";

/// Starts a gateway on `db` with [`ENTRIES`] and `extra` (top-level YAML); `{hook}` in
/// `extra` becomes the side server's webhook receiver URL.
pub async fn start(db: Db, extra: &str) -> Env {
    secret_key_env();
    let side = Side::start().await;
    let extra = extra.replace("{hook}", &format!("{}/hook", side.url));
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n\
         access: {{ oidc: {{ issuer: \"{url}\", audience: {AUDIENCE}, jwks_url: \"{url}/jwks\" }} }}\n\
         {ENTRIES}{extra}",
        db.url,
        url = side.url
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = ConfigSource::Text {
        name: "observability.yaml".into(),
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

/// Two organisations, `acme` (team `red`) and `globex` (team `green`): their key secrets.
pub async fn two_orgs(env: &Env) -> (String, String) {
    env.seed_org("acme", &["red", "blue"], None).await;
    env.seed_org("globex", &["green"], None).await;
    let (_, a) = env.app_key("acme", "red").await;
    let (_, g) = env.app_key("globex", "green").await;
    (a, g)
}

/// A chat call with a request id and optional tags; returns the status.
pub async fn chat(env: &Env, key: &str, model: &str, request_id: &str, tags: Option<&str>) -> u16 {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]});
    let mut req = env
        .client
        .post(env.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", request_id)
        .header("user-agent", "obs-test/1")
        .json(&body);
    if let Some(tags) = tags {
        req = req.header("x-switchboard-tags", tags);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Waits until the gateway's usage writer committed `n` records (rollups are written in the
/// same transaction).
pub async fn wait_written(env: &Env, n: u64) {
    let writer = &env.server.runtime.usage_writer;
    let stats = tokio::time::timeout(Duration::from_secs(30), writer.wait_written(n))
        .await
        .unwrap_or_else(|_| panic!("{n} records not written: {:?}", writer.stats()));
    assert!(stats.written >= n, "writer stopped: {stats:?}");
}

/// A GET below `/admin/v1` with `cred`: (status, JSON or text as a JSON string).
pub async fn get(env: &Env, cred: &str, path: &str) -> (u16, Value) {
    let reply = env.call(Some(cred), Method::GET, path, None).await;
    let body = serde_json::from_str(&reply.text).unwrap_or(Value::String(reply.text.clone()));
    (reply.status, body)
}

/// A token of an owner of `org`.
pub fn owner(env: &Env, org: &str) -> String {
    env.side.token(
        &format!("owner-of-{org}"),
        json!({"org": org, "role": "owner"}),
    )
}

/// Unix ms now.
pub fn now_ms() -> i64 {
    switchboard_types::calendar::now_ms()
}
