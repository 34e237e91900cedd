//! Users (people known by their OIDC subject) and memberships (a role on an organisation or one
//! of its teams). Users are global; memberships belong to an organisation and every membership
//! call names it, so another tenant's memberships are not found.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{new_id, now_ms, Store};
use crate::error::StoreError;
use crate::records::{Membership, NewUser, User};
use crate::rows::{cursor, fetch_limit, snapshot};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use switchboard_core::auth::roles::Role;

macro_rules! select_user {
    ($tail:literal) => {
        concat!(
            "SELECT id, subject, email, name, created_at FROM users ",
            $tail
        )
    };
}

macro_rules! select_membership {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, org_id, team_id, role, created_at FROM memberships ",
            $tail
        )
    };
}

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn membership_from_row(row: &AnyRow) -> Result<Membership, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(Membership {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        org_id: row.try_get("org_id")?,
        team_id: row.try_get("team_id")?,
        role: role.parse::<Role>().map_err(|e| {
            StoreError::Database(sqlx::Error::ColumnDecode {
                index: "role".to_owned(),
                source: Box::new(e),
            })
        })?,
        created_at: row.try_get("created_at")?,
    })
}

fn user_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "user",
        name: id.to_owned(),
    }
}

fn membership_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "membership",
        name: id.to_owned(),
    }
}

