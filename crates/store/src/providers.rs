//! Providers stored through the admin API or `apply`: the mapping of a config file's
//! `providers:` entry, as JSON. Its `api_key` is taken out and kept encrypted (see
//! [`crate::SecretCipher`]); reads give `has_api_key` only, and only
//! [`Store::stored_providers_decrypted`] (for building the gateway's config) returns the key.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{now_ms, Store};
use crate::error::StoreError;
use crate::records::StoredProvider;
use crate::rows::{
    check_managed, check_may_set_managed, cursor, fetch_limit, from_json, snapshot, to_json,
};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const KIND: &str = "provider";
const API_KEY: &str = "api_key";

macro_rules! select_provider {
    ($tail:literal) => {
        concat!(
            "SELECT name, settings, api_key_enc, managed_by, created_at, updated_at ",
            "FROM providers ",
            $tail
        )
    };
}

/// A row with its encrypted key.
struct ProviderRow {
    record: StoredProvider,
    api_key_enc: Option<String>,
}

fn provider_from_row(row: &AnyRow) -> Result<ProviderRow, StoreError> {
    let api_key_enc: Option<String> = row.try_get("api_key_enc")?;
    Ok(ProviderRow {
        record: StoredProvider {
            name: row.try_get("name")?,
            settings: from_json("settings", &row.try_get::<String, _>("settings")?)?,
            has_api_key: api_key_enc.is_some(),
            managed_by: row.try_get("managed_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
        api_key_enc,
    })
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        name: name.to_owned(),
    }
}

/// Names of stored providers and models: they appear in URLs and config files.
pub(crate) fn validate_config_name(kind: &str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && c != '/');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {kind} name `{name}`: 1-128 characters without spaces or `/`"
        )))
    }
}

/// What the caller asked for the API key.
enum KeyChange {
    /// No `api_key` field: keep the stored key, so that a read-modify-write does not lose it.
    Keep,
    /// `api_key: null`: remove it.
    Remove,
    Set(String),
}

fn take_api_key(settings: &mut Value) -> Result<KeyChange, StoreError> {
    let Value::Object(map) = settings else {
        return Err(StoreError::Invalid(format!(
            "{KIND} settings must be a mapping (a JSON object)"
        )));
    };
    match map.remove(API_KEY) {
        None => Ok(KeyChange::Keep),
        Some(Value::Null) => Ok(KeyChange::Remove),
        Some(Value::String(key)) if !key.is_empty() => Ok(KeyChange::Set(key)),
        Some(_) => Err(StoreError::Invalid(format!(
            "`{API_KEY}` must be a non-empty string (or null to remove the stored key)"
        ))),
    }
}

