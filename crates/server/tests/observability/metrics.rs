//! `/metrics` parses as Prometheus text and its counters match the traffic sent: requests by
//! alias, target, status class and code; latency and time-to-first-token histograms; tokens
//! and cost; retries and fallbacks; refusals before admission; the circuit gauge. The recorder
//! is process-wide (other tests of this binary count into it too), so every test uses aliases
//! and upstream models of its own and compares scrapes taken before and after.

use super::kit::{unique, Call, Db, Gw, ADMIN, PRICE};
use prometheus_parse::{Scrape, Value};
use std::collections::HashMap;
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
