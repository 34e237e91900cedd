//! `/audit` (the whole log, platform admin) and `/orgs/{org}/audit` (one organisation's
//! entries, its admins and owners). Entries are hash-chained; `switchboard audit verify` checks
//! the chain.

use super::auth::Caller;
use super::dto::{AuditEntry, AuditParams, Page, PageParams};
use super::error::{ApiError, ApiResult};
use super::extract::Params;
use super::openapi::Errors;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::Json;
use switchboard_core::auth::roles::Action;
use switchboard_store::{PageRequest, StoreError};

/// A bad cursor is the only invalid input of an audit listing.
fn cursor_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Invalid(message) => ApiError::invalid_field("cursor", message),
        other => other.into(),
    }
}

/// The audit log in order; `?org=` keeps one organisation's entries (platform admin only).
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = Page<AuditEntry>), Errors))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<AuditParams>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    caller.require_platform()?;
    let store = &state.runtime.store;
    let org_id = match &params.org {
        Some(name) => Some(store.get_org(name).await?.id),
        None => None,
    };
    let page = PageRequest {
        limit: params.limit,
        cursor: params.cursor.clone(),
    };
    let page = store
        .list_audit(org_id.as_deref(), &page)
        .await
        .map_err(cursor_error)?;
    Ok(Json(Page::from_store(page, |_| true, AuditEntry::from)))
}

/// One organisation's audit entries (its admins and owners).
#[utoipa::path(get, path = "/orgs/{org}/audit", tag = "audit", params(
        ("org" = String, Path, description = "Organisation name"), PageParams),
    responses((status = 200, body = Page<AuditEntry>), Errors))]
pub async fn list_org_audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Params(page): Params<PageParams>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let store = &state.runtime.store;
    let org = caller.org(store, &org).await?;
    caller.require(&org, None, Action::ReadAudit)?;
    let page = store
        .list_audit(Some(&org.id), &page.request())
        .await
        .map_err(cursor_error)?;
    Ok(Json(Page::from_store(page, |_| true, AuditEntry::from)))
}
