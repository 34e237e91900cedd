//! `/orgs/{org}/teams` and `/orgs/{org}/teams/{team}/apps`: teams (made and deleted by org
//! admins) and their apps (managed by admins of the org or of the team). Everything is looked up
//! within the URL's organisation.

use super::auth::Caller;
use super::dto::{App, CreateApp, CreateTeam, Page, PageParams, Team, UpdateApp};
use super::error::ApiResult;
use super::extract::{Body, Params};
use super::openapi::Errors;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_core::auth::roles::Action;
use switchboard_store::{AppPatch, NewApp, NewTeam, Org, Store};

/// The team `name` of `org` (404 when it has none).
pub(super) async fn team(
    store: &Store,
    org: &Org,
    name: &str,
) -> ApiResult<switchboard_store::Team> {
    Ok(store.get_team(&org.id, name).await?)
}

/// The organisation and the team of the URL, with `action` checked on the team.
async fn org_team(
    state: &AppState,
    caller: &Caller,
    org: &str,
    team_name: &str,
    action: Action,
) -> ApiResult<(Org, switchboard_store::Team)> {
    let store = &state.runtime.store;
    let org = caller.org(store, org).await?;
    let team = team(store, &org, team_name).await?;
    caller.require(&org, Some((&team.id, &team.name)), action)?;
    Ok((org, team))
}

/// The organisation's teams the caller may read.
#[utoipa::path(get, path = "/orgs/{org}/teams", tag = "teams", params(
        ("org" = String, Path, description = "Organisation name"), PageParams),
    responses((status = 200, body = Page<Team>), Errors))]
pub async fn list_teams(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<Team>>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let page = store.list_teams(&org.id, &page.request()).await?;
    let keep = |t: &switchboard_store::Team| caller.may(&org.id, Some(&t.id), Action::Read);
    Ok(Json(Page::from_store(page, keep, Team::from)))
}

/// Creates a team (org admin).
#[utoipa::path(post, path = "/orgs/{org}/teams", tag = "teams", request_body = CreateTeam,
    params(("org" = String, Path, description = "Organisation name")),
    responses((status = 201, body = Team), Errors))]
pub async fn create_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(body): Body<CreateTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    caller.require(&org, None, Action::ManageTeams)?;
    let new = NewTeam {
        name: body.name,
        managed_by: None,
    };
    let team = store.create_team(&caller.actor, &org.id, new).await?;
    Ok((StatusCode::CREATED, Json(team.into())))
}

/// One team.
#[utoipa::path(get, path = "/orgs/{org}/teams/{team}", tag = "teams", params(
        ("org" = String, Path, description = "Organisation name"),
        ("team" = String, Path, description = "Team name")),
    responses((status = 200, body = Team), Errors))]
pub async fn get_team(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<Json<Team>> {
    let (_, team) = org_team(&state, &caller, &org, &team, Action::Read).await?;
    Ok(Json(team.into()))
}

/// Deletes a team with its apps and their keys (org admin).
#[utoipa::path(delete, path = "/orgs/{org}/teams/{team}", tag = "teams", params(
        ("org" = String, Path, description = "Organisation name"),
        ("team" = String, Path, description = "Team name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let team = self::team(store, &org, &team).await?;
    caller.require(&org, None, Action::ManageTeams)?;
    store
        .delete_team(&caller.actor, &org.id, &team.name)
        .await?;
    super::access_changed(&state);
    Ok(StatusCode::NO_CONTENT)
}

/// The team's apps.
#[utoipa::path(get, path = "/orgs/{org}/teams/{team}/apps", tag = "teams", params(
        ("org" = String, Path, description = "Organisation name"),
        ("team" = String, Path, description = "Team name"), PageParams),
    responses((status = 200, body = Page<App>), Errors))]
pub async fn list_apps(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<App>>> {
    let (org, team) = org_team(&state, &caller, &org, &team, Action::Read).await?;
    let page = state
        .runtime
        .store
        .list_apps(&org.id, Some(&team.id), &page.request())
        .await?;
    Ok(Json(Page::from_store(page, |_| true, App::from)))
}

/// Creates an app in the team (admin of the team or org).
#[utoipa::path(post, path = "/orgs/{org}/teams/{team}/apps", tag = "teams",
    request_body = CreateApp, params(
        ("org" = String, Path, description = "Organisation name"),
        ("team" = String, Path, description = "Team name")),
    responses((status = 201, body = App), Errors))]
pub async fn create_app(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
    Body(body): Body<CreateApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    let (org, team) = org_team(&state, &caller, &org, &team, Action::ManageApps).await?;
    let new = NewApp {
        name: body.name,
        models: body.models,
        apis: body.apis,
        managed_by: None,
    };
    let app = state
        .runtime
        .store
        .create_app(&caller.actor, &org.id, &team.id, new)
        .await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// One app.
#[utoipa::path(get, path = "/orgs/{org}/teams/{team}/apps/{app}", tag = "teams", params(
        ("org" = String, Path, description = "Organisation name"),
        ("team" = String, Path, description = "Team name"),
        ("app" = String, Path, description = "App name")),
    responses((status = 200, body = App), Errors))]
pub async fn get_app(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team, app)): Path<(String, String, String)>,
) -> ApiResult<Json<App>> {
    let (org, team) = org_team(&state, &caller, &org, &team, Action::Read).await?;
    let app = state.runtime.store.get_app(&org.id, &team.id, &app).await?;
    Ok(Json(app.into()))
}

/// Changes the models and APIs an app may call (admin of the team or org).
#[utoipa::path(patch, path = "/orgs/{org}/teams/{team}/apps/{app}", tag = "teams",
    request_body = UpdateApp, params(
        ("org" = String, Path, description = "Organisation name"),
        ("team" = String, Path, description = "Team name"),
        ("app" = String, Path, description = "App name")),
    responses((status = 200, body = App), Errors))]
pub async fn update_app(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team, app)): Path<(String, String, String)>,
    Body(body): Body<UpdateApp>,
) -> ApiResult<Json<App>> {
    let (org, team) = org_team(&state, &caller, &org, &team, Action::ManageApps).await?;
    let patch = AppPatch {
        models: body.models,
        apis: body.apis,
        managed_by: None,
    };
    let app = state
        .runtime
        .store
        .update_app(&caller.actor, &org.id, &team.id, &app, patch)
        .await?;
    super::access_changed(&state);
    Ok(Json(app.into()))
}

/// Deletes an app with its keys and subscriptions (admin of the team or org).
#[utoipa::path(delete, path = "/orgs/{org}/teams/{team}/apps/{app}", tag = "teams", params(
        ("org" = String, Path, description = "Organisation name"),
        ("team" = String, Path, description = "Team name"),
        ("app" = String, Path, description = "App name")),
    responses((status = 204, description = "Deleted"), Errors))]
pub async fn delete_app(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team, app)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (org, team) = org_team(&state, &caller, &org, &team, Action::ManageApps).await?;
    state
        .runtime
        .store
        .delete_app(&caller.actor, &org.id, &team.id, &app)
        .await?;
    super::access_changed(&state);
    Ok(StatusCode::NO_CONTENT)
}
