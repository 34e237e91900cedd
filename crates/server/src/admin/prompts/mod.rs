//! `/prompts` and `/apis`: prompts and prompt APIs kept in the database, with the mapping a
//! config file's `prompts:`/`apis:` entry takes, managed like stored models (see
//! `admin::config`): every write builds the whole effective config with the change and is
//! refused with the problems if it does not validate, names the server's file defines are
//! read-only here, and this instance reloads before answering. Anyone with a role reads (and
//! renders in the playground); only the platform admin writes.
//!
//! Versions are immutable: `POST /prompts/{name}/versions` appends the next number, and a
//! `PUT` that changes or drops an existing version is refused by the store (409
//! `version_immutable`). Labels move freely (`/prompts/{name}/labels/{label}`).

mod apis;
pub mod dto;
mod lifecycle;
mod render;

pub use apis::*;
pub use render::*;

use super::auth::Caller;
use super::config::{object, refuse_server_defined, reload, require_reader, validate, Section};
use super::dto::{Page, PageParams};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Params};
use super::openapi::Errors;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dto::{LabelTarget, NewVersion, Prompt, PromptVersion};
use serde_json::{json, Map, Value};
use switchboard_core::config::immutable;
use switchboard_store::StoreError;

/// Stored prompts.
#[utoipa::path(get, path = "/prompts", tag = "prompts", params(PageParams),
    responses((status = 200, body = Page<Prompt>), Errors))]
pub async fn list_prompts(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<Prompt>>> {
    require_reader(&caller)?;
    let page = state.runtime.store.list_prompts(&page.request()).await?;
    Ok(Json(Page::from_store(page, |_| true, Prompt::from)))
}

/// One stored prompt with its versions and labels.
#[utoipa::path(get, path = "/prompts/{name}", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name")),
    responses((status = 200, body = Prompt), Errors))]
pub async fn get_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Prompt>> {
    require_reader(&caller)?;
    Ok(Json(state.runtime.store.get_prompt(&name).await?.into()))
}

/// Creates or replaces a stored prompt (platform admin). Existing versions must be sent
/// unchanged (409 `version_immutable` otherwise); new versions and label changes are free.
#[utoipa::path(put, path = "/prompts/{name}", tag = "prompts",
    request_body(content = Object, description = "The prompt's config mapping"),
    params(("name" = String, Path, description = "Prompt name")),
    responses((status = 200, body = Prompt), (status = 201, body = Prompt), Errors))]
pub async fn put_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<Prompt>)> {
    caller.require_platform()?;
    let body = object(Section::Prompts, body)?;
    refuse_server_defined(&state, Section::Prompts, &name)?;
    let existing = match state.runtime.store.get_prompt(&name).await {
        Ok(stored) => Some(stored),
        Err(StoreError::NotFound { .. }) => None,
        Err(err) => return Err(err.into()),
    };
    let existed = existing.is_some();
    // The store refuses this too (inside its transaction, the authority); checked first here
    // so that dropping a version a label points at reports the immutability, not the label.
    if let Some(stored) = &existing {
        immutable::check_stored(&name, &stored.settings, &body)
            .map_err(|conflict| ApiError::from(StoreError::Immutable(conflict)))?;
    }
    let prompt = store_prompt(&state, &caller, &name, body).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(prompt)))
}

/// Deletes a stored prompt and all its versions (platform admin); refused (409) while an API
/// uses it.
#[utoipa::path(delete, path = "/prompts/{name}", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Prompts, &name)?;
    let store = &state.runtime.store;
    store.get_prompt(&name).await?;
    validate(&state, Section::Prompts, &name, None).await?;
    store.delete_prompt(&caller.actor, &name).await?;
    reload(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Appends a version to a stored prompt (platform admin): its number is the highest one plus
/// one. Labels are not moved: point one at the new version with `PUT .../labels/{label}`.
#[utoipa::path(post, path = "/prompts/{name}/versions", tag = "prompts",
    request_body = NewVersion,
    params(("name" = String, Path, description = "Prompt name")),
    responses((status = 201, body = PromptVersion), Errors))]
