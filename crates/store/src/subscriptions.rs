//! Subscriptions: an app asks to use a `requires_approval` model alias or API, and an org admin
//! approves or rejects (with a reason). One row per (app, kind, target): asking again after a
//! rejection puts the same row back to pending. Lookups name the organisation, so another
//! tenant's subscription is not found.

use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{new_id, now_ms, Store};
use crate::error::StoreError;
use crate::rows::{cursor, fetch_limit, snapshot};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::fmt;
use std::str::FromStr;
pub use switchboard_core::auth::grant::SubscriptionKind;

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Pending,
    Approved,
    Rejected,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Pending => "pending",
            SubscriptionStatus::Approved => "approved",
            SubscriptionStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubscriptionStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<SubscriptionStatus, StoreError> {
        match s {
            "pending" => Ok(SubscriptionStatus::Pending),
            "approved" => Ok(SubscriptionStatus::Approved),
            "rejected" => Ok(SubscriptionStatus::Rejected),
            other => Err(StoreError::Invalid(format!(
                "unknown subscription status `{other}`: use pending, approved or rejected"
            ))),
        }
    }
}

/// The stored name of a subscription kind.
pub(crate) fn kind_str(kind: SubscriptionKind) -> &'static str {
    match kind {
        SubscriptionKind::Model => "model",
        SubscriptionKind::Api => "api",
    }
}

pub(crate) fn parse_kind(s: &str) -> Result<SubscriptionKind, StoreError> {
    match s {
        "model" => Ok(SubscriptionKind::Model),
        "api" => Ok(SubscriptionKind::Api),
        other => Err(StoreError::Database(sqlx::Error::Decode(
            format!("unknown subscription kind `{other}`").into(),
        ))),
    }
}

/// An app's request for one model alias or API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub org_id: String,
    pub team_id: String,
    pub app_id: String,
    pub kind: SubscriptionKind,
    /// The model alias or API name.
    pub target: String,
    pub status: SubscriptionStatus,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

/// Which subscriptions to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SubscriptionFilter {
    pub status: Option<SubscriptionStatus>,
    pub app_id: Option<String>,
}

const KIND: &str = "subscription";
const MAX_TARGET: usize = 200;
const MAX_REASON: usize = 2000;

const COLUMNS: &str = "id, org_id, team_id, app_id, target_kind, target, status, reason, \
     requested_by, decided_by, created_at, decided_at";

