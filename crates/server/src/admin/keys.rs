//! `/orgs/{org}/keys`: virtual keys of the organisation's apps and people. The secret is in the
//! answer to create and rotate only. Developers manage the keys of their team's apps; a person
//! manages their own personal keys with any role of developer or above in the organisation;
//! someone else's personal key needs an admin. Revocation takes effect on the very next request
//! (the store publishes the change and the key cache drops the grant).

use super::auth::Caller;
use super::dto::{CreateKey, CreatedKey, Key, KeyParams, Page, RotateKey, UpdateKey};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, OptionalBody, Params};
use super::openapi::Errors;
use super::teams::team;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_core::auth::roles::Action;
use switchboard_store::{KeyFilter, KeyPatch, KeyRecord, NewKey, Org, PageRequest, Store};

use switchboard_types::calendar::now_ms;

/// Checks `action` on a key: a person's own personal key needs the action anywhere in the
/// organisation; another person's personal key needs an admin where it applies; an app key needs
/// the action on the app's team.
async fn require_key(
    store: &Store,
    caller: &Caller,
    org: &Org,
    team_id: Option<&str>,
    user_id: Option<&str>,
    action: Action,
) -> ApiResult<()> {
    let own = user_id.is_some() && user_id == caller.user_id();
    if own && caller.may_somewhere(&org.id, action) {
        return Ok(());
    }
    let action = if user_id.is_some() && !own && action != Action::Read {
        Action::ManageMembers
    } else {
        action
    };
    if caller.may(&org.id, team_id, action) {
        return Ok(());
    }
    let team = match team_id {
        Some(id) => Some(store.get_team_by_id(&org.id, id).await?),
        None => None,
    };
    caller.require(
        org,
        team.as_ref().map(|t| (t.id.as_str(), t.name.as_str())),
        action,
    )
}

/// The key `id` of the URL's organisation with `action` checked.
async fn key_for(
    state: &AppState,
    caller: &Caller,
    org: &str,
    id: &str,
    action: Action,
) -> ApiResult<(Org, KeyRecord)> {
    let store = &state.runtime.store;
    let org = caller.org(store, org).await?;
    let key = store.get_key(&org.id, id).await?;
    require_key(
        store,
        caller,
        &org,
        key.team_id.as_deref(),
        key.user_id.as_deref(),
        action,
    )
    .await?;
    Ok((org, key))
}

/// The organisation's keys the caller may read, without secrets.
#[utoipa::path(get, path = "/orgs/{org}/keys", tag = "keys", params(
        ("org" = String, Path, description = "Organisation name"), KeyParams),
    responses((status = 200, body = Page<Key>), Errors))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Params(params): Params<KeyParams>,
) -> ApiResult<Json<Page<Key>>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let mut filter = KeyFilter {
        user_id: params.user_id.clone(),
        include_revoked: params.include_revoked,
        ..KeyFilter::default()
    };
    if let Some(name) = &params.team {
        let team = team(store, &org, name).await?;
        caller.require(&org, Some((&team.id, &team.name)), Action::Read)?;
        if let Some(app) = &params.app {
            filter.app_id = Some(store.get_app(&org.id, &team.id, app).await?.id);
        }
        filter.team_id = Some(team.id);
    } else if params.app.is_some() {
        return Err(ApiError::invalid_field(
            "team",
            "`app` needs `team` (app names are unique within a team)",
        ));
    }
    let page = PageRequest {
        limit: params.limit,
        cursor: params.cursor.clone(),
    };
    let page = store.list_keys(&org.id, &filter, &page).await?;
    let now = now_ms();
    let keep = |k: &KeyRecord| {
        caller.may(&org.id, k.team_id.as_deref(), Action::Read)
            || (k.user_id.is_some() && k.user_id.as_deref() == caller.user_id())
    };
    Ok(Json(Page::from_store(page, keep, |k| {
        Key::from_record(k, now)
    })))
}

