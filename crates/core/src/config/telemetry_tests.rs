//! Tests of the `telemetry:` section: defaults, the traces URL, secrets kept out of Debug,
//! and every problem reported with its key.

use super::*;
use std::time::Duration;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str("test.yaml", text, &|_: &str| None)
}

#[test]
fn otlp_settings_and_defaults() {
    let config = load(
        "telemetry:\n  otlp:\n    endpoint: http://collector:4318/\n    headers: { x-api-key: s3cret }\n",
    )
    .unwrap();
    let telemetry = config.telemetry.unwrap();
    assert_eq!(telemetry.traces_url, "http://collector:4318/v1/traces");
    assert_eq!(telemetry.service_name, "switchboard");
    assert_eq!(telemetry.sample_ratio, 1.0);
    assert_eq!(telemetry.timeout, Duration::from_secs(10));
    assert_eq!(telemetry.batch_delay, Duration::from_secs(5));
    assert_eq!(telemetry.queue_size, 2048);
    assert_eq!(telemetry.headers["x-api-key"].0, "s3cret");
    assert!(!format!("{telemetry:?}").contains("s3cret"));
}

#[test]
fn a_full_traces_url_is_kept_and_no_otlp_means_no_tracing() {
    let config = load(
        "telemetry:\n  service_name: gw\n  sample_ratio: 0.25\n  otlp: { endpoint: \"https://otel.example/v1/traces\", timeout_ms: 500, batch_delay_ms: 100, queue_size: 10 }\n",
    )
    .unwrap();
    let telemetry = config.telemetry.unwrap();
    assert_eq!(telemetry.traces_url, "https://otel.example/v1/traces");
    assert_eq!(telemetry.service_name, "gw");
    assert_eq!(telemetry.sample_ratio, 0.25);
    assert_eq!(telemetry.timeout, Duration::from_millis(500));
    assert_eq!(telemetry.queue_size, 10);
    assert!(load("telemetry: { service_name: gw }\n")
        .unwrap()
        .telemetry
        .is_none());
    assert!(load("listen: 127.0.0.1:0\n").unwrap().telemetry.is_none());
}

#[test]
fn problems_are_reported_with_their_keys() {
    let errors = load(
        "telemetry:\n  sample_ratio: 1.5\n  service_name: \"\"\n  otlp: { endpoint: collector:4318, timeout_ms: 0, headers: { \"bad header\": x } }\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = errors.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "telemetry.sample_ratio",
        "telemetry.service_name",
        "telemetry.otlp.endpoint",
        "telemetry.otlp.timeout_ms",
        "telemetry.otlp.headers.bad header",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    let unknown =
        load("telemetry:\n  otlp: { endpoint: http://c:4318, protocol: grpc }\n").unwrap_err();
    assert!(
        unknown
            .problems
            .iter()
            .any(|p| p.message.contains("protocol")),
        "{unknown:?}"
    );
}