async fn user_in_tx(
    tx: &mut Transaction<'static, Any>,
    id: &str,
) -> Result<Option<User>, StoreError> {
    let row = sqlx::query(select_user!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}

async fn membership_in_tx(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    id: &str,
) -> Result<Membership, StoreError> {
    let row = sqlx::query(select_membership!("WHERE org_id = $1 AND id = $2"))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref()
        .map(membership_from_row)
        .transpose()?
        .ok_or_else(|| membership_not_found(id))
}

impl Store {
    /// Records a user by OIDC subject: creates it, or updates its email and name when they
    /// changed (e.g. on each sign-in). Returns the stored user.
    pub async fn upsert_user(&self, actor: &Actor, new: NewUser) -> Result<User, StoreError> {
        if new.subject.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a user needs a non-empty subject".to_owned(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query(select_user!("WHERE subject = $1"))
            .bind(&new.subject)
            .fetch_optional(&mut *tx)
            .await?;
        let existing = existing.as_ref().map(user_from_row).transpose()?;
        let (user, before, action) = match existing {
            Some(before) => {
                if before.email == new.email && before.name == new.name {
                    return Ok(before);
                }
                let user = User {
                    email: new.email,
                    name: new.name,
                    ..before.clone()
                };
                sqlx::query("UPDATE users SET email = $1, name = $2 WHERE id = $3")
                    .bind(&user.email)
                    .bind(&user.name)
                    .bind(&user.id)
                    .execute(&mut *tx)
                    .await?;
                (user, Some(before), "user.update")
            }
            None => {
                let user = User {
                    id: new_id("user"),
                    subject: new.subject,
                    email: new.email,
                    name: new.name,
                    created_at: now_ms(),
                };
                sqlx::query(
                    "INSERT INTO users (id, subject, email, name, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&user.id)
                .bind(&user.subject)
                .bind(&user.email)
                .bind(&user.name)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    StoreError::unique(e, || format!("user `{}` already exists", user.subject))
                })?;
                (user, None, "user.create")
            }
        };
        let record = AuditRecord {
            actor,
            action,
            object_kind: "user",
            object_id: &user.id,
            org_id: None,
            before: before.as_ref().map(snapshot).transpose()?,
            after: Some(snapshot(&user)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user with this id.
    pub async fn get_user(&self, id: &str) -> Result<User, StoreError> {
        let row = sqlx::query(select_user!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or_else(|| user_not_found(id))
    }

    /// The user with this OIDC subject, if known.
    pub async fn find_user_by_subject(&self, subject: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(select_user!("WHERE subject = $1"))
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// A page of all users in id (creation) order.
    pub async fn list_users(&self, page: &PageRequest) -> Result<Page<User>, StoreError> {
        let rows = sqlx::query(select_user!("WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(cursor(page))
            .bind(fetch_limit(page))
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |u| u.id.clone()))
    }

    /// Deletes a user with their memberships and personal keys.
    pub async fn delete_user(&self, actor: &Actor, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = user_in_tx(&mut tx, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "user.delete",
            object_kind: "user",
            object_id: id,
            org_id: None,
            before: Some(snapshot(&before)?),
            after: None,
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(())
    }

    /// Gives a user a role on an organisation (`team_id` None) or one of its teams. A user has
    /// at most one role per organisation and per team.
    pub async fn add_membership(
        &self,
        actor: &Actor,
        user_id: &str,
        org_id: &str,
        team_id: Option<&str>,
        role: Role,
    ) -> Result<Membership, StoreError> {
        let membership = Membership {
            id: new_id("mem"),
            user_id: user_id.to_owned(),
            org_id: org_id.to_owned(),
            team_id: team_id.map(str::to_owned),
            role,
            created_at: now_ms(),
        };
        let mut tx = self.begin_write().await?;
        let user = user_in_tx(&mut tx, user_id)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        crate::teams::require_org(&mut tx, org_id).await?;
        if let Some(team_id) = team_id {
            let team = sqlx::query("SELECT id FROM teams WHERE id = $1 AND org_id = $2")
                .bind(team_id)
                .bind(org_id)
                .fetch_optional(&mut *tx)
                .await?;
            if team.is_none() {
                return Err(StoreError::NotFound {
                    kind: "team",
                    name: team_id.to_owned(),
                });
            }
        }
        sqlx::query(
            "INSERT INTO memberships (id, user_id, org_id, team_id, role, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&membership.id)
        .bind(&membership.user_id)
        .bind(&membership.org_id)
        .bind(&membership.team_id)
        .bind(membership.role.as_str())
        .bind(membership.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::unique(e, || {
                let scope = if team_id.is_some() {
                    "team"
                } else {
                    "organisation"
                };
                format!(
                    "user `{}` already has a role on this {scope}: remove it first",
                    user.subject
                )
            })
        })?;
        let record = AuditRecord {
            actor,
            action: "membership.create",
            object_kind: "membership",
            object_id: &membership.id,
            org_id: Some(org_id),
            before: None,
            after: Some(snapshot(&membership)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(membership)
    }

    /// A page of the organisation's memberships (its own and its teams') in id order.
    pub async fn list_memberships(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Membership>, StoreError> {
        let rows = sqlx::query(select_membership!(
            "WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(org_id)
        .bind(cursor(page))
        .bind(fetch_limit(page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(membership_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |m| m.id.clone()))
    }

    /// Every membership of a user, across organisations (to resolve a signed-in user's roles).
    pub async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<Membership>, StoreError> {
        let rows = sqlx::query(select_membership!("WHERE user_id = $1 ORDER BY id"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(membership_from_row).collect()
    }

    /// Changes the role of a membership of the organisation.
    pub async fn update_membership(
        &self,
        actor: &Actor,
        org_id: &str,
        membership_id: &str,
        role: Role,
    ) -> Result<Membership, StoreError> {
        let mut tx = self.begin_write().await?;
        let before = membership_in_tx(&mut tx, org_id, membership_id).await?;
        if before.role == role {
            return Ok(before);
        }
        let membership = Membership {
            role,
            ..before.clone()
        };
        sqlx::query("UPDATE memberships SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(membership_id)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "membership.update",
            object_kind: "membership",
            object_id: membership_id,
            org_id: Some(org_id),
            before: Some(snapshot(&before)?),
            after: Some(snapshot(&membership)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(membership)
    }

    /// Removes a membership of the organisation.
    pub async fn remove_membership(
        &self,
        actor: &Actor,
        org_id: &str,
        membership_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = membership_in_tx(&mut tx, org_id, membership_id).await?;
        sqlx::query("DELETE FROM memberships WHERE id = $1")
            .bind(membership_id)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "membership.delete",
            object_kind: "membership",
            object_id: membership_id,
            org_id: Some(org_id),
            before: Some(snapshot(&before)?),
            after: None,
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(())
    }
}
