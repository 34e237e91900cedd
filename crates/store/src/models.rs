//! Model aliases stored through the admin API or `apply`: the mapping of a config file's
//! `models:` entry, as JSON. The gateway merges them into its config (see
//! [`Store::stored_models`]); every change publishes [`Change::Config`].

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{now_ms, Store};
use crate::error::StoreError;
use crate::providers::validate_config_name;
use crate::records::StoredModel;
use crate::rows::{
    check_managed, check_may_set_managed, cursor, fetch_limit, from_json, snapshot, to_json,
};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const KIND: &str = "model";

macro_rules! select_model {
    ($tail:literal) => {
        concat!(
            "SELECT name, settings, managed_by, created_at, updated_at FROM models ",
            $tail
        )
    };
}

fn model_from_row(row: &AnyRow) -> Result<StoredModel, StoreError> {
    Ok(StoredModel {
        name: row.try_get("name")?,
        settings: from_json("settings", &row.try_get::<String, _>("settings")?)?,
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

async fn model_in_tx(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<Option<StoredModel>, StoreError> {
    let row = sqlx::query(select_model!("WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(model_from_row).transpose()
}

impl Store {
    /// Creates or replaces a stored model alias. Storing what is stored already changes
    /// nothing (no audit row, no change event), so `apply` is idempotent.
    pub async fn put_model(
        &self,
        actor: &Actor,
        name: &str,
        settings: Value,
        managed_by: Option<String>,
    ) -> Result<StoredModel, StoreError> {
        validate_config_name(KIND, name)?;
        check_may_set_managed(actor, managed_by.is_some())?;
        if !settings.is_object() {
            return Err(StoreError::Invalid(format!(
                "{KIND} settings must be a mapping (a JSON object)"
            )));
        }
        let mut tx = self.begin_write().await?;
        let existing = model_in_tx(&mut tx, name).await?;
        if let Some(existing) = &existing {
            check_managed(actor, KIND, name, existing.managed_by.as_deref())?;
        }
        let now = now_ms();
        let model = StoredModel {
            name: name.to_owned(),
            settings,
            managed_by,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let settings_text = to_json(&model.settings)?;
        let action = match &existing {
            Some(existing) => {
                if existing.settings == model.settings && existing.managed_by == model.managed_by {
                    return Ok(existing.clone());
                }
                sqlx::query(
                    "UPDATE models SET settings = $1, managed_by = $2, updated_at = $3 \
                     WHERE name = $4",
                )
                .bind(settings_text)
                .bind(&model.managed_by)
                .bind(model.updated_at)
                .bind(name)
                .execute(&mut *tx)
                .await?;
                "model.update"
            }
            None => {
                sqlx::query(
                    "INSERT INTO models (name, settings, managed_by, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(name)
                .bind(settings_text)
                .bind(&model.managed_by)
                .bind(model.created_at)
                .bind(model.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, || format!("{KIND} `{name}` already exists")))?;
                "model.create"
            }
        };
        let record = AuditRecord {
            actor,
            action,
            object_kind: "model",
            object_id: name,
            org_id: None,
            before: existing.as_ref().map(snapshot).transpose()?,
            after: Some(snapshot(&model)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Config).await;
        Ok(model)
    }

    /// The stored model alias `name`.
    pub async fn get_model(&self, name: &str) -> Result<StoredModel, StoreError> {
        let row = sqlx::query(select_model!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(model_from_row)
            .transpose()?
            .ok_or_else(|| not_found(name))
    }

    /// A page of stored model aliases in name order; the cursor is the last name seen.
    pub async fn list_models(&self, page: &PageRequest) -> Result<Page<StoredModel>, StoreError> {
        let rows = sqlx::query(select_model!("WHERE name > $1 ORDER BY name LIMIT $2"))
            .bind(cursor(page))
            .bind(fetch_limit(page))
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(model_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |m| m.name.clone()))
    }

    /// Every stored model alias in name order, for building the gateway's config.
    pub async fn stored_models(&self) -> Result<Vec<StoredModel>, StoreError> {
        let rows = sqlx::query(select_model!("ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(model_from_row).collect()
    }

    /// Deletes a stored model alias.
    pub async fn delete_model(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = model_in_tx(&mut tx, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        check_managed(actor, KIND, name, before.managed_by.as_deref())?;
        sqlx::query("DELETE FROM models WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "model.delete",
            object_kind: "model",
            object_id: name,
            org_id: None,
            before: Some(snapshot(&before)?),
            after: None,
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Config).await;
        Ok(())
    }
}