/// Makes a key for an app (`team` + `app`) or a person (`user_id`); the secret is shown once.
#[utoipa::path(post, path = "/orgs/{org}/keys", tag = "keys", request_body = CreateKey,
    params(("org" = String, Path, description = "Organisation name")),
    responses((status = 201, body = CreatedKey), Errors))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(body): Body<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let team = match &body.team {
        Some(name) => Some(team(store, &org, name).await?),
        None => None,
    };
    let team_id = team.as_ref().map(|t| t.id.clone());
    let app_id = match (&body.app, &body.user_id) {
        (Some(app), None) => {
            let Some(team) = &team else {
                return Err(ApiError::invalid_field(
                    "team",
                    "field `team` is required with `app`",
                ));
            };
            caller.require(&org, Some((&team.id, &team.name)), Action::ManageKeys)?;
            Some(store.get_app(&org.id, &team.id, app).await?.id)
        }
        (None, Some(user_id)) => {
            let action = Action::ManageKeys;
            require_key(
                store,
                &caller,
                &org,
                team_id.as_deref(),
                Some(user_id),
                action,
            )
            .await?;
            None
        }
        _ => {
            return Err(ApiError::invalid_field(
                "app",
                "give `team` and `app` for an app's key, or `user_id` for a personal key",
            ))
        }
    };
    let new = NewKey {
        org_id: org.id.clone(),
        team_id,
        app_id,
        user_id: body.user_id,
        name: body.name,
        models: body.models,
        apis: body.apis,
        metadata: body.metadata.unwrap_or_default(),
        expires_at: body.expires_at,
    };
    let created = store.create_key(&caller.actor, new).await?;
    let out = CreatedKey {
        key: Key::from_record(created.record, now_ms()),
        secret: created.secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(out)))
}

/// One key (no secret).
#[utoipa::path(get, path = "/orgs/{org}/keys/{id}", tag = "keys", params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Key), Errors))]
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<Key>> {
    let (_, key) = key_for(&state, &caller, &org, &id, Action::Read).await?;
    Ok(Json(Key::from_record(key, now_ms())))
}

/// Changes a key's name, model and API lists, metadata or expiry.
#[utoipa::path(patch, path = "/orgs/{org}/keys/{id}", tag = "keys", request_body = UpdateKey,
    params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Key), Errors))]
pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    Body(body): Body<UpdateKey>,
) -> ApiResult<Json<Key>> {
    let (org, _) = key_for(&state, &caller, &org, &id, Action::ManageKeys).await?;
    let patch = KeyPatch {
        name: body.name,
        models: body.models,
        apis: body.apis,
        metadata: body.metadata,
        expires_at: body.expires_at,
    };
    let key = state
        .runtime
        .store
        .update_key(&caller.actor, &org.id, &id, patch)
        .await?;
    super::access_changed(&state);
    Ok(Json(Key::from_record(key, now_ms())))
}

async fn revoke(state: &AppState, caller: &Caller, org: &str, id: &str) -> ApiResult<Json<Key>> {
    let (org, _) = key_for(state, caller, org, id, Action::ManageKeys).await?;
    let key = state
        .runtime
        .store
        .revoke_key(&caller.actor, &org.id, id)
        .await?;
    super::access_changed(state);
    Ok(Json(Key::from_record(key, now_ms())))
}

/// Revokes a key (same as `POST .../revoke`).
#[utoipa::path(delete, path = "/orgs/{org}/keys/{id}", tag = "keys", params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Key, description = "The revoked key"), Errors))]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<Key>> {
    revoke(&state, &caller, &org, &id).await
}

/// Revokes a key at once; revoking a revoked key changes nothing.
#[utoipa::path(post, path = "/orgs/{org}/keys/{id}/revoke", tag = "keys", params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Key, description = "The revoked key"), Errors))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<Key>> {
    revoke(&state, &caller, &org, &id).await
}

/// Replaces a key with a new one; the old one keeps working for `grace_ms` (default the config's
/// `access.rotation_grace_ms`). The new secret is shown once.
#[utoipa::path(post, path = "/orgs/{org}/keys/{id}/rotate", tag = "keys",
    request_body(content = Option<RotateKey>, description = "Optional"), params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Key id")),
    responses((status = 201, body = CreatedKey, description = "The new key"), Errors))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    OptionalBody(body): OptionalBody<RotateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let (org, _) = key_for(&state, &caller, &org, &id, Action::ManageKeys).await?;
    let grace_ms = match body.grace_ms {
        Some(ms) => ms,
        None => {
            let grace = state.gateway.snapshot().config.access.rotation_grace;
            i64::try_from(grace.as_millis()).unwrap_or(i64::MAX)
        }
    };
    let created = state
        .runtime
        .store
        .rotate_key(&caller.actor, &org.id, &id, grace_ms)
        .await?;
    super::access_changed(&state);
    let out = CreatedKey {
        key: Key::from_record(created.record, now_ms()),
        secret: created.secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(out)))
}
