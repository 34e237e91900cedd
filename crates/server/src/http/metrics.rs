//! `GET /metrics`: Prometheus text. The recorder is installed once per process (the first
//! server started installs it; tests start several); gauges that mirror state elsewhere (the
//! usage and body queues, the writer's progress, each target's circuit) are set when scraped.

use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use switchboard_core::metrics::{Counter, Gauge, Histogram};
use switchboard_core::routing::CircuitState;
use switchboard_core::GatewayError;

/// The process's recorder, installed on first use; `None` if another recorder was installed.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let mut builder = PrometheusBuilder::new();
    // Histograms need buckets, else they render as summaries (which cannot be aggregated
    // across instances).
    for histogram in Histogram::ALL {
        builder = match builder
            .set_buckets_for_metric(Matcher::Full(histogram.name().into()), &Histogram::BUCKETS)
        {
            Ok(builder) => builder,
            Err(err) => {
                tracing::warn!(%err, "Cannot set histogram buckets; /metrics stays empty.");
                return None;
            }
        };
    }
    match builder.install_recorder() {
        Ok(handle) => {
            for counter in Counter::ALL {
                metrics::describe_counter!(counter.name(), counter.help());
            }
            for histogram in Histogram::ALL {
                metrics::describe_histogram!(
                    histogram.name(),
                    metrics::Unit::Seconds,
                    histogram.help()
                );
            }
            Some(handle)
        }
        Err(err) => {
            tracing::warn!(%err, "Cannot install the metrics recorder; /metrics stays empty.");
            None
        }
    }
}

/// Counts a request refused before admission (no key, bad body, unknown route or model):
/// admitted requests are counted by their meter.
pub fn refused(err: &GatewayError) {
    metrics::counter!(Counter::Refused.name(),
        "status" => err.status().to_string(), "code" => err.code())
    .increment(1);
}

pub async fn render(State(state): State<AppState>) -> Response {
    let Some(handle) = handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response();
    };
    if let Some(queue) = &state.gateway.snapshot().usage {
        Gauge::UsageQueueDepth.set(queue.depth() as f64);
    }
    Gauge::UsageRecordsWritten.set(state.runtime.usage_writer.stats().written as f64);
    Gauge::LogQueueDepth.set(state.runtime.bodies.depth() as f64);
    for (target, circuit, in_flight) in state.gateway.target_states().snapshot() {
        let value = match circuit {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open { .. } => 2.0,
        };
        let name = target.to_string();
        Gauge::CircuitState.set_with("target", name.clone(), value);
        Gauge::TargetInFlight.set_with("target", name, f64::from(in_flight));
    }
    let mut response = (StatusCode::OK, handle.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
