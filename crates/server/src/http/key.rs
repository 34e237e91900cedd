//! `GET /v1/key`: a client reads its own key's limits, budgets and spend, with the same
//! credential it calls models with (OpenAI error shape). The admin key and signed-in users get
//! what applies to them (no caller-scoped limits; spend of their own requests is not split
//! out).

use super::context::request_context;
use super::format::{json_body, ClientFormat};
use super::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_core::auth::Principal;
use switchboard_core::limits::{micros_text, period, Period, Who};
use switchboard_core::GatewayError;
use switchboard_store::UsageFilter;

pub async fn own_key(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = ClientFormat::OpenAi;
    let snapshot = state.gateway.snapshot();
    let mut ctx = request_context(&headers);
    let who = match snapshot.authenticate(&mut ctx).await {
        Ok(who) => who,
        Err(err) => return format.error_response(&err, &ctx.request_id),
    };
    let limits = match snapshot.limiter.report(&Who::of(&who)).await {
        Ok(limits) => limits,
        Err(err) => {
            tracing::warn!(%err, "Cannot read limit counters for GET /v1/key.");
            return format.error_response(&GatewayError::LimitsUnavailable, &ctx.request_id);
        }
    };
    let body = match &who {
        Principal::Key(grant) => {
            let spend = match key_spend(&state, &grant.key_id).await {
                Ok(spend) => spend,
                Err(err) => {
                    tracing::warn!(%err, "Cannot read recorded spend for GET /v1/key.");
                    return format.error_response(&GatewayError::AuthUnavailable, &ctx.request_id);
                }
            };
            json!({
                "object": "key",
                "id": grant.key_id,
                "prefix": grant.prefix,
                "org": grant.org,
                "team": grant.team,
                "app": grant.app,
                "models": grant.models,
                "expires_at_ms": grant.expires_at_ms,
                "limits": limits,
                "spend": spend,
            })
        }
        Principal::Admin => json!({"object": "key", "admin": true, "limits": limits}),
        Principal::User(user) => json!({"object": "key", "user": user.subject, "limits": limits}),
    };
    let mut response = (StatusCode::OK, json_body(body.to_string())).into_response();
    if let Ok(value) = ctx.request_id.parse() {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The key's recorded spend today, this month and in total (UTC), as exact decimal dollars and
/// integer micro-dollars. Records are written in batches, so the last moments may be missing.
async fn key_spend(
    state: &AppState,
    key_id: &str,
) -> Result<serde_json::Value, switchboard_store::StoreError> {
    let now = switchboard_types::calendar::now_ms();
    let mut out = serde_json::Map::new();
    for (name, period) in [
        ("today", Period::Day),
        ("month", Period::Month),
        ("total", Period::Total),
    ] {
        let filter = UsageFilter {
            key_id: Some(key_id.to_owned()),
            from_ms: Some(period::bounds(period, now).start_ms),
            ..UsageFilter::default()
        };
        let totals = state.runtime.store.usage_totals(&filter, None).await?;
        let micros: i64 = totals.iter().map(|t| t.cost_micros).sum();
        let requests: i64 = totals.iter().map(|t| t.requests).sum();
        out.insert(
            name.to_owned(),
            json!({"usd": micros_text(micros), "micros": micros, "requests": requests}),
        );
    }
    Ok(serde_json::Value::Object(out))
}
