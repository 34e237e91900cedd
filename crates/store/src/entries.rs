//! Stored configuration entries: model aliases, prompts and prompt APIs, each the mapping of
//! a config file's entry as JSON, in tables of the same columns (`name`, `settings`,
//! `managed_by`, `created_at`, `updated_at`). One implementation of put/get/list/delete for
//! the three: the audit row is written in the same transaction, `managed_by` protects what
//! `apply` owns, storing what is stored already changes nothing (so `apply` is idempotent), and
//! every change publishes [`Change::Config`]. The public, typed functions are in `models.rs` and
//! `prompts.rs`.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{now_ms, Store};
use crate::error::StoreError;
use crate::providers::validate_config_name;
use crate::records::StoredEntry;
use crate::rows::{
    check_managed, check_may_set_managed, cursor, fetch_limit, from_json, snapshot, to_json,
};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// The SQL of one entry table.
pub(crate) struct Table {
    kind: &'static str,
    select_one: &'static str,
    select_page: &'static str,
    select_all: &'static str,
    insert: &'static str,
    update: &'static str,
    delete: &'static str,
    created: &'static str,
    updated: &'static str,
    deleted: &'static str,
}

macro_rules! table {
    ($table:literal, $kind:literal) => {
        Table {
            kind: $kind,
            select_one: concat!(
                "SELECT name, settings, managed_by, created_at, updated_at FROM ",
                $table,
                " WHERE name = $1"
            ),
            select_page: concat!(
                "SELECT name, settings, managed_by, created_at, updated_at FROM ",
                $table,
                " WHERE name > $1 ORDER BY name LIMIT $2"
            ),
            select_all: concat!(
                "SELECT name, settings, managed_by, created_at, updated_at FROM ",
                $table,
                " ORDER BY name"
            ),
            insert: concat!(
                "INSERT INTO ",
                $table,
                " (name, settings, managed_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)"
            ),
            update: concat!(
                "UPDATE ",
                $table,
                " SET settings = $1, managed_by = $2, updated_at = $3 WHERE name = $4"
            ),
            delete: concat!("DELETE FROM ", $table, " WHERE name = $1"),
            created: concat!($kind, ".create"),
            updated: concat!($kind, ".update"),
            deleted: concat!($kind, ".delete"),
        }
    };
}

pub(crate) const MODELS: Table = table!("models", "model");
pub(crate) const PROMPTS: Table = table!("prompts", "prompt");
pub(crate) const APIS: Table = table!("apis", "api");

fn entry_from_row(row: &AnyRow) -> Result<StoredEntry, StoreError> {
    Ok(StoredEntry {
        name: row.try_get("name")?,
        settings: from_json("settings", &row.try_get::<String, _>("settings")?)?,
        managed_by: row.try_get("managed_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn not_found(table: &Table, name: &str) -> StoreError {
    StoreError::NotFound {
        kind: table.kind,
        name: name.to_owned(),
    }
}

async fn entry_in_tx(
    tx: &mut Transaction<'static, Any>,
    table: &Table,
    name: &str,
) -> Result<Option<StoredEntry>, StoreError> {
    let row = sqlx::query(table.select_one)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// What a put checks against the stored entry, inside the write transaction.
pub(crate) type Guard = fn(name: &str, old: &Value, new: &Value) -> Result<(), StoreError>;

pub(crate) fn no_guard(_: &str, _: &Value, _: &Value) -> Result<(), StoreError> {
    Ok(())
}

impl Store {
    pub(crate) async fn put_entry(
        &self,
        table: &Table,
        put: Put<'_>,
        guard: Guard,
    ) -> Result<StoredEntry, StoreError> {
        let Put {
            actor,
            name,
            settings,
            managed_by,
        } = put;
        let kind = table.kind;
        validate_config_name(kind, name)?;
        check_may_set_managed(actor, managed_by.is_some())?;
        if !settings.is_object() {
            return Err(StoreError::Invalid(format!(
                "{kind} settings must be a mapping (a JSON object)"
            )));
        }
        let mut tx = self.begin_write().await?;
        let existing = entry_in_tx(&mut tx, table, name).await?;
        if let Some(existing) = &existing {
            check_managed(actor, kind, name, existing.managed_by.as_deref())?;
            guard(name, &existing.settings, &settings)?;
        }
        let now = now_ms();
        let entry = StoredEntry {
            name: name.to_owned(),
            settings,
            managed_by,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let settings_text = to_json(&entry.settings)?;
        let action = match &existing {
            Some(existing) => {
                if existing.settings == entry.settings && existing.managed_by == entry.managed_by {
                    return Ok(existing.clone());
                }
                sqlx::query(table.update)
                    .bind(settings_text)
                    .bind(&entry.managed_by)
                    .bind(entry.updated_at)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                table.updated
            }
            None => {
                sqlx::query(table.insert)
                    .bind(name)
                    .bind(settings_text)
                    .bind(&entry.managed_by)
                    .bind(entry.created_at)
                    .bind(entry.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        StoreError::unique(e, || format!("{kind} `{name}` already exists"))
                    })?;
                table.created
            }
        };
        let record = AuditRecord {
            actor,
            action,
            object_kind: kind,
            object_id: name,
            org_id: None,
            before: existing.as_ref().map(snapshot).transpose()?,
            after: Some(snapshot(&entry)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Config).await;
        Ok(entry)
    }

    pub(crate) async fn get_entry(
        &self,
        table: &Table,
        name: &str,
    ) -> Result<StoredEntry, StoreError> {
        let row = sqlx::query(table.select_one)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(entry_from_row)
            .transpose()?
            .ok_or_else(|| not_found(table, name))
    }

    pub(crate) async fn list_entries(
        &self,
        table: &Table,
        page: &PageRequest,
    ) -> Result<Page<StoredEntry>, StoreError> {
        let rows = sqlx::query(table.select_page)
            .bind(cursor(page))
            .bind(fetch_limit(page))
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |e| e.name.clone()))
    }

    pub(crate) async fn all_entries(&self, table: &Table) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(table.select_all).fetch_all(&self.pool).await?;
        rows.iter().map(entry_from_row).collect()
    }

    pub(crate) async fn delete_entry(
        &self,
        table: &Table,
        actor: &Actor,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = entry_in_tx(&mut tx, table, name)
            .await?
            .ok_or_else(|| not_found(table, name))?;
        check_managed(actor, table.kind, name, before.managed_by.as_deref())?;
        sqlx::query(table.delete)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: table.deleted,
            object_kind: table.kind,
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

/// The inputs of a put.
pub(crate) struct Put<'a> {
    pub(crate) actor: &'a Actor,
    pub(crate) name: &'a str,
    pub(crate) settings: Value,
    pub(crate) managed_by: Option<String>,
}
