//! `/metrics` parses as Prometheus text and its counters match the traffic sent: requests by
//! alias, target, status class and code; latency and time-to-first-token histograms; tokens
//! and cost; retries and fallbacks; refusals before admission; the circuit gauge. The recorder
//! is process-wide (other tests of this binary count into it too), so every test uses aliases
//! and upstream models of its own and compares scrapes taken before and after.

use super::kit::{unique, Call, Db, Gw, ADMIN, PRICE};
use prometheus_parse::{Scrape, Value};
use std::collections::HashMap;
use std::time::Duration;
use switchboard_store::BodyStats;
use switchboard_testkit::{MockKind, MockProvider, Reply as MockReply};

/// One parsed scrape.
struct Metrics(Scrape);

impl Metrics {
    async fn scrape(gw: &Gw) -> Metrics {
        let resp = gw.client.get(gw.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = resp.text().await.unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        Metrics(Scrape::parse(lines).expect("Prometheus text"))
    }

    /// The value of the sample `name` whose labels include `labels` (summed over the rest);
    /// for a histogram, its count. 0 when there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                Value::Summary(_) => panic!("{name} renders as a summary: buckets are missing"),
            })
            .sum()
    }

    /// Every label set of `name` that includes `labels`.
    fn label_sets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<HashMap<String, String>> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| (*s.labels).clone())
            .collect()
    }
}

/// Gateways of these tests: one OpenAI mock behind `ok` (priced, retries once), `fails`
/// (a target that fails, falling back to `ok`) and `fragile` (a circuit that opens on the first
/// failure, no retries).
struct Setup {
    gw: Gw,
    up: MockProvider,
    flaky: MockProvider,
    ok: String,
    fails: String,
    fragile: String,
    model: String,
    flaky_model: String,
    _db: Db,
}

