//! Liveness and readiness.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The gateway can serve: a config is loaded and storage answers (within a second).
pub async fn readyz(State(state): State<AppState>) -> Response {
    let snapshot = state.gateway.snapshot();
    let storage = tokio::time::timeout(Duration::from_secs(1), state.runtime.store.ping()).await;
    let storage_ok = matches!(storage, Ok(Ok(())));
    let status = if storage_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Json(json!({
        "status": if storage_ok { "ready" } else { "not_ready" },
        "storage": if storage_ok { "ok" } else { "unreachable" },
        "models": snapshot.router.aliases().count(),
    }));
    (status, body).into_response()
}
