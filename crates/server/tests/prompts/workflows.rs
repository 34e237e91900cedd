//! Workflow APIs end to end: steps in sequence, a DAG whose independent steps must meet (so
//! they provably run concurrently), HTTP steps against a small axum server in the test, a
//! failing middle step that stops the run, a per-step timeout, and the usage records (one per
//! step's model call plus the run's own record of kind `workflow`).

use super::kit::{Db, Gw, Key, Reply};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::usage::CallKind;

/// Spans received by a minimal OTLP/HTTP collector.
type Spans = Arc<parking_lot::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>;

async fn start_collector() -> (String, Spans) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    let spans: Spans = Arc::default();
    let sink = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            let mut got = sink.lock();
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    got.extend(scope.spans);
                }
            }
            Vec::<u8>::new()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

/// What the test's HTTP server saw.
#[derive(Default)]
struct Seen {
    echo_hits: AtomicUsize,
    fail_hits: AtomicUsize,
    token: parking_lot::Mutex<Option<String>>,
    /// Two `/meet/{who}` calls wait for each other here.
    barrier: Option<Arc<tokio::sync::Barrier>>,
}

/// `POST /echo` answers `{"got": <body>}`; `/fail` answers 500; `/meet/{who}` answers
/// `{"who": who}` once two meet calls are in (else 500 after 5 s); `/text` answers plain text.
async fn start_server() -> (String, Arc<Seen>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Seen {
        barrier: Some(Arc::new(tokio::sync::Barrier::new(2))),
        ..Seen::default()
    });
    let app = Router::new()
        .route("/echo", post(echo))
        .route("/fail", any(fail))
        .route("/meet/{who}", any(meet))
        .route("/text", any(|| async { "plain words" }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, task)
}

async fn echo(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    seen.echo_hits.fetch_add(1, Ordering::SeqCst);
    *seen.token.lock() = headers
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Json(json!({"got": body}))
}

async fn fail(State(seen): State<Arc<Seen>>) -> (StatusCode, &'static str) {
    seen.fail_hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
}

async fn meet(State(seen): State<Arc<Seen>>, Path(who): Path<String>) -> (StatusCode, Json<Value>) {
    let Some(barrier) = seen.barrier.clone() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({})));
    };
    match tokio::time::timeout(Duration::from_secs(5), barrier.wait()).await {
        Ok(_) => (StatusCode::OK, Json(json!({"who": who}))),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"alone": who})),
        ),
    }
}

fn config(server: &str, extra: &str) -> String {
    format!(
        r#"{extra}providers:
  mock: {{ type: mock }}
  slow: {{ type: mock, latency_ms: 3000 }}
models:
  m-echo: {{ targets: [ {{ provider: mock, model: echo }} ] }}
  m-slow: {{ targets: [ {{ provider: slow, model: echo }} ] }}
prompts:
  greet:
    variables: {{ type: object, properties: {{ name: {{ type: string }} }}, required: [name] }}
    versions: [ {{ version: 1, user: "Hi {{{{ name }}}}" }} ]
    labels: {{ production: 1 }}
  shout:
    variables: {{ type: object, properties: {{ text: {{ type: string }} }}, required: [text] }}
    versions: [ {{ version: 1, user: "{{{{ text | upper }}}}" }} ]
    labels: {{ production: 1 }}
apis:
  chain:
    status: published
    steps:
      - {{ id: hello, prompt: greet, model: m-echo }}
      - {{ id: loud, prompt: shout, model: m-echo, variables: {{ text: "{{{{ hello }}}}" }} }}
  fan:
    status: published
    output: join
    steps:
      - {{ id: a, http: {{ url: "{server}/meet/ann" }}, needs: [] }}
      - {{ id: b, http: {{ url: "{server}/meet/bob" }}, needs: [] }}
      - {{ id: join, prompt: shout, model: m-echo, needs: [a, b], variables: {{ text: "{{{{ a.who }}}}+{{{{ b.who }}}}" }} }}
  lookup:
    status: published
    steps:
      - {{ id: fetch, http: {{ url: "{server}/echo", headers: {{ x-token: secret-1 }} }} }}
      - {{ id: words, http: {{ url: "{server}/text", method: GET }} }}
      - {{ id: hi, prompt: greet, model: m-echo, needs: [fetch, words], variables: {{ name: "{{{{ fetch.got.name }}}} ({{{{ words }}}})" }} }}
  broken:
    status: published
    steps:
      - {{ id: first, prompt: greet, model: m-echo }}
      - {{ id: fail, http: {{ url: "{server}/fail" }} }}
      - {{ id: last, http: {{ url: "{server}/echo" }} }}
  sleepy:
    status: published
    steps:
      - {{ id: quick, prompt: greet, model: m-echo }}
      - {{ id: slow, prompt: greet, model: m-slow, timeout_ms: 100, variables: {{ name: "x" }} }}
      - {{ id: after, http: {{ url: "{server}/echo" }} }}
  checked:
    status: published
    output_schema: {{ type: object, required: [got] }}
    steps: [ {{ id: fetch, http: {{ url: "{server}/echo" }} }} ]
  mismatched:
    status: published
    output_schema: {{ type: object, required: [missing] }}
    steps: [ {{ id: fetch, http: {{ url: "{server}/echo" }} }} ]
  bounded:
    status: published
    timeout_ms: 150
    steps:
      - {{ id: quick, prompt: greet, model: m-echo }}
      - {{ id: slow, prompt: greet, model: m-slow, variables: {{ name: "x" }} }}
"#
    )
}