pub async fn add_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<NewVersion>,
) -> ApiResult<(StatusCode, Json<PromptVersion>)> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Prompts, &name)?;
    let mut settings = state.runtime.store.get_prompt(&name).await?.settings;
    let number = versions(&settings)
        .iter()
        .map(|(n, _)| *n)
        .max()
        .unwrap_or(0)
        + 1;
    let mut version = Map::new();
    version.insert("version".into(), json!(number));
    for (field, value) in [
        ("system", &body.system),
        ("user", &body.user),
        ("note", &body.note),
    ] {
        if let Some(value) = value {
            version.insert(field.into(), Value::String(value.clone()));
        }
    }
    if let Some(params) = body.params.clone().filter(|p| !p.is_empty()) {
        version.insert("params".into(), Value::Object(params));
    }
    let Some(map) = settings.as_object_mut() else {
        return Err(unreadable(&name));
    };
    match map
        .entry("versions")
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(list) => list.push(Value::Object(version)),
        _ => return Err(unreadable(&name)),
    }
    store_prompt(&state, &caller, &name, settings).await?;
    let created = PromptVersion {
        prompt: name,
        version: number,
        system: body.system,
        user: body.user,
        params: body.params.unwrap_or_default(),
        note: body.note,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Points a label at a version, or splits it between versions by weight (platform admin).
/// 404 when a version does not exist.
#[utoipa::path(put, path = "/prompts/{name}/labels/{label}", tag = "prompts",
    request_body = LabelTarget,
    params(("name" = String, Path, description = "Prompt name"),
        ("label" = String, Path, description = "Label, e.g. `production`")),
    responses((status = 200, body = Prompt), Errors))]
pub async fn put_label(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, label)): Path<(String, String)>,
    Body(body): Body<LabelTarget>,
) -> ApiResult<Json<Prompt>> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Prompts, &name)?;
    let mut settings = state.runtime.store.get_prompt(&name).await?.settings;
    let known: Vec<u32> = versions(&settings).iter().map(|(n, _)| *n).collect();
    let missing = |v: u32| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("prompt `{name}` has no version {v}"),
        )
        .with_param("version")
    };
    let target = match (body.version, body.split) {
        (Some(v), None) => {
            if !known.contains(&v) {
                return Err(missing(v));
            }
            json!(v)
        }
        (None, Some(arms)) => {
            if let Some(arm) = arms.iter().find(|a| !known.contains(&a.version)) {
                return Err(missing(arm.version));
            }
            json!({ "split": arms })
        }
        _ => {
            return Err(ApiError::bad_request(
                "the body is `{\"version\": n}` or `{\"split\": [{\"version\": n, \"weight\": w}, ...]}`",
            ))
        }
    };
    let Some(map) = settings.as_object_mut() else {
        return Err(unreadable(&name));
    };
    match map
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(labels) => {
            labels.insert(label, target);
        }
        _ => return Err(unreadable(&name)),
    }
    Ok(Json(store_prompt(&state, &caller, &name, settings).await?))
}

/// Removes a label (platform admin); refused (409) while an API serves it.
#[utoipa::path(delete, path = "/prompts/{name}/labels/{label}", tag = "prompts",
    params(("name" = String, Path, description = "Prompt name"),
        ("label" = String, Path, description = "Label")),
    responses((status = 200, body = Prompt), Errors))]
pub async fn delete_label(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, label)): Path<(String, String)>,
) -> ApiResult<Json<Prompt>> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Prompts, &name)?;
    let mut settings = state.runtime.store.get_prompt(&name).await?.settings;
    let removed = settings
        .get_mut("labels")
        .and_then(Value::as_object_mut)
        .and_then(|labels| labels.remove(&label));
    if removed.is_none() {
        return Err(ApiError::not_found("label", &format!("{name}/{label}")));
    }
    // A label an API serves cannot go: that is a conflict with the API, not a bad request.
    let stored = store_prompt(&state, &caller, &name, settings)
        .await
        .map_err(|err| match err.status {
            StatusCode::BAD_REQUEST => ApiError::conflict(err.message),
            _ => err,
        })?;
    Ok(Json(stored))
}

/// Validates the whole config with `settings` as the prompt, stores it and reloads.
async fn store_prompt(
    state: &AppState,
    caller: &Caller,
    name: &str,
    settings: Value,
) -> ApiResult<Prompt> {
    validate(state, Section::Prompts, name, Some(&settings)).await?;
    let stored = state
        .runtime
        .store
        .put_prompt(&caller.actor, name, settings, None)
        .await?;
    reload(state).await;
    Ok(stored.into())
}

/// The `(number, entry)` of each version in a stored prompt's mapping.
fn versions(settings: &Value) -> Vec<(u32, &Value)> {
    settings
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let number = v.get("version")?.as_u64()?;
            Some((u32::try_from(number).ok()?, v))
        })
        .collect()
}

fn unreadable(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "the stored prompt `{name}` is not a valid `prompts:` entry: replace it with PUT"
    ))
}
