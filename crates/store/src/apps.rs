//! Apps: what a team builds and what virtual keys usually belong to; an app's model and API
//! lists bound what its keys may call. Every lookup names the organisation (and the team where
//! a name is used), so another tenant's app is simply not found.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{new_id, now_ms, Store};
use crate::error::StoreError;
use crate::records::{App, AppPatch, NewApp};
use crate::rows::{
    check_managed, check_may_set_managed, cursor, fetch_limit, from_json_opt, snapshot,
    to_json_opt, validate_list, validate_slug,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const KIND: &str = "app";

macro_rules! select_app {
    ($tail:literal) => {
        concat!(
            "SELECT id, org_id, team_id, name, models, apis, managed_by, created_at, updated_at ",
            "FROM apps ",
            $tail
        )
    };
}

fn app_from_row(row: &AnyRow) -> Result<App, StoreError> {
    Ok(App {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        team_id: row.try_get("team_id")?,
        name: row.try_get("name")?,
        models: from_json_opt("models", row.try_get("models")?)?,
        apis: from_json_opt("apis", row.try_get("apis")?)?,
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

/// The app `name` of a team of `org_id`, read inside a write transaction.
async fn app_in_tx(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    team_id: &str,
    name: &str,
) -> Result<App, StoreError> {
    let row = sqlx::query(select_app!(
        "WHERE org_id = $1 AND team_id = $2 AND name = $3"
    ))
    .bind(org_id)
    .bind(team_id)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref()
        .map(app_from_row)
        .transpose()?
        .ok_or_else(|| not_found(name))
}

impl Store {
    /// Creates an app in a team of the organisation.
    pub async fn create_app(
        &self,
        actor: &Actor,
        org_id: &str,
        team_id: &str,
        new: NewApp,
    ) -> Result<App, StoreError> {
        validate_slug(KIND, &new.name)?;
        validate_list("models", new.models.as_deref())?;
        validate_list("apis", new.apis.as_deref())?;
        check_may_set_managed(actor, new.managed_by.is_some())?;
        let now = now_ms();
        let app = App {
            id: new_id("app"),
            org_id: org_id.to_owned(),
            team_id: team_id.to_owned(),
            name: new.name,
            models: new.models,
            apis: new.apis,
            managed_by: new.managed_by,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin_write().await?;
        // The team must be this organisation's: a team id of another tenant is "not found".
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
        sqlx::query(
            "INSERT INTO apps (id, org_id, team_id, name, models, apis, managed_by, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&app.id)
        .bind(&app.org_id)
        .bind(&app.team_id)
        .bind(&app.name)
        .bind(to_json_opt(app.models.as_ref())?)
        .bind(to_json_opt(app.apis.as_ref())?)
        .bind(&app.managed_by)
        .bind(app.created_at)
        .bind(app.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("{KIND} `{}` already exists", app.name)))?;
        let record = AuditRecord {
            actor,
            action: "app.create",
            object_kind: "app",
            object_id: &app.id,
            org_id: Some(org_id),
            before: None,
            after: Some(snapshot(&app)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        Ok(app)
    }

    /// The app `name` of a team of the organisation.
    pub async fn get_app(
        &self,
        org_id: &str,
        team_id: &str,
        name: &str,
    ) -> Result<App, StoreError> {
        let row = sqlx::query(select_app!(
            "WHERE org_id = $1 AND team_id = $2 AND name = $3"
        ))
        .bind(org_id)
        .bind(team_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(app_from_row)
            .transpose()?
            .ok_or_else(|| not_found(name))
    }

    /// The app with this id, if it belongs to the organisation.
    pub async fn get_app_by_id(&self, org_id: &str, id: &str) -> Result<App, StoreError> {
        let row = sqlx::query(select_app!("WHERE org_id = $1 AND id = $2"))
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(app_from_row)
            .transpose()?
            .ok_or_else(|| not_found(id))
    }

    /// A page of the organisation's apps (of one team, or of all) in id (creation) order.
    pub async fn list_apps(
        &self,
        org_id: &str,
        team_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<App>, StoreError> {
        let cursor = cursor(page);
        let rows = match team_id {
            Some(team_id) => {
                sqlx::query(select_app!(
                    "WHERE org_id = $1 AND team_id = $2 AND id > $3 ORDER BY id LIMIT $4"
                ))
                .bind(org_id)
                .bind(team_id)
                .bind(cursor)
                .bind(fetch_limit(page))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(select_app!(
                    "WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(org_id)
                .bind(cursor)
                .bind(fetch_limit(page))
                .fetch_all(&self.pool)
                .await?
            }
        };
        let items = rows
            .iter()
            .map(app_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |a| a.id.clone()))
    }

    /// Changes an app's model and API lists (or, for `apply`, who manages it).
    pub async fn update_app(
        &self,
        actor: &Actor,
        org_id: &str,
        team_id: &str,
        name: &str,
        patch: AppPatch,
    ) -> Result<App, StoreError> {
        if let Some(models) = &patch.models {
            validate_list("models", models.as_deref())?;
        }
        if let Some(apis) = &patch.apis {
            validate_list("apis", apis.as_deref())?;
        }
        check_may_set_managed(actor, patch.managed_by.is_some())?;
        let mut tx = self.begin_write().await?;
        let before = app_in_tx(&mut tx, org_id, team_id, name).await?;
        check_managed(actor, KIND, name, before.managed_by.as_deref())?;
        let mut app = before.clone();
        if let Some(models) = patch.models {
            app.models = models;
        }
        if let Some(apis) = patch.apis {
            app.apis = apis;
        }
        if let Some(managed_by) = patch.managed_by {
            app.managed_by = managed_by;
        }
        if app == before {
            return Ok(before);
        }
        app.updated_at = now_ms();
        sqlx::query(
            "UPDATE apps SET models = $1, apis = $2, managed_by = $3, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(to_json_opt(app.models.as_ref())?)
        .bind(to_json_opt(app.apis.as_ref())?)
        .bind(&app.managed_by)
        .bind(app.updated_at)
        .bind(&app.id)
        .execute(&mut *tx)
        .await?;
        let record = AuditRecord {
            actor,
            action: "app.update",
            object_kind: "app",
            object_id: &app.id,
            org_id: Some(org_id),
            before: Some(snapshot(&before)?),
            after: Some(snapshot(&app)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        // The lists bound what the app's keys may call: cached grants are stale.
        self.publish(Change::Access).await;
        Ok(app)
    }

    /// Deletes an app with its keys and subscriptions.
    pub async fn delete_app(
        &self,
        actor: &Actor,
        org_id: &str,
        team_id: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = app_in_tx(&mut tx, org_id, team_id, name).await?;
        check_managed(actor, KIND, name, before.managed_by.as_deref())?;
        sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(&before.id)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "app.delete",
            object_kind: "app",
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