struct Env {
    gw: Gw,
    key: Key,
    seen: Arc<Seen>,
    _server: tokio::task::JoinHandle<()>,
    _db: Db,
}

async fn env() -> Env {
    env_with("").await
}

/// A gateway with `extra` config sections (telemetry) before the test's own.
async fn env_with(extra: &str) -> Env {
    let db = Db::sqlite();
    let (url, seen, server) = start_server().await;
    let gw = Gw::start(&db, &config(&url, extra)).await;
    gw.seed_team("acme", "research", false).await;
    let key = gw.key("acme", "research").await;
    Env {
        gw,
        key,
        seen,
        _server: server,
        _db: db,
    }
}

async fn run(gw: &Gw, key: &Key, api: &str, body: Value, request_id: &str) -> Reply {
    let resp = gw
        .client
        .post(gw.url(&format!("/apis/{api}")))
        .bearer_auth(&key.secret)
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .unwrap();
    Reply::read(resp).await
}

fn step<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}: {body}"))
}

#[tokio::test]
async fn a_sequence_feeds_each_step_the_previous_output_and_records_every_call() {
    let Env { gw, key, .. } = env().await;
    let reply = run(&gw, &key, "chain", json!({"name": "Ada"}), "run-chain").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["output"], "echo: ECHO: HI ADA");
    assert_eq!(body["version"], "chain@v1");
    assert_eq!(body["api_version"], "v1");
    assert_eq!(step(&body, "hello")["output"], "echo: Hi Ada");
    assert_eq!(step(&body, "hello")["version"], "greet@1");
    assert_eq!(step(&body, "loud")["status"], "ok");
    let sum: u64 = ["hello", "loud"]
        .iter()
        .map(|id| step(&body, id)["usage"]["total_tokens"].as_u64().unwrap())
        .sum();
    assert!(sum > 0);
    assert_eq!(body["usage"]["total_tokens"].as_u64().unwrap(), sum);

    // Two step records and the run's own, with zero tokens.
    gw.wait_records(3).await;
    for id in ["hello", "loud"] {
        let record = gw.record(&format!("run-chain.{id}")).await;
        assert_eq!(record.kind, CallKind::Chat);
        assert!(record.usage.total_tokens() > 0);
        for tag in [("api", "chain@v1"), ("step", id), ("workflow", "run-chain")] {
            let tag = (tag.0.to_owned(), tag.1.to_owned());
            assert!(record.tags.contains(&tag), "{tag:?} in {:?}", record.tags);
        }
    }
    let run = gw.record("run-chain").await;
    assert_eq!(run.kind, CallKind::Workflow);
    assert_eq!(run.usage.total_tokens(), 0);
    assert_eq!(run.cost.0, 0);
    assert_eq!(run.status, 200);
    assert_eq!(run.alias, "chain@v1");
    assert!(run.tags.contains(&("api".into(), "chain@v1".into())));
}

#[tokio::test]
async fn independent_steps_run_concurrently() {
    let Env { gw, key, .. } = env().await;
    // `a` and `b` only answer once both are in: run one after the other, they would fail.
    let reply = run(&gw, &key, "fan", json!({}), "run-fan").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(step(&body, "a")["output"], json!({"who": "ann"}));
    assert_eq!(step(&body, "b")["output"], json!({"who": "bob"}));
    assert_eq!(body["output"], "echo: ANN+BOB");
    assert_eq!(step(&body, "a")["usage"]["total_tokens"], 0);
}

#[tokio::test]
async fn http_steps_post_variables_with_headers_and_read_json_or_text() {
    let Env { gw, key, seen, .. } = env().await;
    let reply = run(&gw, &key, "lookup", json!({"name": "Ada"}), "run-lookup").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        step(&body, "fetch")["output"],
        json!({"got": {"name": "Ada"}})
    );
    assert_eq!(step(&body, "words")["output"], "plain words");
    assert_eq!(body["output"], "echo: Hi Ada (plain words)");
    assert_eq!(seen.token.lock().as_deref(), Some("secret-1"));
}