async fn provider_in_tx(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<Option<ProviderRow>, StoreError> {
    let row = sqlx::query(select_provider!("WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(provider_from_row).transpose()
}

impl Store {
    /// Creates or replaces a stored provider. `settings` is the config-file mapping; its
    /// `api_key` (if any) is encrypted, which needs `SWITCHBOARD_SECRET_KEY`; without the field
    /// the stored key is kept, `api_key: null` removes it. Storing what is stored already
    /// changes nothing (no audit row, no change event), so `apply` is idempotent.
    pub async fn put_provider(
        &self,
        actor: &Actor,
        name: &str,
        mut settings: Value,
        managed_by: Option<String>,
    ) -> Result<StoredProvider, StoreError> {
        validate_config_name(KIND, name)?;
        check_may_set_managed(actor, managed_by.is_some())?;
        let key_change = take_api_key(&mut settings)?;
        let mut tx = self.begin_write().await?;
        let existing = provider_in_tx(&mut tx, name).await?;
        if let Some(existing) = &existing {
            check_managed(actor, KIND, name, existing.record.managed_by.as_deref())?;
        }
        let old_enc = existing.as_ref().and_then(|e| e.api_key_enc.clone());
        let api_key_enc = match key_change {
            KeyChange::Keep => old_enc.clone(),
            KeyChange::Remove => None,
            KeyChange::Set(key) => {
                let cipher = self.cipher()?;
                // Re-encrypting an unchanged key would make a new ciphertext (new nonce):
                // keep the old one so that a repeated put is recognised as no change.
                let same = old_enc
                    .as_deref()
                    .is_some_and(|enc| cipher.decrypt(enc).is_ok_and(|old| old == key));
                if same {
                    old_enc.clone()
                } else {
                    Some(cipher.encrypt(&key)?)
                }
            }
        };
        let now = now_ms();
        let provider = StoredProvider {
            name: name.to_owned(),
            settings,
            has_api_key: api_key_enc.is_some(),
            managed_by,
            created_at: existing.as_ref().map_or(now, |e| e.record.created_at),
            updated_at: now,
        };
        let settings_text = to_json(&provider.settings)?;
        let action = match &existing {
            Some(existing) => {
                let unchanged = existing.record.settings == provider.settings
                    && existing.api_key_enc == api_key_enc
                    && existing.record.managed_by == provider.managed_by;
                if unchanged {
                    return Ok(existing.record.clone());
                }
                sqlx::query(
                    "UPDATE providers SET settings = $1, api_key_enc = $2, managed_by = $3, \
                     updated_at = $4 WHERE name = $5",
                )
                .bind(settings_text)
                .bind(&api_key_enc)
                .bind(&provider.managed_by)
                .bind(provider.updated_at)
                .bind(name)
                .execute(&mut *tx)
                .await?;
                "provider.update"
            }
            None => {
                sqlx::query(
                    "INSERT INTO providers (name, settings, api_key_enc, managed_by, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(name)
                .bind(settings_text)
                .bind(&api_key_enc)
                .bind(&provider.managed_by)
                .bind(provider.created_at)
                .bind(provider.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, || format!("{KIND} `{name}` already exists")))?;
                "provider.create"
            }
        };
        let record = AuditRecord {
            actor,
            action,
            object_kind: "provider",
            object_id: name,
            org_id: None,
            before: existing.as_ref().map(|e| snapshot(&e.record)).transpose()?,
            after: Some(snapshot(&provider)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Config).await;
        Ok(provider)
    }

    /// The stored provider `name` (without its key).
    pub async fn get_provider(&self, name: &str) -> Result<StoredProvider, StoreError> {
        let row = sqlx::query(select_provider!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(provider_from_row)
            .transpose()?
            .map(|p| p.record)
            .ok_or_else(|| not_found(name))
    }

    /// A page of stored providers in name order; the cursor is the last name seen.
    pub async fn list_providers(
        &self,
        page: &PageRequest,
    ) -> Result<Page<StoredProvider>, StoreError> {
        let rows = sqlx::query(select_provider!("WHERE name > $1 ORDER BY name LIMIT $2"))
            .bind(cursor(page))
            .bind(fetch_limit(page))
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(|row| provider_from_row(row).map(|p| p.record))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |p| p.name.clone()))
    }

    /// Deletes a stored provider.
    pub async fn delete_provider(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = provider_in_tx(&mut tx, name)
            .await?
            .ok_or_else(|| not_found(name))?;
        check_managed(actor, KIND, name, before.record.managed_by.as_deref())?;
        sqlx::query("DELETE FROM providers WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "provider.delete",
            object_kind: "provider",
            object_id: name,
            org_id: None,
            before: Some(snapshot(&before.record)?),
            after: None,
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Config).await;
        Ok(())
    }

    /// Every stored provider as `(name, settings)` with `api_key` put back (decrypted), in
    /// name order: what the gateway merges into its config. Fails with a clear message when a
    /// key is stored but `SWITCHBOARD_SECRET_KEY` is missing or is not the key it was stored
    /// with.
    pub async fn stored_providers_decrypted(&self) -> Result<Vec<(String, Value)>, StoreError> {
        let rows = sqlx::query(select_provider!("ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let ProviderRow {
                record,
                api_key_enc,
            } = provider_from_row(row)?;
            let mut settings = record.settings;
            if let Some(enc) = api_key_enc {
                let key = self
                    .cipher()?
                    .decrypt(&enc)
                    .map_err(|e| StoreError::Crypto(format!("provider `{}`: {e}", record.name)))?;
                if let Value::Object(map) = &mut settings {
                    map.insert(API_KEY.to_owned(), Value::String(key));
                }
            }
            out.push((record.name, settings));
        }
        Ok(out)
    }
}
