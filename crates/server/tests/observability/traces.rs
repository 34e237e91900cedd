//! Spans reach an OTLP/HTTP collector (an in-process axum server decoding the protobuf
//! requests): one server span per request, child of the caller's `traceparent`, with a client
//! span per upstream attempt whose id is the one the provider received in its `traceparent`,
//! carrying the OpenTelemetry GenAI attributes.

use super::kit::{unique, Call, Db, Gw, ADMIN, PRICE};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;
use switchboard_testkit::{MockKind, MockProvider, Reply as MockReply};
use tokio::sync::watch;

/// A span as received, with the `service.name` of its resource.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

#[derive(Clone)]
struct Sink {
    spans: Arc<Mutex<Vec<Received>>>,
    /// Bumped on every export, so that waiters wake without polling a clock.
    exports: watch::Sender<u64>,
}

/// An OTLP/HTTP trace receiver on port 0.
struct Collector {
    url: String,
    sink: Sink,
}

impl Collector {
    async fn start() -> Collector {
        let sink = Sink {
            spans: Arc::default(),
            exports: watch::channel(0).0,
        };
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { url, sink }
    }

    /// Waits (at most 30 s) until the spans of `trace_id` are `count`, and returns them.
    async fn trace(&self, trace_id: &[u8], count: usize) -> Vec<Received> {
        let mut exports = self.sink.exports.subscribe();
        let wait = async {
            loop {
                let spans: Vec<Received> = self
                    .sink
                    .spans
                    .lock()
                    .iter()
                    .filter(|r| r.span.trace_id == trace_id)
                    .cloned()
                    .collect();
                if spans.len() >= count {
                    return spans;
                }
                exports.changed().await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{count} spans of trace {} not received", hex(trace_id)))
    }
}

async fn receive(State(sink): State<Sink>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
    let mut received = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| string_attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    sink.spans.lock().extend(received);
    sink.exports.send_modify(|n| *n += 1);
    // An empty ExportTraceServiceResponse: everything accepted.
    Vec::new()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(AnyValue::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(AnyValue::IntValue(n)) => Some(*n),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A gateway exporting to `collector`, with `alias` on `up` (retries once).
async fn gateway(collector: &Collector, up: &MockProvider, alias: &str, model: &str) -> (Gw, Db) {
    let db = Db::sqlite();
    let body = format!(
        "telemetry:\n\
         \x20 service_name: sb-trace-test\n\
         \x20 otlp: {{ endpoint: \"{collector}\", batch_delay_ms: 20, headers: {{ x-collector-key: secret }} }}\n\
         providers:\n\
         \x20 up: {{ type: openai, base_url: \"{up}\", api_key: sk-up }}\n\
         models:\n\
         \x20 {alias}: {{ targets: [ {{ provider: up, model: {model} }} ], retry: {{ attempts: 1, backoff_ms: 1, max_backoff_ms: 1 }}, price: {PRICE} }}\n",
        collector = collector.url,
        up = up.base_url(),
    );
    (Gw::start(&db, &body).await, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_span_continues_the_callers_trace_with_a_span_per_attempt() {
    let collector = Collector::start().await;
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (alias, model) = (unique("traced"), unique("gpt-traced"));
    let (gw, _db) = gateway(&collector, &up, &alias, &model).await;
    // The first attempt fails with 500 and is retried.
    up.enqueue(MockReply::Error {
        status: 500,
        retry_after_secs: None,
    });
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let call = Call {
        max_tokens: Some(64),
        ..Call::new(&alias)
    };
    let mut body = call.body();
    body["temperature"] = serde_json::json!(0.5);
    let resp = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(ADMIN)
        .header("x-request-id", &call.request_id)
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let spans = collector.trace(&unhex(trace_id), 3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(spans.iter().all(|r| r.service == "sb-trace-test"));
    let server: Vec<&Span> = spans
        .iter()
        .map(|r| &r.span)
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(server.len(), 1, "{spans:#?}");
    let request = server[0];
    assert_eq!(hex(&request.parent_span_id), parent);
    assert_eq!(request.name, format!("chat {alias}"));
    let a = &request.attributes;
    assert_eq!(
        string_attr(a, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        string_attr(a, "gen_ai.request.model").as_deref(),
        Some(alias.as_str())
    );
    assert_eq!(
        string_attr(a, "gen_ai.response.model").as_deref(),
        Some(model.as_str())
    );
    assert_eq!(
        string_attr(a, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(int_attr(a, "gen_ai.request.max_tokens"), Some(64));
    assert!(
        matches!(attr(a, "gen_ai.request.temperature"), Some(AnyValue::DoubleValue(t)) if *t == 0.5)
    );
    assert_eq!(int_attr(a, "gen_ai.usage.input_tokens"), Some(10));
    assert_eq!(int_attr(a, "gen_ai.usage.output_tokens"), Some(5));
    assert_eq!(int_attr(a, "http.response.status_code"), Some(200));
    assert_eq!(int_attr(a, "switchboard.attempts"), Some(2));
    assert_eq!(int_attr(a, "switchboard.cost_micro_usd"), Some(75));
    assert_eq!(
        string_attr(a, "switchboard.request_id"),
        Some(call.request_id.clone())
    );
    match attr(a, "gen_ai.response.finish_reasons") {
        Some(AnyValue::ArrayValue(list)) => {
            let reasons: Vec<_> = list.values.iter().filter_map(|v| v.value.clone()).collect();
            assert_eq!(reasons, vec![AnyValue::StringValue("stop".into())]);
        }
        other => panic!("finish reasons: {other:?} in {a:#?}"),
    }

    // One client span per attempt, children of the request span, in order.
    let mut attempts: Vec<&Span> = spans
        .iter()
        .map(|r| &r.span)
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(attempts.len(), 2);
    for span in &attempts {
        assert_eq!(span.parent_span_id, request.span_id);
        assert_eq!(span.name, format!("chat {model}"));
        assert_eq!(
            string_attr(&span.attributes, "gen_ai.request.model"),
            Some(model.clone())
        );
        assert!(span.start_time_unix_nano >= request.start_time_unix_nano);
        assert!(span.end_time_unix_nano <= request.end_time_unix_nano);
    }
    assert_eq!(
        string_attr(&attempts[0].attributes, "error.type").as_deref(),
        Some("upstream_error")
    );
    assert_eq!(
        int_attr(&attempts[0].attributes, "http.response.status_code"),
        Some(500)
    );
    assert_eq!(string_attr(&attempts[1].attributes, "error.type"), None);
    assert_eq!(
        int_attr(&attempts[1].attributes, "gen_ai.usage.output_tokens"),
        Some(5)
    );

    // The provider saw each attempt's own span id, in the caller's trace.
    let sent: Vec<String> = up
        .requests()
        .iter()
        .filter_map(|r| r.header("traceparent").map(str::to_owned))
        .collect();
    let expected: Vec<String> = attempts
        .iter()
        .map(|s| format!("00-{trace_id}-{}-01", hex(&s.span_id)))
        .collect();
    assert_eq!(sent, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_caller_trace_starts_one_and_propagates_it() {
    let collector = Collector::start().await;
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (alias, model) = (unique("streamed"), unique("gpt-streamed"));
    let (gw, _db) = gateway(&collector, &up, &alias, &model).await;
    let call = Call {
        stream: true,
        ..Call::new(&alias)
    };
    let reply = gw.call(ADMIN, &call).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let sent = up.requests()[0].header("traceparent").unwrap().to_owned();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[3], "01", "sampled at ratio 1.0");
    let spans = collector.trace(&unhex(parts[1]), 2).await;
    let request = spans
        .iter()
        .map(|r| &r.span)
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    assert!(request.parent_span_id.is_empty(), "a root span");
    let attempt = spans
        .iter()
        .map(|r| &r.span)
        .find(|s| s.kind == SpanKind::Client as i32)
        .expect("a client span");
    assert_eq!(hex(&attempt.span_id), parts[2]);
    assert_eq!(attempt.parent_span_id, request.span_id);
    let a = &request.attributes;
    assert!(int_attr(a, "switchboard.ttft_ms").is_some());
    assert_eq!(int_attr(a, "gen_ai.usage.input_tokens"), Some(10));
    assert_eq!(int_attr(a, "gen_ai.usage.output_tokens"), Some(5));
    assert!(matches!(
        attr(a, "switchboard.stream"),
        Some(AnyValue::BoolValue(true))
    ));
    // The serving attempt lasts as long as the stream.
    assert_eq!(attempt.end_time_unix_nano, request.end_time_unix_nano);
}