impl Store {
    /// Asks for `target` on behalf of an app of the org. Asking again while pending returns the
    /// pending request; after a rejection the request is pending again; an approved one is a
    /// conflict.
    pub async fn request_subscription(
        &self,
        actor: &Actor,
        org_id: &str,
        app_id: &str,
        kind: SubscriptionKind,
        target: &str,
    ) -> Result<Subscription, StoreError> {
        if target.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a subscription needs a model alias or API name".into(),
            ));
        }
        if target.chars().count() > MAX_TARGET {
            return Err(StoreError::Invalid(format!(
                "a subscription target has at most {MAX_TARGET} characters"
            )));
        }
        let mut tx = self.begin_write().await?;
        let team_id: Option<String> =
            sqlx::query_scalar("SELECT team_id FROM apps WHERE org_id = $1 AND id = $2")
                .bind(org_id)
                .bind(app_id)
                .fetch_optional(&mut *tx)
                .await?;
        let team_id = team_id.ok_or_else(|| StoreError::NotFound {
            kind: "app",
            name: app_id.to_owned(),
        })?;
        let sql = format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE org_id = $1 AND app_id = $2 \
             AND target_kind = $3 AND target = $4"
        );
        let existing = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(app_id)
            .bind(kind_str(kind))
            .bind(target)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| read_subscription(&row))
            .transpose()?;
        let now = now_ms();
        let (before, after) =
            match existing {
                Some(existing) => match existing.status {
                    SubscriptionStatus::Pending => return Ok(existing),
                    SubscriptionStatus::Approved => {
                        return Err(StoreError::Conflict(format!(
                        "the subscription of app `{app_id}` to {} `{target}` is already approved",
                        kind_str(kind)
                    )))
                    }
                    SubscriptionStatus::Rejected => {
                        let after = Subscription {
                            status: SubscriptionStatus::Pending,
                            reason: None,
                            requested_by: actor.id.clone(),
                            decided_by: None,
                            decided_at: None,
                            ..existing.clone()
                        };
                        sqlx::query(
                        "UPDATE subscriptions SET status = $1, reason = NULL, requested_by = $2, \
                         decided_by = NULL, decided_at = NULL WHERE org_id = $3 AND id = $4",
                    )
                    .bind(after.status.as_str())
                    .bind(after.requested_by.as_str())
                    .bind(org_id)
                    .bind(after.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                        (Some(existing), after)
                    }
                },
                None => {
                    let new = Subscription {
                        id: new_id("sub"),
                        org_id: org_id.to_owned(),
                        team_id,
                        app_id: app_id.to_owned(),
                        kind,
                        target: target.to_owned(),
                        status: SubscriptionStatus::Pending,
                        reason: None,
                        requested_by: actor.id.clone(),
                        decided_by: None,
                        created_at: now,
                        decided_at: None,
                    };
                    sqlx::query(
                    "INSERT INTO subscriptions (id, org_id, team_id, app_id, target_kind, target, \
                     status, reason, requested_by, decided_by, created_at, decided_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, NULL, $9, NULL)",
                )
                .bind(new.id.as_str())
                .bind(new.org_id.as_str())
                .bind(new.team_id.as_str())
                .bind(new.app_id.as_str())
                .bind(kind_str(new.kind))
                .bind(new.target.as_str())
                .bind(new.status.as_str())
                .bind(new.requested_by.as_str())
                .bind(new.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    StoreError::unique(e, || {
                        format!("app `{app_id}` already asked for {} `{target}`", kind_str(kind))
                    })
                })?;
                    (None, new)
                }
            };
        self.audit_subscription(
            &mut tx,
            actor,
            "subscription.request",
            before.as_ref(),
            &after,
        )
        .await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(after)
    }

    /// Approves a pending (or previously rejected) subscription.
    pub async fn approve_subscription(
        &self,
        actor: &Actor,
        org_id: &str,
        id: &str,
    ) -> Result<Subscription, StoreError> {
        self.decide(actor, org_id, id, SubscriptionStatus::Approved, None)
            .await
    }

    /// Rejects a pending subscription, or withdraws an approved one, with an optional reason
    /// shown to the app's callers.
    pub async fn reject_subscription(
        &self,
        actor: &Actor,
        org_id: &str,
        id: &str,
        reason: Option<String>,
    ) -> Result<Subscription, StoreError> {
        let reason = reason.filter(|r| !r.trim().is_empty());
        if reason
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_REASON)
        {
            return Err(StoreError::Invalid(format!(
                "a rejection reason has at most {MAX_REASON} characters"
            )));
        }
        self.decide(actor, org_id, id, SubscriptionStatus::Rejected, reason)
            .await
    }

    /// The org's subscriptions in creation order, filtered.
    pub async fn list_subscriptions(
        &self,
        org_id: &str,
        filter: &SubscriptionFilter,
        page: &PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        let limit = page.limit();
        let sql = format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE org_id = $1 \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR app_id = $3) \
             AND id > $4 ORDER BY id LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(filter.status.map(SubscriptionStatus::as_str))
            .bind(filter.app_id.as_deref())
            .bind(cursor(page))
            .bind(fetch_limit(page))
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(read_subscription)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, limit, |s| s.id.clone()))
    }

    /// One subscription of the org.
    pub async fn get_subscription(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Subscription, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM subscriptions WHERE org_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => read_subscription(&row),
            None => Err(not_found(id)),
        }
    }

    async fn decide(
        &self,
        actor: &Actor,
        org_id: &str,
        id: &str,
        status: SubscriptionStatus,
        reason: Option<String>,
    ) -> Result<Subscription, StoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!("SELECT {COLUMNS} FROM subscriptions WHERE org_id = $1 AND id = $2");
        let before = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| read_subscription(&row))
            .transpose()?
            .ok_or_else(|| not_found(id))?;
        if before.status == status {
            return Err(StoreError::Conflict(format!(
                "subscription `{id}` is already {status}"
            )));
        }
        let after = Subscription {
            status,
            reason,
            decided_by: Some(actor.id.clone()),
            decided_at: Some(now_ms()),
            ..before.clone()
        };
        sqlx::query(
            "UPDATE subscriptions SET status = $1, reason = $2, decided_by = $3, decided_at = $4 \
             WHERE org_id = $5 AND id = $6",
        )
        .bind(after.status.as_str())
        .bind(after.reason.as_deref())
        .bind(after.decided_by.as_deref())
        .bind(after.decided_at)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let action = match status {
            SubscriptionStatus::Approved => "subscription.approve",
            SubscriptionStatus::Rejected => "subscription.reject",
            SubscriptionStatus::Pending => "subscription.request",
        };
        self.audit_subscription(&mut tx, actor, action, Some(&before), &after)
            .await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(after)
    }

    async fn audit_subscription(
        &self,
        tx: &mut Transaction<'static, Any>,
        actor: &Actor,
        action: &str,
        before: Option<&Subscription>,
        after: &Subscription,
    ) -> Result<(), StoreError> {
        crate::audit::append(
            tx,
            self.backend,
            crate::audit::AuditRecord {
                actor,
                action,
                object_kind: KIND,
                object_id: &after.id,
                org_id: Some(&after.org_id),
                before: before.map(snapshot).transpose()?,
                after: Some(snapshot(after)?),
            },
        )
        .await
    }
}

fn read_subscription(row: &AnyRow) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        team_id: row.try_get("team_id")?,
        app_id: row.try_get("app_id")?,
        kind: parse_kind(&row.try_get::<String, _>("target_kind")?)?,
        target: row.try_get("target")?,
        status: row
            .try_get::<String, _>("status")?
            .parse()
            .map_err(|e: StoreError| {
                StoreError::Database(sqlx::Error::Decode(e.to_string().into()))
            })?,
        reason: row.try_get("reason")?,
        requested_by: row.try_get("requested_by")?,
        decided_by: row.try_get("decided_by")?,
        created_at: row.try_get("created_at")?,
        decided_at: row.try_get("decided_at")?,
    })
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        name: id.to_owned(),
    }
}
