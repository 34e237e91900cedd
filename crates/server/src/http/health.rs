//! Liveness and readiness.

use super::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// The process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The gateway can serve: a config is loaded (storage joins this check when it exists).
pub async fn readyz(State(state): State<AppState>) -> Json<Value> {
    let snapshot = state.gateway.snapshot();
    Json(json!({
        "status": "ready",
        "models": snapshot.router.aliases().count(),
    }))
}
