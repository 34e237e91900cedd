//! Prompts and prompt APIs stored through the admin API or `apply`: the mapping of a config
//! file's `prompts:` or `apis:` entry, as JSON, kept like stored models (audit row in the same
//! transaction, `managed_by`, [`Change::Config`] after each change). The gateway merges them
//! into its config through [`Store::stored_layer`](crate::Store::stored_layer).
//!
//! Prompt versions are immutable, and this is the one place that enforces it for stored
//! prompts: [`Store::put_prompt`] refuses, inside its write transaction, a mapping in which an
//! existing version has other content or is missing ([`StoreError::Immutable`]). Writes are
//! serialised (`begin_write`), so the check reads what is committed: two writers that both
//! append "the next version" cannot both win with different texts.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{now_ms, Store};
use crate::error::StoreError;
use crate::providers::validate_config_name;
use crate::records::{StoredApi, StoredPrompt};
use crate::rows::{
    check_managed, check_may_set_managed, cursor, fetch_limit, from_json, snapshot, to_json,
};
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use switchboard_core::config::immutable;

/// The SQL of one of the two tables, which have the same columns.
struct Table {
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

const PROMPTS: Table = table!("prompts", "prompt");
const APIS: Table = table!("apis", "api");

/// A row of either table (also the audit snapshot's shape).
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Entry {
    name: String,
    settings: Value,
    managed_by: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<Entry> for StoredPrompt {
    fn from(e: Entry) -> StoredPrompt {
        StoredPrompt {
            name: e.name,
            settings: e.settings,
            managed_by: e.managed_by,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

impl From<Entry> for StoredApi {
    fn from(e: Entry) -> StoredApi {
        StoredApi {
            name: e.name,
            settings: e.settings,
            managed_by: e.managed_by,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

fn entry_from_row(row: &AnyRow) -> Result<Entry, StoreError> {
    Ok(Entry {
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
) -> Result<Option<Entry>, StoreError> {
    let row = sqlx::query(table.select_one)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(entry_from_row).transpose()
}

/// What a put checks against the stored entry, inside the write transaction.
type Guard = fn(name: &str, old: &Value, new: &Value) -> Result<(), StoreError>;

fn versions_unchanged(name: &str, old: &Value, new: &Value) -> Result<(), StoreError> {
    immutable::check_stored(name, old, new).map_err(StoreError::Immutable)
}

fn no_guard(_: &str, _: &Value, _: &Value) -> Result<(), StoreError> {
    Ok(())
}

impl Store {
    /// Creates or replaces a stored prompt. Refused with [`StoreError::Immutable`] when a
    /// version the stored prompt has is changed or left out (labels may change freely).
    /// Storing what is stored already changes nothing (no audit row, no change event).
    pub async fn put_prompt(
        &self,
        actor: &Actor,
        name: &str,
        settings: Value,
        managed_by: Option<String>,
    ) -> Result<StoredPrompt, StoreError> {
        let put = Put {
            actor,
            name,
            settings,
            managed_by,
        };
        self.put_entry(&PROMPTS, put, versions_unchanged)
            .await
            .map(Into::into)
    }

    /// The stored prompt `name`.
    pub async fn get_prompt(&self, name: &str) -> Result<StoredPrompt, StoreError> {
        self.get_entry(&PROMPTS, name).await.map(Into::into)
    }

    /// A page of stored prompts in name order; the cursor is the last name seen.
    pub async fn list_prompts(&self, page: &PageRequest) -> Result<Page<StoredPrompt>, StoreError> {
        let page = self.list_entries(&PROMPTS, page).await?;
        Ok(convert(page))
    }

    /// Every stored prompt in name order, for building the gateway's config.
    pub async fn stored_prompts(&self) -> Result<Vec<StoredPrompt>, StoreError> {
        let all = self.all_entries(&PROMPTS).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Deletes a stored prompt with all its versions (the caller checks that no API uses it).
    pub async fn delete_prompt(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        self.delete_entry(&PROMPTS, actor, name).await
    }

    /// Creates or replaces a stored prompt API.
    pub async fn put_api(
        &self,
        actor: &Actor,
        name: &str,
        settings: Value,
        managed_by: Option<String>,
    ) -> Result<StoredApi, StoreError> {
        let put = Put {
            actor,
            name,
            settings,
            managed_by,
        };
        self.put_entry(&APIS, put, no_guard).await.map(Into::into)
    }

    /// The stored API `name`.
    pub async fn get_api(&self, name: &str) -> Result<StoredApi, StoreError> {
        self.get_entry(&APIS, name).await.map(Into::into)
    }

    /// A page of stored APIs in name order; the cursor is the last name seen.
    pub async fn list_apis(&self, page: &PageRequest) -> Result<Page<StoredApi>, StoreError> {
        let page = self.list_entries(&APIS, page).await?;
        Ok(convert(page))
    }

    /// Every stored API in name order, for building the gateway's config.
    pub async fn stored_apis(&self) -> Result<Vec<StoredApi>, StoreError> {
        let all = self.all_entries(&APIS).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Deletes a stored API.
    pub async fn delete_api(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        self.delete_entry(&APIS, actor, name).await
    }

    async fn put_entry(
        &self,
        table: &Table,
        put: Put<'_>,
        guard: Guard,
    ) -> Result<Entry, StoreError> {
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
        let entry = Entry {
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

    async fn get_entry(&self, table: &Table, name: &str) -> Result<Entry, StoreError> {
        let row = sqlx::query(table.select_one)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(entry_from_row)
            .transpose()?
            .ok_or_else(|| not_found(table, name))
    }

    async fn list_entries(
        &self,
        table: &Table,
        page: &PageRequest,
    ) -> Result<Page<Entry>, StoreError> {
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

    async fn all_entries(&self, table: &Table) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(table.select_all).fetch_all(&self.pool).await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn delete_entry(
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

fn convert<T: From<Entry>>(page: Page<Entry>) -> Page<T> {
    Page {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }
}

/// The inputs of a put.
struct Put<'a> {
    actor: &'a Actor,
    name: &'a str,
    settings: Value,
    managed_by: Option<String>,
}
