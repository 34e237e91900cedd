//! Checks of the `telemetry:` section: an OTLP endpoint that is an http(s) URL, a sample ratio
//! between 0 and 1, positive durations and queue size.

use super::locate::KeyPath;
use super::model::{Secret, TelemetryConfig};
use super::raw::{RawError, RawTelemetry};
use std::collections::BTreeMap;
use std::time::Duration;

/// The OTLP/HTTP path of the traces signal.
const TRACES_PATH: &str = "/v1/traces";

/// The telemetry config, or `None` when nothing is exported (no `otlp`) or something is wrong
/// (then `problems` says what).
pub(crate) fn telemetry(
    raw: &RawTelemetry,
    path: &KeyPath,
    problems: &mut Vec<RawError>,
) -> Option<TelemetryConfig> {
    let mut problem = |path: KeyPath, message: &str| {
        problems.push(RawError {
            path,
            message: message.to_owned(),
        })
    };
    let service_name = raw
        .service_name
        .clone()
        .unwrap_or_else(|| "switchboard".into());
    if service_name.trim().is_empty() {
        problem(path.key("service_name"), "must not be empty");
    }
    let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        problem(path.key("sample_ratio"), "must be between 0.0 and 1.0");
    }
    let otlp = raw.otlp.as_ref()?;
    let path = path.key("otlp");
    let endpoint = otlp.endpoint.trim().trim_end_matches('/');
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        problem(path.key("endpoint"), "must be an http:// or https:// URL");
    }
    let traces_url = if endpoint.ends_with(TRACES_PATH) {
        endpoint.to_owned()
    } else {
        format!("{endpoint}{TRACES_PATH}")
    };
    let mut positive = |key: &str, value: Option<u64>, default: u64| match value {
        Some(0) => {
            problem(path.key(key), "must be greater than 0");
            default
        }
        Some(n) => n,
        None => default,
    };
    let timeout = Duration::from_millis(positive("timeout_ms", otlp.timeout_ms, 10_000));
    let batch_delay = Duration::from_millis(positive("batch_delay_ms", otlp.batch_delay_ms, 5_000));
    let queue_size = positive("queue_size", otlp.queue_size.map(|n| n as u64), 2048);
    let headers: BTreeMap<String, Secret> = otlp
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), Secret(value.clone())))
        .collect();
    for name in otlp.headers.keys() {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problem(path.key("headers").key(name), "is not a valid header name");
        }
    }
    Some(TelemetryConfig {
        service_name,
        sample_ratio,
        traces_url,
        headers,
        timeout,
        batch_delay,
        queue_size: usize::try_from(queue_size).unwrap_or(2048),
    })
}