async fn setup() -> Setup {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let flaky = MockProvider::start(MockKind::OpenAi).await;
    let (ok, fails, fragile) = (unique("ok"), unique("fails"), unique("fragile"));
    let (model, flaky_model) = (unique("gpt"), unique("gpt-flaky"));
    let db = Db::sqlite();
    let body = format!(
        "providers:\n\
         \x20 up: {{ type: openai, base_url: \"{up}\", api_key: sk-up }}\n\
         \x20 flaky: {{ type: openai, base_url: \"{flaky}\", api_key: sk-up }}\n\
         models:\n\
         \x20 {ok}: {{ targets: [ {{ provider: up, model: {model} }} ], retry: {{ attempts: 1, backoff_ms: 1, max_backoff_ms: 1 }}, price: {PRICE} }}\n\
         \x20 {fails}: {{ targets: [ {{ provider: flaky, model: {flaky_model} }} ], retry: {{ attempts: 0 }}, circuit: {{ failures: 100 }}, fallbacks: [{ok}], price: {PRICE} }}\n\
         \x20 {fragile}: {{ targets: [ {{ provider: flaky, model: {flaky_model}-fragile }} ], retry: {{ attempts: 0 }}, circuit: {{ failures: 1, cooldown_ms: 600000 }} }}\n",
        up = up.base_url(),
        flaky = flaky.base_url(),
    );
    Setup {
        gw: Gw::start(&db, &body).await,
        up,
        flaky,
        ok,
        fails,
        fragile,
        model,
        flaky_model,
        _db: db,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_histograms_match_the_traffic() {
    let s = setup().await;
    let gw = &s.gw;
    let target = format!("up/{}", s.model);
    let before = Metrics::scrape(gw).await;

    // 3 served whole, 1 served as a stream, 2 rejected by the provider (400, not retried).
    let mut ids = Vec::new();
    for _ in 0..3 {
        let call = Call::new(&s.ok);
        assert_eq!(gw.call(ADMIN, &call).await.status, 200);
        ids.push(call.request_id);
    }
    let stream = Call {
        stream: true,
        ..Call::new(&s.ok)
    };
    let reply = gw.call(ADMIN, &stream).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    ids.push(stream.request_id);
    for _ in 0..2 {
        s.up.enqueue(MockReply::Error {
            status: 400,
            retry_after_secs: None,
        });
        let call = Call::new(&s.ok);
        let reply = gw.call(ADMIN, &call).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        ids.push(call.request_id);
    }
    gw.wait_records(6).await;

    let after = Metrics::scrape(gw).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let ok = s.ok.as_str();
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[
                ("alias", ok),
                ("target", &target),
                ("status", "2xx"),
                ("code", "none")
            ]
        ),
        4.0
    );
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[
                ("alias", ok),
                ("status", "4xx"),
                ("code", "upstream_rejected_request")
            ]
        ),
        2.0
    );
    // Every series of the alias is one of those two: no other label values appeared.
    assert_eq!(
        after
            .label_sets("switchboard_requests_total", &[("alias", ok)])
            .len(),
        2
    );
    assert_eq!(
        delta("switchboard_request_duration_seconds", &[("alias", ok)]),
        6.0
    );
    assert_eq!(
        delta("switchboard_time_to_first_token_seconds", &[("alias", ok)]),
        1.0
    );
    assert_eq!(
        delta(
            "switchboard_upstream_duration_seconds",
            &[("target", &target), ("outcome", "ok")]
        ),
        4.0
    );
    assert_eq!(
        delta(
            "switchboard_upstream_duration_seconds",
            &[("target", &target), ("outcome", "error")]
        ),
        2.0
    );
    // Tokens and cost are what the usage records bill: the mock's echo reports 10 input and
    // 5 output tokens per answer (the stream too), and the rejected calls are billed an
    // estimate of their input.
    let (mut input, mut output, mut cost) = (0, 0, 0);
    for id in &ids {
        let record = gw.record(id).await;
        input += record.usage.input_tokens;
        output += record.usage.output_tokens;
        cost += record.cost.0;
    }
    assert!(input > 40 && output == 20, "{input} {output}");
    let tokens = |kind: &str| {
        delta(
            "switchboard_tokens_total",
            &[("alias", ok), ("team", ""), ("type", kind)],
        )
    };
    assert_eq!(tokens("input"), input as f64);
    assert_eq!(tokens("output"), output as f64);
    // $2.50 and $10 per million: 10 * 2.5 + 5 * 10 = 75 micro-dollars per answer (a call the
    // provider rejected is not priced).
    assert_eq!(cost, 300);
    assert_eq!(
        delta("switchboard_cost_micro_usd_total", &[("alias", ok)]),
        cost as f64
    );
    // Histograms carry buckets (a summary would have failed `value`).
    let buckets = after
        .0
        .samples
        .iter()
        .find(|x| x.metric == "switchboard_request_duration_seconds")
        .map(|x| match &x.value {
            Value::Histogram(b) => b.len(),
            _ => 0,
        });
    assert!(buckets.unwrap_or(0) >= 10, "{buckets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_fallbacks_refusals_and_open_circuits_are_counted() {
    let s = setup().await;
    let gw = &s.gw;
    let before = Metrics::scrape(gw).await;

    // A retry: the first attempt answers 500, the second succeeds.
    s.up.enqueue(MockReply::Error {
        status: 500,
        retry_after_secs: None,
    });
    let reply = gw.chat(ADMIN, &s.ok).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("x-switchboard-attempts"), Some("2"));

    // A fallback: `fails` answers 503 and does not retry; `ok` serves.
    s.flaky.enqueue(MockReply::Error {
        status: 503,
        retry_after_secs: None,
    });
    let reply = gw.chat(ADMIN, &s.fails).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // An open circuit: one failure opens it, the next request is refused without an attempt.
    s.flaky.enqueue(MockReply::Error {
        status: 500,
        retry_after_secs: None,
    });
    assert_eq!(gw.chat(ADMIN, &s.fragile).await.status, 502);
    let reply = gw.chat(ADMIN, &s.fragile).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.code(), "circuit_open");

    // Refused before admission: no key, and an unknown model.
    let resp = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .json(&Call::new(&s.ok).body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let unknown = unique("nope");
    assert_eq!(gw.chat(ADMIN, &unknown).await.status, 404);

    let after = Metrics::scrape(gw).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(delta("switchboard_retries_total", &[("alias", &s.ok)]), 1.0);
    assert_eq!(
        delta("switchboard_fallbacks_total", &[("alias", &s.fails)]),
        1.0
    );
    // The fallback's request counts under the alias asked for, served by `ok`'s target.
    let served_by = format!("up/{}", s.model);
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[
                ("alias", &s.fails),
                ("target", &served_by),
                ("status", "2xx")
            ]
        ),
        1.0
    );
    let fragile = s.fragile.as_str();
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[
                ("alias", fragile),
                ("status", "5xx"),
                ("code", "upstream_error")
            ]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[
                ("alias", fragile),
                ("status", "5xx"),
                ("code", "circuit_open")
            ]
        ),
        1.0
    );
    let fragile_target = format!("flaky/{}-fragile", s.flaky_model);
    assert_eq!(
        after.value("switchboard_circuit_state", &[("target", &fragile_target)]),
        2.0
    );
    assert_eq!(
        after.value("switchboard_circuit_state", &[("target", &served_by)]),
        0.0
    );
    // Other tests may be refused at the same time: at least ours were counted.
    assert!(
        delta(
            "switchboard_refused_total",
            &[("status", "401"), ("code", "missing_api_key")]
        ) >= 1.0
    );
    assert!(
        delta(
            "switchboard_refused_total",
            &[("status", "404"), ("code", "model_not_found")]
        ) >= 1.0
    );
    // No request id, key or error text ever becomes a label.
    for sample in &after.0.samples {
        for (key, value) in sample.labels.iter() {
            assert!(
                !value.starts_with("req-") && !value.contains(' ') && key != "request_id",
                "{}: {key}={value}",
                sample.metric
            );
        }
    }
}

