//! `/providers` and `/models`: providers and model aliases kept in the database, with the same
//! mapping a config file's entry takes. A change is validated first by building the whole
//! effective config (the server's file plus the stored layer with the change) and refused with
//! the problems if that fails; names the server's file defines are read-only here (the file
//! wins). After a change this instance rebuilds its config before answering, and the store's
//! change event makes every other instance do the same. Provider API keys are stored encrypted
//! and never returned. Anyone with a role may read; only the platform admin writes.

use super::auth::Caller;
use super::dto::{Model, Page, PageParams, Provider};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Params};
use super::openapi::Errors;
use crate::http::AppState;
use crate::runtime::ConfigSource;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

/// The sections of stored config (prompts and APIs have their handlers in `admin::prompts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Section {
    Providers,
    Models,
    Prompts,
    Apis,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Providers => "providers",
            Section::Models => "models",
            Section::Prompts => "prompts",
            Section::Apis => "apis",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Section::Providers => "provider",
            Section::Models => "model",
            Section::Prompts => "prompt",
            Section::Apis => "API",
        }
    }
}

/// Reading needs the platform admin key or a role somewhere.
pub(super) fn require_reader(caller: &Caller) -> ApiResult<()> {
    if caller.is_platform() || !caller.roles().is_empty() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "reading stored config (providers, models, prompts, APIs) needs a role in an \
             organisation",
        ))
    }
}

/// Whether the server's own config (file or fixed text) defines `name` in `section`: such
/// entries are not the admin API's to change.
fn defined_by_server(source: &ConfigSource, section: Section, name: &str) -> bool {
    source.defined(section.key()).contains(name)
}

pub(super) fn refuse_server_defined(
    state: &AppState,
    section: Section,
    name: &str,
) -> ApiResult<()> {
    if defined_by_server(&state.runtime.source, section, name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "defined_in_config_file",
            format!(
                "{} `{name}` is defined in the server's config file ({}): change it there",
                section.kind(),
                state.runtime.source.name()
            ),
        ));
    }
    Ok(())
}

/// The stored layer as it would be with `name` set to `value` (or removed, for `None`), checked
/// by loading the whole config. A provider left without `api_key` keeps its stored key.
pub(super) async fn validate(
    state: &AppState,
    section: Section,
    name: &str,
    value: Option<&Value>,
) -> ApiResult<()> {
    let store = &state.runtime.store;
    // The whole stored layer (rules too): deleting a model a stored budget downgrades to
    // must fail here, not at the next reload.
    let mut layer = store.stored_layer().await?;
    let entries = match section {
        Section::Providers => &mut layer.providers,
        Section::Models => &mut layer.models,
        Section::Prompts => &mut layer.prompts,
        Section::Apis => &mut layer.apis,
    };
    let old = entries
        .iter()
        .position(|(n, _)| n == name)
        .map(|i| entries.remove(i).1);
    if let Some(value) = value {
        let mut value = value.clone();
        if let (Some(Value::Object(old)), Value::Object(new)) = (&old, &mut value) {
            if section == Section::Providers && !new.contains_key("api_key") {
                if let Some(key) = old.get("api_key") {
                    new.insert("api_key".to_owned(), key.clone());
                }
            }
        }
        entries.push((name.to_owned(), value));
    }
    match state.runtime.source.load(&layer) {
        Ok(_) => Ok(()),
        Err(errors) => {
            let problems: Vec<String> = errors
                .problems
                .iter()
                .map(|p| {
                    if p.key.is_empty() {
                        p.message.clone()
                    } else {
                        format!("{}: {}", p.key, p.message)
                    }
                })
                .collect();
            let what = if value.is_some() {
                format!("{} `{name}` is not valid", section.kind())
            } else {
                format!("{} `{name}` cannot be deleted", section.kind())
            };
            let message = format!("{what}: {}", problems.join("; "));
            Err(if value.is_some() {
                ApiError::bad_request(message).with_param(name)
            } else {
                ApiError::conflict(message)
            })
        }
    }
}

/// Rebuilds this instance's config so that the change is live when the answer arrives.
pub(super) async fn reload(state: &AppState) {
    if let Err(why) = state.runtime.reload().await {
        tracing::warn!(%why, "Config rebuild after a stored change was refused.");
    }
}

