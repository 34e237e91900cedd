//! `/orgs` and `/orgs/{org}`: organisations (tenants), and `/me`, the caller as the admin API
//! sees them. Only the platform admin creates organisations; people list the ones they hold a
//! role in, and another organisation answers 404.

use super::auth::Caller;
use super::dto::{CreateOrg, Me, MyRole, Org, Page, PageParams, UpdateOrg};
use super::error::ApiResult;
use super::extract::{Body, Params};
use super::openapi::Errors;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_core::auth::roles::Action;
use switchboard_store::{NewOrg, OrgPatch};

/// The caller: platform admin or person, with their resolved roles.
#[utoipa::path(get, path = "/me", tag = "orgs",
    responses((status = 200, body = Me), Errors))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        actor: caller.actor.id.clone(),
        platform_admin: caller.is_platform(),
        user_id: caller.user_id().map(str::to_owned),
        roles: caller
            .roles()
            .iter()
            .map(|r| MyRole {
                org_id: r.org_id.clone(),
                team_id: r.team_id.clone(),
                role: r.role.into(),
            })
            .collect(),
    })
}

/// Organisations the caller may see (all of them for the platform admin).
#[utoipa::path(get, path = "/orgs", tag = "orgs", params(PageParams),
    responses((status = 200, body = Page<Org>), Errors))]
pub async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<Org>>> {
    let only = caller.visible_orgs();
    let page = state
        .runtime
        .store
        .list_orgs(&page.request(), only.as_deref())
        .await?;
    Ok(Json(Page::from_store(page, |_| true, Org::from)))
}

/// Creates an organisation (platform admin only).
#[utoipa::path(post, path = "/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = Org), Errors))]
pub async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateOrg>,
) -> ApiResult<(StatusCode, Json<Org>)> {
    caller.require_platform()?;
    let new = NewOrg {
        name: body.name,
        display_name: body.display_name,
        managed_by: None,
    };
    let org = state.runtime.store.create_org(&caller.actor, new).await?;
    Ok((StatusCode::CREATED, Json(org.into())))
}

/// One organisation.
#[utoipa::path(get, path = "/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "Organisation name")),
    responses((status = 200, body = Org), Errors))]
pub async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<Json<Org>> {
    let org = caller.org(&state.runtime.store, &org).await?;
    Ok(Json(org.into()))
}

/// Changes an organisation's display name (owner).
#[utoipa::path(patch, path = "/orgs/{org}", tag = "orgs", request_body = UpdateOrg,
    params(("org" = String, Path, description = "Organisation name")),
    responses((status = 200, body = Org), Errors))]
pub async fn update_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(body): Body<UpdateOrg>,
) -> ApiResult<Json<Org>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    caller.require(&org, None, Action::ManageOrg)?;
    let patch = OrgPatch {
        display_name: body.display_name,
        managed_by: None,
    };
    let org = store.update_org(&caller.actor, &org.name, patch).await?;
    Ok(Json(org.into()))
}

/// Deletes an organisation with everything in it (owner).
#[utoipa::path(delete, path = "/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "Organisation name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<StatusCode> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    caller.require(&org, None, Action::ManageOrg)?;
    store.delete_org(&caller.actor, &org.name).await?;
    super::access_changed(&state);
    Ok(StatusCode::NO_CONTENT)
}
