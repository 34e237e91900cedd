//! `GET /metrics`: Prometheus text. The recorder is installed once per process (the first
//! server started installs it; tests start several); gauges that mirror state elsewhere (the
//! usage queue, the writer's progress) are set when scraped.

use super::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use switchboard_core::metrics::{Counter, Gauge};

/// The process's recorder, installed on first use; `None` if another recorder was installed.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                for counter in Counter::ALL {
                    metrics::describe_counter!(counter.name(), counter.help());
                }
                Some(handle)
            }
            Err(err) => {
                tracing::warn!(%err, "Cannot install the metrics recorder; /metrics stays empty.");
                None
            }
        })
        .as_ref()
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
    let mut response = (StatusCode::OK, handle.render()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
