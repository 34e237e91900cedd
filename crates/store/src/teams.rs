//! Teams: groups within an organisation that own apps. Every lookup names the organisation, so
//! a team of another tenant is simply not found.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{new_id, now_ms, Store};
use crate::error::StoreError;
use crate::records::{NewTeam, Team, TeamPatch};
use crate::rows::{
    check_managed, check_may_set_managed, cursor, fetch_limit, snapshot, validate_slug,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const KIND: &str = "team";

macro_rules! select_team {
    ($tail:literal) => {
        concat!(
            "SELECT id, org_id, name, managed_by, created_at, updated_at FROM teams ",
            $tail
        )
    };
}

fn team_from_row(row: &AnyRow) -> Result<Team, StoreError> {
    Ok(Team {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        managed_by: row.try_get("managed_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        name: name.to_owned(),
    }
}

/// Fails with "organisation not found" unless `org_id` exists (checked before inserting, so
/// that the caller sees a 404 rather than a foreign-key error).
pub(crate) async fn require_org(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT id FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound {
            kind: "organisation",
            name: org_id.to_owned(),
        }),
    }
}

/// The team `name` of `org_id`, read inside a write transaction.
async fn team_in_tx(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    name: &str,
) -> Result<Team, StoreError> {
    let row = sqlx::query(select_team!("WHERE org_id = $1 AND name = $2"))
        .bind(org_id)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref()
        .map(team_from_row)
        .transpose()?
        .ok_or_else(|| not_found(name))
}

impl Store {
    /// Creates a team in an organisation; its name must be a slug free within the org.
    pub async fn create_team(
        &self,
        actor: &Actor,
        org_id: &str,
        new: NewTeam,
    ) -> Result<Team, StoreError> {
        validate_slug(KIND, &new.name)?;
        check_may_set_managed(actor, new.managed_by.is_some())?;
        let now = now_ms();
        let team = Team {
            id: new_id("team"),
            org_id: org_id.to_owned(),
            name: new.name,
            managed_by: new.managed_by,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin_write().await?;
        require_org(&mut tx, org_id).await?;
        sqlx::query(
            "INSERT INTO teams (id, org_id, name, managed_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&team.id)
        .bind(&team.org_id)
        .bind(&team.name)
        .bind(&team.managed_by)
        .bind(team.created_at)
        .bind(team.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("{KIND} `{}` already exists", team.name)))?;
        let record = AuditRecord {
            actor,
            action: "team.create",
            object_kind: "team",
            object_id: &team.id,
            org_id: Some(org_id),
            before: None,
            after: Some(snapshot(&team)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        Ok(team)
    }

    /// The team `name` of the organisation.
    pub async fn get_team(&self, org_id: &str, name: &str) -> Result<Team, StoreError> {
        let row = sqlx::query(select_team!("WHERE org_id = $1 AND name = $2"))
            .bind(org_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(team_from_row)
            .transpose()?
            .ok_or_else(|| not_found(name))
    }

    /// The team with this id, if it belongs to the organisation.
    pub async fn get_team_by_id(&self, org_id: &str, id: &str) -> Result<Team, StoreError> {
        let row = sqlx::query(select_team!("WHERE org_id = $1 AND id = $2"))
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(team_from_row)
            .transpose()?
            .ok_or_else(|| not_found(id))
    }

    /// A page of the organisation's teams in id (creation) order.
    pub async fn list_teams(
        &self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Team>, StoreError> {
        let rows = sqlx::query(select_team!(
            "WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(org_id)
        .bind(cursor(page))
        .bind(fetch_limit(page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(team_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |t| t.id.clone()))
    }

    /// Changes a team (today only who manages it, which only `apply` may change).
    pub async fn update_team(
        &self,
        actor: &Actor,
        org_id: &str,
        name: &str,
        patch: TeamPatch,
    ) -> Result<Team, StoreError> {
        check_may_set_managed(actor, patch.managed_by.is_some())?;
        let mut tx = self.begin_write().await?;
        let before = team_in_tx(&mut tx, org_id, name).await?;
        check_managed(actor, KIND, name, before.managed_by.as_deref())?;
        let mut team = before.clone();
        if let Some(managed_by) = patch.managed_by {
            team.managed_by = managed_by;
        }
        if team == before {
            return Ok(before);
        }
        team.updated_at = now_ms();
        sqlx::query("UPDATE teams SET managed_by = $1, updated_at = $2 WHERE id = $3")
            .bind(&team.managed_by)
            .bind(team.updated_at)
            .bind(&team.id)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "team.update",
            object_kind: "team",
            object_id: &team.id,
            org_id: Some(org_id),
            before: Some(snapshot(&before)?),
            after: Some(snapshot(&team)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        Ok(team)
    }

    /// Deletes a team with its apps and their keys and subscriptions.
    pub async fn delete_team(
        &self,
        actor: &Actor,
        org_id: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = team_in_tx(&mut tx, org_id, name).await?;
        check_managed(actor, KIND, name, before.managed_by.as_deref())?;
        sqlx::query("DELETE FROM teams WHERE id = $1")
            .bind(&before.id)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "team.delete",
            object_kind: "team",
            object_id: &before.id,
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
