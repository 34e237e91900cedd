//! `/alerts`: the configured alert rules (`alerts:` in the config) and how each stands after
//! the evaluator's last run on this instance. The platform admin sees every rule; a person sees
//! the rules whose `match.org` is an organisation where they may read usage (rules over every
//! organisation, and budget rules, are the platform's).

use super::auth::Caller;
use super::error::ApiResult;
use super::openapi::Errors;
use crate::alerts::RuleStatus;
use crate::http::AppState;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use switchboard_core::auth::roles::Action;
use switchboard_core::config::alerts::AlertMatch;
use switchboard_store::StoreError;
use utoipa::ToSchema;

/// One rule and its standing.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AlertEntry {
    pub name: String,
    /// `error_rate`, `latency`, `spend` or `budget`.
    pub kind: String,
    pub window_s: u64,
    /// Fires at or above this value: a fraction (error_rate, budget), ms (latency) or dollars
    /// (spend).
    pub threshold: f64,
    /// Latency rules: the percentile as a fraction.
    pub percentile: Option<f64>,
    pub min_requests: u64,
    pub budget: Option<String>,
    /// `{org, team, app, alias, target, key, tag}` as configured.
    #[serde(rename = "match")]
    #[schema(value_type = Object)]
    pub matches: AlertMatch,
    pub status: RuleStatus,
}

/// The answer of `GET /alerts`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AlertList {
    /// In config order.
    pub data: Vec<AlertEntry>,
}

/// The alert rules the caller may see, with their state (`ok` or `firing`), last value and
/// when that state began.
#[utoipa::path(get, path = "/alerts", tag = "analytics",
    responses((status = 200, body = AlertList), Errors))]
pub async fn list_alerts(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AlertList>> {
    let store = &state.runtime.store;
    let mut data = Vec::new();
    for (rule, status) in state.runtime.alerts.statuses().await {
        let visible = if caller.is_platform() {
            true
        } else {
            match (&rule.matches.org, &rule.budget) {
                (Some(org), None) => match store.get_org(org).await {
                    Ok(record) => caller.may(&record.id, None, Action::ReadUsage),
                    Err(StoreError::NotFound { .. }) => false,
                    Err(err) => return Err(err.into()),
                },
                _ => false,
            }
        };
        if !visible {
            continue;
        }
        data.push(AlertEntry {
            name: rule.name.clone(),
            kind: rule.kind.as_str().to_owned(),
            window_s: rule.window_s,
            threshold: rule.threshold,
            percentile: (rule.kind == switchboard_core::config::alerts::AlertKind::Latency)
                .then_some(rule.percentile),
            min_requests: rule.min_requests,
            budget: rule.budget.clone(),
            matches: rule.matches.clone(),
            status,
        });
    }
    Ok(Json(AlertList { data }))
}