#[tokio::test]
async fn a_failed_middle_step_stops_the_run_and_is_named() {
    let Env { gw, key, seen, .. } = env().await;
    let reply = run(&gw, &key, "broken", json!({"name": "Ada"}), "run-broken").await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.code(), "workflow_step_failed");
    assert!(reply.message().contains("`fail`"), "{}", reply.message());
    assert_eq!(seen.fail_hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        seen.echo_hits.load(Ordering::SeqCst),
        0,
        "the step after never ran"
    );
    // The first step's record and the failed run's.
    gw.wait_records(2).await;
    assert_eq!(gw.records_of("run-broken.first").await.len(), 1);
    let run = gw.record("run-broken").await;
    assert_eq!(run.kind, CallKind::Workflow);
    assert_eq!(run.status, 502);
    assert_eq!(run.error_code.as_deref(), Some("workflow_step_failed"));
}

#[tokio::test]
async fn a_step_over_its_timeout_fails_the_run_with_504() {
    let Env { gw, key, seen, .. } = env().await;
    let started = std::time::Instant::now();
    let reply = run(&gw, &key, "sleepy", json!({"name": "Ada"}), "run-sleepy").await;
    assert_eq!(reply.status, 504, "{}", reply.text);
    assert_eq!(reply.code(), "workflow_step_failed");
    assert!(reply.message().contains("`slow`"), "{}", reply.message());
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.echo_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_api_timeout_bounds_the_whole_run() {
    let Env { gw, key, .. } = env().await;
    let started = std::time::Instant::now();
    let reply = run(&gw, &key, "bounded", json!({"name": "Ada"}), "run-bounded").await;
    assert_eq!(reply.status, 504, "{}", reply.text);
    assert_eq!(reply.code(), "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    // The run is recorded as failed, the step in flight as cancelled.
    gw.wait_records(3).await;
    let run = gw.record("run-bounded").await;
    assert_eq!(run.status, 504, "{run:?}");
    let slow = gw.record("run-bounded.slow").await;
    assert_eq!(slow.outcome, switchboard_core::usage::Outcome::Cancelled);
}

#[tokio::test]
async fn the_run_span_is_the_parent_of_each_steps_span() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let (collector, spans) = start_collector().await;
    let telemetry = format!(
        "telemetry:\n  service_name: sb-wf\n  otlp: {{ endpoint: \"{collector}\", batch_delay_ms: 20 }}\n"
    );
    let Env { gw, key, .. } = env_with(&telemetry).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let resp = gw
        .client
        .post(gw.url("/apis/chain"))
        .bearer_auth(&key.secret)
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // The run's span, two steps' spans and one attempt span per step.
    let mut server = Vec::new();
    for _ in 0..3000 {
        server = spans
            .lock()
            .iter()
            .filter(|s| hex(&s.trace_id) == trace_id && s.kind == SpanKind::Server as i32)
            .cloned()
            .collect::<Vec<_>>();
        if server.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.len(), 3, "{server:#?}");
    let run = server
        .iter()
        .find(|s| s.name == "workflow chain@v1")
        .unwrap_or_else(|| panic!("no run span: {server:#?}"));
    assert_eq!(hex(&run.parent_span_id), parent);
    for step in server.iter().filter(|s| s.name != "workflow chain@v1") {
        assert_eq!(step.name, "chat m-echo");
        assert_eq!(step.parent_span_id, run.span_id, "{step:#?}");
    }
}

#[tokio::test]
async fn the_output_schema_checks_the_output_step() {
    let Env { gw, key, .. } = env().await;
    let reply = run(&gw, &key, "checked", json!({"a": 1}), "run-checked").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["output"], json!({"got": {"a": 1}}));
    let reply = run(&gw, &key, "mismatched", json!({"a": 1}), "run-mismatched").await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.code(), "workflow_step_failed");
    assert!(reply.message().contains("missing"), "{}", reply.message());
}

#[tokio::test]
async fn a_workflow_streams_its_answer_once_it_is_whole() {
    let Env { gw, key, .. } = env().await;
    let reply = run(
        &gw,
        &key,
        "chain",
        json!({"name": "Ada", "stream": true}),
        "run-stream",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let data: Vec<&str> = reply
        .text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{}", reply.text);
    let last: Value = serde_json::from_str(data[data.len() - 2]).unwrap();
    assert!(last["steps"].is_array(), "{last}");
    assert!(!last["output"].is_null(), "{last}");
}