/// Bodies stored for `ids`.
async fn bodies_stored(gw: &Gw, ids: &[String]) -> usize {
    let mut stored = 0;
    for id in ids {
        stored += gw.server.runtime.store.bodies_of(id).await.unwrap().len();
    }
    stored
}

/// `switchboard_log_rows_dropped_total` counts every body that is not stored: those whose
/// batch could not be written and those the full queue turned away. (No other test of this
/// binary loses bodies, so the process-wide counter's delta is this test's.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_not_stored_are_counted_as_dropped() {
    use sqlx::Connection as _;
    let up = MockProvider::start(MockKind::OpenAi).await;
    let alias = unique("bodies");
    let db = Db::sqlite();
    let body = format!(
        "providers:\n\
         \x20 up: {{ type: openai, base_url: \"{up}\", api_key: sk-up }}\n\
         models:\n\
         \x20 {alias}: {{ targets: [ {{ provider: up, model: gpt-4o }} ] }}\n\
         logging: {{ bodies: {{ all: true }}, body_queue: 1 }}\n",
        up = up.base_url(),
    );
    let gw = Gw::start(&db, &body).await;
    let writer = gw.server.runtime.body_writer.clone();
    let dropped = |m: &Metrics| m.value("switchboard_log_rows_dropped_total", &[]);
    let wait = |what: &'static str, done: Box<dyn FnMut(&BodyStats) -> bool + Send>| {
        let writer = writer.clone();
        async move {
            let stats = tokio::time::timeout(Duration::from_secs(30), writer.wait_until(done))
                .await
                .unwrap_or_else(|_| panic!("{what}: {:?}", writer.stats()));
            assert!(!stats.stopped, "{what}: the body writer stopped");
        }
    };
    // One body stored: the writer works.
    let first = Call::new(&alias);
    assert_eq!(gw.call(ADMIN, &first).await.status, 200);
    wait("one body written", Box::new(|s| s.written >= 1)).await;
    assert_eq!(bodies_stored(&gw, &[first.request_id]).await, 1);

    // Writes that fail: the table is gone, each body's batch fails and is counted.
    let before = Metrics::scrape(&gw).await;
    db.execute(
        "ALTER TABLE call_bodies RENAME TO call_bodies_away",
        &db.url,
    )
    .await;
    for i in 1..=3 {
        // One at a time, so that the queue of one never turns a body away.
        assert_eq!(gw.chat(ADMIN, &alias).await.status, 200);
        wait("a failed batch", Box::new(move |s| s.failed >= i)).await;
    }
    let after = Metrics::scrape(&gw).await;
    assert_eq!(writer.stats().failed, 3, "{:?}", writer.stats());
    assert_eq!(dropped(&after) - dropped(&before), 3.0);
    db.execute(
        "ALTER TABLE call_bodies_away RENAME TO call_bodies",
        &db.url,
    )
    .await;

    // A full queue: another connection holds SQLite's write lock, so the writer waits on its
    // batch (of one body) and the queue holds one more; every other body is turned away.
    let before = Metrics::scrape(&gw).await;
    let mut lock = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    let n = 6;
    let mut ids = Vec::new();
    for _ in 0..n {
        let call = Call::new(&alias);
        assert_eq!(gw.call(ADMIN, &call).await.status, 200);
        ids.push(call.request_id);
    }
    sqlx::raw_sql("COMMIT").execute(&mut lock).await.unwrap();
    drop(lock);
    // The writer ends up idle once what it held is written (or failed, if the lock outlasted
    // SQLite's busy timeout): then every body is either stored or counted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (stored, lost) = loop {
        let stored = bodies_stored(&gw, &ids).await;
        let lost = dropped(&Metrics::scrape(&gw).await) - dropped(&before);
        if stored as f64 + lost >= n as f64 || tokio::time::Instant::now() > deadline {
            break (stored, lost);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(lost, (n - stored) as f64, "{n} bodies: {stored} stored");
    assert!(stored <= 2, "{stored} stored: the queue holds one");
    // The queue's depth is exported.
    let m = Metrics::scrape(&gw).await;
    assert!(m
        .label_sets("switchboard_log_queue_depth", &[])
        .iter()
        .any(|l| l.is_empty()));
    gw.server.shutdown().await;
    db.drop().await;
}