pub(super) fn object(section: Section, body: Value) -> ApiResult<Value> {
    if body.is_object() {
        Ok(body)
    } else {
        Err(ApiError::bad_request(format!(
            "the body must be the {}'s mapping, as in a config file's `{}:` section (a JSON \
             object)",
            section.kind(),
            section.key()
        )))
    }
}

/// Stored providers (never their API keys).
#[utoipa::path(get, path = "/providers", tag = "config", params(PageParams),
    responses((status = 200, body = Page<Provider>), Errors))]
pub async fn list_providers(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<Provider>>> {
    require_reader(&caller)?;
    let page = state.runtime.store.list_providers(&page.request()).await?;
    Ok(Json(Page::from_store(page, |_| true, Provider::from)))
}

/// One stored provider.
#[utoipa::path(get, path = "/providers/{name}", tag = "config",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 200, body = Provider), Errors))]
pub async fn get_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Provider>> {
    require_reader(&caller)?;
    Ok(Json(state.runtime.store.get_provider(&name).await?.into()))
}

/// Creates or replaces a stored provider (platform admin). `api_key` is encrypted at rest
/// (needs `SWITCHBOARD_SECRET_KEY`); left out, the stored key is kept; null removes it.
#[utoipa::path(put, path = "/providers/{name}", tag = "config",
    request_body(content = Object, description = "The provider's config mapping"),
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 200, body = Provider), (status = 201, body = Provider), Errors))]
pub async fn put_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<Provider>)> {
    caller.require_platform()?;
    let body = object(Section::Providers, body)?;
    refuse_server_defined(&state, Section::Providers, &name)?;
    validate(&state, Section::Providers, &name, Some(&body)).await?;
    let store = &state.runtime.store;
    let existed = store.get_provider(&name).await.is_ok();
    let provider = store.put_provider(&caller.actor, &name, body, None).await?;
    reload(&state).await;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(provider.into())))
}

/// Deletes a stored provider (platform admin); refused while a model uses it.
#[utoipa::path(delete, path = "/providers/{name}", tag = "config",
    params(("name" = String, Path, description = "Provider name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Providers, &name)?;
    let store = &state.runtime.store;
    store.get_provider(&name).await?;
    validate(&state, Section::Providers, &name, None).await?;
    store.delete_provider(&caller.actor, &name).await?;
    reload(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Stored model aliases.
#[utoipa::path(get, path = "/models", tag = "config", params(PageParams),
    responses((status = 200, body = Page<Model>), Errors))]
pub async fn list_models(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<Model>>> {
    require_reader(&caller)?;
    let page = state.runtime.store.list_models(&page.request()).await?;
    Ok(Json(Page::from_store(page, |_| true, Model::from)))
}

/// One stored model alias.
#[utoipa::path(get, path = "/models/{name}", tag = "config",
    params(("name" = String, Path, description = "Model alias")),
    responses((status = 200, body = Model), Errors))]
pub async fn get_model(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Model>> {
    require_reader(&caller)?;
    Ok(Json(state.runtime.store.get_model(&name).await?.into()))
}

/// Creates or replaces a stored model alias (platform admin).
#[utoipa::path(put, path = "/models/{name}", tag = "config",
    request_body(content = Object, description = "The model's config mapping"),
    params(("name" = String, Path, description = "Model alias")),
    responses((status = 200, body = Model), (status = 201, body = Model), Errors))]
pub async fn put_model(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<Model>)> {
    caller.require_platform()?;
    let body = object(Section::Models, body)?;
    refuse_server_defined(&state, Section::Models, &name)?;
    validate(&state, Section::Models, &name, Some(&body)).await?;
    let store = &state.runtime.store;
    let existed = store.get_model(&name).await.is_ok();
    let model = store.put_model(&caller.actor, &name, body, None).await?;
    reload(&state).await;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(model.into())))
}

/// Deletes a stored model alias (platform admin); refused while another alias falls back to it.
#[utoipa::path(delete, path = "/models/{name}", tag = "config",
    params(("name" = String, Path, description = "Model alias")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_model(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_platform()?;
    refuse_server_defined(&state, Section::Models, &name)?;
    let store = &state.runtime.store;
    store.get_model(&name).await?;
    validate(&state, Section::Models, &name, None).await?;
    store.delete_model(&caller.actor, &name).await?;
    reload(&state).await;
    Ok(StatusCode::NO_CONTENT)
}
