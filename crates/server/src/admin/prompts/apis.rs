//! `/apis`: stored prompt APIs (the mapping of a config file's `apis:` entry) and their
//! lifecycle: `PUT /apis/{name}/versions/{version}/status` moves one version between draft,
//! published, deprecated and retired (the rules are in `lifecycle`).

use super::dto::{Api, Status, StatusReply, StatusRequest, Transition};
use super::lifecycle::{self, Extras, TransitionError};
use crate::admin::auth::Caller;
use crate::admin::config::{
    object, refuse_server_defined, reload, require_reader, validate, Section,
};
use crate::admin::dto::{Page, PageParams};
use crate::admin::error::{ApiError, ApiResult};
use crate::admin::extract::{Body, Params};
use crate::admin::openapi::Errors;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use switchboard_core::config::prompts::ApiStatus;

/// Stored prompt APIs.
#[utoipa::path(get, path = "/apis", tag = "prompts", params(PageParams),
    responses((status = 200, body = Page<Api>), Errors))]
pub async fn list_apis(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<Api>>> {
    require_reader(&caller)?;
    let page = state.runtime.store.list_apis(&page.request()).await?;
    Ok(Json(Page::from_store(page, |_| true, Api::from)))
}

/// One stored prompt API.
#[utoipa::path(get, path = "/apis/{name}", tag = "prompts",
    params(("name" = String, Path, description = "API name")),
    responses((status = 200, body = Api), Errors))]
pub async fn get_api(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Api>> {
    require_reader(&caller)?;
    Ok(Json(state.runtime.store.get_api(&name).await?.into()))
}

/// Creates or replaces a stored prompt API (platform admin). Its prompt, label and model must
/// exist (400 with the problem otherwise).
#[utoipa::path(put, path = "/apis/{name}", tag = "prompts",
    request_body(content = Object, description = "The API's config mapping"),
    params(("name" = String, Path, description = "API name")),
    responses((status = 200, body = Api), (status = 201, body = Api), Errors))]
pub async fn put_api(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<Api>)> {
    caller.require_platform()?;
    let body = object(Section::Apis, body)?;
    refuse_server_defined(&state, Section::Apis, &name)?;
    let existed = state.runtime.store.get_api(&name).await.is_ok();
    let api = store_api(&state, &caller, &name, body).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(api)))
}

/// Deletes a stored prompt API (platform admin); refused (409) while another API names it as
/// its successor.
#[utoipa::path(delete, path = "/apis/{name}", tag = "prompts",
    params(("name" = String, Path, description = "API name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_api(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Apis, &name)?;
    let store = &state.runtime.store;
    store.get_api(&name).await?;
    validate(&state, Section::Apis, &name, None).await?;
    store.delete_api(&caller.actor, &name).await?;
    reload(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves an API version to another lifecycle status (platform admin). Allowed: draft →
/// published, published → deprecated, deprecated → published, deprecated → retired,
/// published → retired (the same status again is a no-op); others are 409. Publishing a
/// version while another is published moves that other one to deprecated. A version that
/// becomes deprecated gets `deprecated_at` = today unless it has one. An API without
/// `versions` has the one version `v1`.
#[utoipa::path(put, path = "/apis/{name}/versions/{version}/status", tag = "prompts",
    request_body = StatusRequest,
    params(("name" = String, Path, description = "API name"),
        ("version" = String, Path, description = "API version, e.g. `v1`")),
    responses((status = 200, body = StatusReply), Errors))]
pub async fn set_api_status(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
    Body(body): Body<StatusRequest>,
) -> ApiResult<Json<StatusReply>> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Apis, &name)?;
    let mut settings = state.runtime.store.get_api(&name).await?.settings;
    let extras = Extras {
        sunset: body.sunset,
        successor: body.successor,
        today: switchboard_types::calendar::utc_date(switchboard_types::calendar::now_ms()),
    };
    let moved = lifecycle::transition(&name, &mut settings, &version, core(body.status), &extras)
        .map_err(|err| match err {
        TransitionError::UnknownVersion { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", err.to_string())
        }
        TransitionError::NotAllowed { .. } => {
            ApiError::new(StatusCode::CONFLICT, "invalid_transition", err.to_string())
        }
        TransitionError::Unreadable(_) => ApiError::conflict(err.to_string()),
    })?;
    let api = store_api(&state, &caller, &name, settings).await?;
    let transitions = moved
        .into_iter()
        .map(|m| Transition {
            version: m.version,
            from: dto(m.from),
            to: dto(m.to),
        })
        .collect();
    Ok(Json(StatusReply { api, transitions }))
}

/// Validates the whole config with `settings` as the API, stores it and reloads.
async fn store_api(
    state: &AppState,
    caller: &Caller,
    name: &str,
    settings: Value,
) -> ApiResult<Api> {
    validate(state, Section::Apis, name, Some(&settings)).await?;
    let stored = state
        .runtime
        .store
        .put_api(&caller.actor, name, settings, None)
        .await?;
    reload(state).await;
    Ok(stored.into())
}

fn core(status: Status) -> ApiStatus {
    match status {
        Status::Draft => ApiStatus::Draft,
        Status::Published => ApiStatus::Published,
        Status::Deprecated => ApiStatus::Deprecated,
        Status::Retired => ApiStatus::Retired,
    }
}

fn dto(status: ApiStatus) -> Status {
    match status {
        ApiStatus::Draft => Status::Draft,
        ApiStatus::Published => Status::Published,
        ApiStatus::Deprecated => Status::Deprecated,
        ApiStatus::Retired => Status::Retired,
    }
}