/// Series the other tests do not reach: tokens and cost under a real `team` label (`org/team`
/// of a virtual key), a budget's refusals, a client that leaves mid-stream (`499`), and the
/// queue gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_budget_cancel_and_queue_series() {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let alias = unique("teamed");
    let model = unique("gpt-team");
    let (org, team, broke) = (unique("org"), unique("team"), unique("broke"));
    let budget = unique("budget");
    let db = Db::sqlite();
    // The budget of `broke` is one micro-dollar a day: any call's reservation exceeds it.
    let body = format!(
        "providers:\n\
         \x20 up: {{ type: openai, base_url: \"{up}\", api_key: sk-up }}\n\
         models:\n\
         \x20 {alias}: {{ targets: [ {{ provider: up, model: {model} }} ], price: {PRICE} }}\n\
         budgets:\n\
         \x20 - {{ name: {budget}, scope: team, match: {{ org: {org}, team: {broke} }}, period: day, usd: \"0.000001\" }}\n",
        up = up.base_url(),
    );
    let gw = Gw::start(&db, &body).await;
    gw.seed_team(&org, &team, false).await;
    gw.seed_team(&org, &broke, true).await;
    let key = gw.key(&org, &team).await;
    let broke_key = gw.key(&org, &broke).await;
    let before = Metrics::scrape(&gw).await;

    // Two calls of the team's key, billed to `org/team`.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let call = Call::new(&alias);
        assert_eq!(gw.call(&key.secret, &call).await.status, 200);
        ids.push(call.request_id);
    }
    // Two refused by the budget.
    for _ in 0..2 {
        let reply = gw.chat(&broke_key.secret, &alias).await;
        assert_eq!(reply.status, 429, "{}", reply.text);
        assert_eq!(reply.code(), "budget_exceeded");
    }
    // A client that leaves mid-stream.
    up.enqueue(MockReply::SlowStream {
        chunks: 500,
        interval: Duration::from_millis(20),
    });
    let stream = Call {
        stream: true,
        ..Call::new(&alias)
    };
    let resp = gw.send(&key.secret, &stream).await;
    assert_eq!(resp.status(), 200);
    super::kit::read_until_then_leave(resp, "tok1 ").await;
    // Every request's metrics are recorded before its record is queued.
    gw.wait_records(5).await;

    let after = Metrics::scrape(&gw).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let a = alias.as_str();
    let team_label = format!("{org}/{team}");
    let (mut input, mut output, mut cost) = (0, 0, 0);
    for id in &ids {
        let record = gw.record(id).await;
        assert_eq!(record.caller.team.as_deref(), Some(team.as_str()));
        input += record.usage.input_tokens;
        output += record.usage.output_tokens;
        cost += record.cost.0;
    }
    assert!(
        input > 0 && output > 0 && cost > 0,
        "{input} {output} {cost}"
    );
    let tokens = |kind: &str| {
        delta(
            "switchboard_tokens_total",
            &[("alias", a), ("team", &team_label), ("type", kind)],
        )
    };
    // The stream that was left may have billed something too: count what the call records
    // say, all of them under the team.
    let left = gw.record(&stream.request_id).await;
    assert_eq!(tokens("input"), (input + left.usage.input_tokens) as f64);
    assert_eq!(tokens("output"), (output + left.usage.output_tokens) as f64);
    assert_eq!(
        delta(
            "switchboard_cost_micro_usd_total",
            &[("alias", a), ("team", &team_label)]
        ),
        (cost + left.cost.0) as f64
    );
    // Nothing of the team's calls went under the empty team.
    assert_eq!(
        delta("switchboard_tokens_total", &[("alias", a), ("team", "")]),
        0.0
    );
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[("alias", a), ("status", "4xx"), ("code", "budget_exceeded")]
        ),
        2.0
    );
    // Other tests of this binary have no budgets; at least ours were counted.
    assert!(delta("switchboard_budget_rejections_total", &[]) >= 2.0);
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[("alias", a), ("status", "499"), ("code", "client_closed")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "switchboard_requests_total",
            &[("alias", a), ("status", "2xx"), ("code", "none")]
        ),
        2.0
    );
    // The queue gauges are exported (without labels).
    for gauge in [
        "switchboard_usage_queue_depth",
        "switchboard_log_queue_depth",
    ] {
        let sets = after.label_sets(gauge, &[]);
        assert!(sets.iter().any(HashMap::is_empty), "{gauge}: {sets:?}");
        assert!(
            after
                .0
                .samples
                .iter()
                .any(|s| s.metric == gauge && matches!(s.value, Value::Gauge(_))),
            "{gauge} is a gauge"
        );
    }
    gw.server.shutdown().await;
    db.drop().await;
}
