//! `/orgs/{org}/subscriptions`: an app's requests for `requires_approval` models and APIs.
//! Developers of the app's team request; admins of the organisation approve or reject (with a
//! reason the app's callers then see), which also notifies the approval webhook.

use super::auth::Caller;
use super::dto::{Page, RejectSubscription, RequestSubscription, Subscription, SubscriptionParams};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, OptionalBody, Params};
use super::openapi::Errors;
use super::teams::team;
use super::webhook;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_core::auth::roles::Action;
use switchboard_store::{PageRequest, SubscriptionFilter, SubscriptionKind, SubscriptionStatus};

/// The organisation's subscriptions the caller may read.
#[utoipa::path(get, path = "/orgs/{org}/subscriptions", tag = "subscriptions", params(
        ("org" = String, Path, description = "Organisation name"), SubscriptionParams),
    responses((status = 200, body = Page<Subscription>), Errors))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Params(params): Params<SubscriptionParams>,
) -> ApiResult<Json<Page<Subscription>>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let status = params
        .status
        .as_deref()
        .map(str::parse::<SubscriptionStatus>)
        .transpose()
        .map_err(|e| ApiError::from(e).with_param("status"))?;
    let mut filter = SubscriptionFilter {
        status,
        app_id: None,
    };
    let mut team_id = None;
    if let Some(name) = &params.team {
        let team = team(store, &org, name).await?;
        caller.require(&org, Some((&team.id, &team.name)), Action::Read)?;
        if let Some(app) = &params.app {
            filter.app_id = Some(store.get_app(&org.id, &team.id, app).await?.id);
        }
        team_id = Some(team.id);
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
    let page = store.list_subscriptions(&org.id, &filter, &page).await?;
    let keep = |s: &switchboard_store::Subscription| {
        team_id.as_ref().is_none_or(|t| *t == s.team_id)
            && caller.may(&org.id, Some(&s.team_id), Action::Read)
    };
    Ok(Json(Page::from_store(page, keep, Subscription::from)))
}

/// Asks for a model alias (`model`) or prompt API (`api`) for an app; asking again after a
/// rejection makes the request pending again.
#[utoipa::path(post, path = "/orgs/{org}/subscriptions", tag = "subscriptions",
    request_body = RequestSubscription,
    params(("org" = String, Path, description = "Organisation name")),
    responses((status = 201, body = Subscription), Errors))]
pub async fn request_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(body): Body<RequestSubscription>,
) -> ApiResult<(StatusCode, Json<Subscription>)> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let team = team(store, &org, &body.team).await?;
    caller.require(
        &org,
        Some((&team.id, &team.name)),
        Action::RequestSubscription,
    )?;
    let app = store.get_app(&org.id, &team.id, &body.app).await?;
    let (kind, target) = match (body.model, body.api) {
        (Some(model), None) => {
            if !state.gateway.snapshot().config.models.contains_key(&model) {
                return Err(ApiError::not_found("model", &model).with_param("model"));
            }
            (SubscriptionKind::Model, model)
        }
        (None, Some(api)) => (SubscriptionKind::Api, api),
        _ => {
            return Err(ApiError::invalid_field(
                "model",
                "give exactly one of `model` (a model alias) and `api` (a prompt API name)",
            ))
        }
    };
    let sub = store
        .request_subscription(&caller.actor, &org.id, &app.id, kind, &target)
        .await?;
    super::access_changed(&state);
    Ok((StatusCode::CREATED, Json(sub.into())))
}

/// One subscription.
#[utoipa::path(get, path = "/orgs/{org}/subscriptions/{id}", tag = "subscriptions", params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = Subscription), Errors))]
pub async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<Subscription>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    let sub = store.get_subscription(&org.id, &id).await?;
    if !caller.may(&org.id, Some(&sub.team_id), Action::Read) {
        let team = store.get_team_by_id(&org.id, &sub.team_id).await?;
        caller.require(&org, Some((&team.id, &team.name)), Action::Read)?;
    }
    Ok(Json(sub.into()))
}

/// Approves a subscription (org admin).
#[utoipa::path(post, path = "/orgs/{org}/subscriptions/{id}/approve", tag = "subscriptions",
    params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = Subscription), Errors))]
pub async fn approve_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<Json<Subscription>> {
    decide(&state, &caller, &org, &id, None, true).await
}

/// Rejects a subscription, or withdraws an approval (org admin); `reason` is shown to callers.
#[utoipa::path(post, path = "/orgs/{org}/subscriptions/{id}/reject", tag = "subscriptions",
    request_body(content = Option<RejectSubscription>, description = "Optional"), params(
        ("org" = String, Path, description = "Organisation name"),
        ("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = Subscription), Errors))]
pub async fn reject_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    OptionalBody(body): OptionalBody<RejectSubscription>,
) -> ApiResult<Json<Subscription>> {
    decide(&state, &caller, &org, &id, body.reason, false).await
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    org: &str,
    id: &str,
    reason: Option<String>,
    approve: bool,
) -> ApiResult<Json<Subscription>> {
    let store = &state.runtime.store;
    let org = caller.org(store, org).await?;
    caller.require(&org, None, Action::DecideSubscriptions)?;
    let sub = if approve {
        store
            .approve_subscription(&caller.actor, &org.id, id)
            .await?
    } else {
        store
            .reject_subscription(&caller.actor, &org.id, id, reason)
            .await?
    };
    super::access_changed(state);
    let url = state
        .gateway
        .snapshot()
        .config
        .access
        .approval_webhook
        .clone();
    if url.is_some() {
        // The app's name for the receiver; the decision stands even if this lookup fails.
        let app = match store.get_app_by_id(&org.id, &sub.app_id).await {
            Ok(app) => app.name,
            Err(_) => sub.app_id.clone(),
        };
        let event = webhook::Event {
            event: if approve {
                "subscription.approved"
            } else {
                "subscription.rejected"
            },
            reason: sub.reason.clone(),
            at: sub.decided_at.unwrap_or_default(),
            subscription: sub.clone().into(),
            org: org.name.clone(),
            app,
        };
        webhook::notify(url, event);
    }
    Ok(Json(sub.into()))
}
