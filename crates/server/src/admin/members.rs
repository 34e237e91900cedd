//! `/orgs/{org}/members` (who holds which role) and `/users` (the people known to the
//! installation, platform admin only). Admins manage developers and viewers; only owners give or
//! take the owner and admin roles, so that an admin cannot raise themselves or remove an owner.

use super::auth::Caller;
use super::dto::{AddMember, CreateUser, Member, Page, PageParams, UpdateMember, User};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Params};
use super::openapi::Errors;
use super::teams::team;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_core::auth::roles::{Action, Role};
use switchboard_store::{Membership, NewUser, Org, PageRequest, Store};

/// The action needed to give or take `role`.
fn action_for(role: Role) -> Action {
    if role.at_least(Role::Admin) {
        Action::ManagePrivilegedMembers
    } else {
        Action::ManageMembers
    }
}

/// Checks `action` where the membership applies (its team, or the whole organisation).
async fn require_on(
    store: &Store,
    caller: &Caller,
    org: &Org,
    team_id: Option<&str>,
    action: Action,
) -> ApiResult<()> {
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

/// The membership `id` of the organisation. The store looks memberships up by organisation in
/// pages; organisations have few, so this walks them.
async fn membership(store: &Store, org: &Org, id: &str) -> ApiResult<Membership> {
    let mut page = PageRequest {
        limit: Some(PageRequest::MAX_LIMIT),
        cursor: None,
    };
    loop {
        let found = store.list_memberships(&org.id, &page).await?;
        if let Some(m) = found.items.into_iter().find(|m| m.id == id) {
            return Ok(m);
        }
        match found.next_cursor {
            Some(next) => page.cursor = Some(next),
            None => return Err(ApiError::not_found("membership", id)),
        }
    }
}

/// The organisation's memberships the caller may read.
#[utoipa::path(get, path = "/orgs/{org}/members", tag = "members", params(
        ("org" = String, Path, description = "Organisation name"), PageParams),
    responses((status = 200, body = Page<Member>), Errors))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<Member>>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let page = store.list_memberships(&org.id, &page.request()).await?;
    let keep = |m: &Membership| caller.may(&org.id, m.team_id.as_deref(), Action::Read);
    Ok(Json(Page::from_store(page, keep, Member::from)))
}

/// Gives a person a role on the organisation or one of its teams.
#[utoipa::path(post, path = "/orgs/{org}/members", tag = "members", request_body = AddMember,
    params(("org" = String, Path, description = "Organisation name")),
    responses((status = 201, body = Member), Errors))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(body): Body<AddMember>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let team = match &body.team {
        Some(name) => Some(team(store, &org, name).await?),
        None => None,
    };
    let role = Role::from(body.role);
    let scope = team.as_ref().map(|t| (t.id.as_str(), t.name.as_str()));
    caller.require(&org, scope, action_for(role))?;
    let user_id = match (body.user_id, body.subject) {
        (Some(id), None) => store.get_user(&id).await?.id,
        (None, Some(subject)) => match store.find_user_by_subject(&subject).await? {
            Some(user) => user.id,
            None => {
                let new = NewUser {
                    subject,
                    email: None,
                    name: None,
                };
                store.upsert_user(&caller.actor, new).await?.id
            }
        },
        _ => {
            return Err(ApiError::invalid_field(
                "user_id",
                "give exactly one of `user_id` and `subject`",
            ))
        }
    };
    let team_id = team.as_ref().map(|t| t.id.as_str());
    let membership = store
        .add_membership(&caller.actor, &user_id, &org.id, team_id, role)
        .await?;
    Ok((StatusCode::CREATED, Json(membership.into())))
}

/// Changes the role of a membership.
#[utoipa::path(patch, path = "/orgs/{org}/members/{id}", tag = "members",
    request_body = UpdateMember, params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Membership id")),
    responses((status = 200, body = Member), Errors))]
pub async fn update_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    Body(body): Body<UpdateMember>,
) -> ApiResult<Json<Member>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let before = membership(store, &org, &id).await?;
    let role = Role::from(body.role);
    // Both the old and the new role must be within the caller's reach.
    let action = action_for(role.min(before.role));
    require_on(store, &caller, &org, before.team_id.as_deref(), action).await?;
    let after = store
        .update_membership(&caller.actor, &org.id, &id, role)
        .await?;
    Ok(Json(after.into()))
}

/// Takes a role away.
#[utoipa::path(delete, path = "/orgs/{org}/members/{id}", tag = "members", params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Membership id")),
    responses((status = 204, description = "Removed"), Errors))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let before = membership(store, &org, &id).await?;
    let action = action_for(before.role);
    require_on(store, &caller, &org, before.team_id.as_deref(), action).await?;
    store.remove_membership(&caller.actor, &org.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every user (platform admin only: users are shared by all organisations).
#[utoipa::path(get, path = "/users", tag = "members", params(PageParams),
    responses((status = 200, body = Page<User>), Errors))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<User>>> {
    caller.require_platform()?;
    let page = state.runtime.store.list_users(&page.request()).await?;
    Ok(Json(Page::from_store(page, |_| true, User::from)))
}

/// Records a user by OIDC subject, or updates the one with that subject (platform admin only).
#[utoipa::path(post, path = "/users", tag = "members", request_body = CreateUser,
    responses((status = 201, body = User), (status = 200, body = User), Errors))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require_platform()?;
    let store = &state.runtime.store;
    let existed = store.find_user_by_subject(&body.subject).await?.is_some();
    let new = NewUser {
        subject: body.subject,
        email: body.email,
        name: body.name,
    };
    let user = store.upsert_user(&caller.actor, new).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(user.into())))
}
