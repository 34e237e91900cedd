//! The admin API under `/admin/v1`: organisations, teams, apps, members, users, virtual keys,
//! subscriptions, stored providers and models, stored prompts (versions, labels, the
//! playground) and prompt APIs (lifecycle), stored rate limits and budgets, usage and the
//! standing of limits, and the audit log, as JSON with paged lists and
//! the OpenAI error shape. Every route is registered through `utoipa-axum`, so the OpenAPI
//! document at `/admin/v1/openapi.json` is generated from the same handlers that serve it.
//!
//! Handlers are thin: authenticate ([`auth::Caller`]), look objects up within the URL's
//! organisation, check the role matrix, call the store. Config as code (`crate::apply`) reuses
//! [`auth::Caller`] and [`error::ApiError`].

mod alerts;
mod analytics;
mod audit;
pub mod auth;
mod config;
pub mod dto;
pub mod error;
pub mod extract;
mod keys;
mod limits;
mod logs;
mod members;
mod openapi;
mod orgs;
mod prompts;
mod subscriptions;
mod teams;
mod usage;
mod webhook;

use crate::http::AppState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::ApiError;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Where the admin API is mounted.
pub const PREFIX: &str = "/admin/v1";

/// Drops this instance's cached key grants after a change to keys, apps or subscriptions, so
/// that the very next data-plane request sees it. (The store's change event does the same on
/// every instance, but asynchronously.)
fn access_changed(state: &AppState) {
    state.gateway.invalidate_keys();
}

/// The admin API's routes, to be nested at [`PREFIX`].
pub fn router() -> Router<AppState> {
    let (router, doc) = api().split_for_parts();
    let doc = Arc::new(openapi::finish(doc));
    router
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(unknown_route)
        .layer(axum::middleware::map_response(json_errors))
}

/// The OpenAPI document of the admin API (what `/admin/v1/openapi.json` serves).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(api().split_for_parts().1)
}

/// Every documented route.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(orgs::me))
        .routes(routes!(orgs::list_orgs, orgs::create_org))
        .routes(routes!(orgs::get_org, orgs::update_org, orgs::delete_org))
        .routes(routes!(teams::list_teams, teams::create_team))
        .routes(routes!(teams::get_team, teams::delete_team))
        .routes(routes!(teams::list_apps, teams::create_app))
        .routes(routes!(
            teams::get_app,
            teams::update_app,
            teams::delete_app
        ))
        .routes(routes!(members::list_members, members::add_member))
        .routes(routes!(members::update_member, members::remove_member))
        .routes(routes!(members::list_users, members::create_user))
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::get_key, keys::update_key, keys::delete_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::rotate_key))
        .routes(routes!(
            subscriptions::list_subscriptions,
            subscriptions::request_subscription
        ))
        .routes(routes!(subscriptions::get_subscription))
        .routes(routes!(subscriptions::approve_subscription))
        .routes(routes!(subscriptions::reject_subscription))
        .routes(routes!(config::list_providers))
        .routes(routes!(
            config::get_provider,
            config::put_provider,
            config::delete_provider
        ))
        .routes(routes!(config::list_models))
        .routes(routes!(
            config::get_model,
            config::put_model,
            config::delete_model
        ))
        .routes(routes!(prompts::list_prompts))
        .routes(routes!(
            prompts::get_prompt,
            prompts::put_prompt,
            prompts::delete_prompt
        ))
        .routes(routes!(prompts::add_version))
        .routes(routes!(prompts::put_label, prompts::delete_label))
        .routes(routes!(prompts::render_prompt))
        .routes(routes!(prompts::list_apis))
        .routes(routes!(
            prompts::get_api,
            prompts::put_api,
            prompts::delete_api
        ))
        .routes(routes!(prompts::set_api_status))
        .routes(routes!(limits::list_rate_limits))
        .routes(routes!(
            limits::get_rate_limit,
            limits::put_rate_limit,
            limits::delete_rate_limit
        ))
        .routes(routes!(limits::list_budgets))
        .routes(routes!(
            limits::get_budget,
            limits::put_budget,
            limits::delete_budget
        ))
        .routes(routes!(usage::get_usage))
        .routes(routes!(usage::limits_status))
        .routes(routes!(logs::list_logs))
        .routes(routes!(logs::export_logs))
        .routes(routes!(logs::get_log))
        .routes(routes!(analytics::timeseries))
        .routes(routes!(analytics::top))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::list_org_audit))
        // Config as code: `POST /config/apply`, `GET /config/export` (crate::apply).
        .nest("/config", crate::apply::openapi_routes())
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no admin route `{}`: see {PREFIX}/openapi.json", uri.path()),
    )
}

/// Turns axum's plain-text answers (wrong method, unsupported body) into the JSON error shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        "this method is not allowed on this admin route: see /admin/v1/openapi.json".to_owned()
    } else {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        _ => "invalid_request",
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
