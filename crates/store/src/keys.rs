//! Virtual keys: made, listed, revoked, rotated and edited by admins. A key belongs to one app
//! or one user of one organisation; its secret is returned once by [`Store::create_key`] and
//! [`Store::rotate_key`] and only its SHA-256 is stored. Every lookup names the organisation, so
//! a key of another tenant is simply not found.

use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{new_id, now_ms, Store};
use crate::error::StoreError;
use crate::rows::{cursor, fetch_limit, from_json, from_json_opt, snapshot, to_json, to_json_opt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use switchboard_core::auth::keys;
use switchboard_types::Secret;

/// A stored key as admins see it (never its hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub org_id: String,
    pub team_id: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    pub name: String,
    /// The visible start of the key, e.g. `sk-sb-AbCd1234`.
    pub prefix: String,
    /// Aliases the key may call (within its app's list); `None` = whatever the app may call.
    pub models: Option<Vec<String>>,
    pub apis: Option<Vec<String>>,
    pub metadata: Map<String, Value>,
    /// Unix ms; `None` = never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key that replaced this one in a rotation.
    pub rotated_to: Option<String>,
    pub created_by: String,
    pub created_at: i64,
}

impl KeyRecord {
    /// Whether the key still works at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now_ms)
    }
}

/// A key just made: its record and the secret, shown to the caller once.
#[derive(Debug)]
pub struct CreatedKey {
    pub record: KeyRecord,
    pub secret: Secret,
}

/// What a new key is for. Exactly one of `app_id` and `user_id` is set.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct NewKey {
    pub org_id: String,
    /// For app keys, the app's team (filled in when absent, checked when given); for user keys,
    /// an optional team of the organisation.
    pub team_id: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    pub name: String,
    pub models: Option<Vec<String>>,
    pub apis: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Unix ms, in the future.
    pub expires_at: Option<i64>,
}

/// Which keys to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct KeyFilter {
    pub team_id: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    /// Also list revoked keys.
    #[serde(default)]
    pub include_revoked: bool,
}

/// A change to a key; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub models: Option<Option<Vec<String>>>,
    pub apis: Option<Option<Vec<String>>>,
    pub metadata: Option<Map<String, Value>>,
    pub expires_at: Option<Option<i64>>,
}

/// The object kind in audit rows and errors.
const KIND: &str = "key";
const MAX_NAME: usize = 200;
const MAX_LIST: usize = 1000;

const COLUMNS: &str = "id, org_id, team_id, app_id, user_id, name, prefix, models, apis, \
     metadata, expires_at, revoked_at, rotated_to, created_by, created_at";

impl Store {
    /// Makes a key; the secret in the result is shown once and cannot be recovered.
    pub async fn create_key(&self, actor: &Actor, new: NewKey) -> Result<CreatedKey, StoreError> {
        validate_name(&new.name)?;
        validate_list("models", new.models.as_deref())?;
        validate_list("apis", new.apis.as_deref())?;
        let now = now_ms();
        validate_expiry(new.expires_at, now)?;
        let mut tx = self.begin_write().await?;
        let team_id = owner_team(&mut tx, &new).await?;
        let secret = keys::generate();
        let record = KeyRecord {
            id: new_id("key"),
            org_id: new.org_id,
            team_id,
            app_id: new.app_id,
            user_id: new.user_id,
            name: new.name,
            prefix: secret.prefix,
            models: new.models,
            apis: new.apis,
            metadata: new.metadata,
            expires_at: new.expires_at,
            revoked_at: None,
            rotated_to: None,
            created_by: actor.id.clone(),
            created_at: now,
        };
        insert(&mut tx, &record, &secret.hash.0).await?;
        self.audit_key(&mut tx, actor, "key.create", None, Some(&record))
            .await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(CreatedKey {
            record,
            secret: secret.secret,
        })
    }

    /// The org's keys in creation order, filtered.
    pub async fn list_keys(
        &self,
        org_id: &str,
        filter: &KeyFilter,
        page: &PageRequest,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let limit = page.limit();
        let sql = format!(
            "SELECT {COLUMNS} FROM virtual_keys WHERE org_id = $1 \
             AND ($2 IS NULL OR team_id = $2) AND ($3 IS NULL OR app_id = $3) \
             AND ($4 IS NULL OR user_id = $4) AND ($5 OR revoked_at IS NULL) \
             AND id > $6 ORDER BY id LIMIT $7"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(filter.team_id.as_deref())
            .bind(filter.app_id.as_deref())
            .bind(filter.user_id.as_deref())
            .bind(filter.include_revoked)
            .bind(cursor(page))
            .bind(fetch_limit(page))
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(read_key).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, limit, |k| k.id.clone()))
    }

    /// One key of the org.
    pub async fn get_key(&self, org_id: &str, id: &str) -> Result<KeyRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM virtual_keys WHERE org_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => read_key(&row),
            None => Err(not_found(id)),
        }
    }

    /// Revokes a key at once (every instance drops it within a second). Revoking a revoked key
    /// changes nothing.
    pub async fn revoke_key(
        &self,
        actor: &Actor,
        org_id: &str,
        id: &str,
    ) -> Result<KeyRecord, StoreError> {
        let mut tx = self.begin_write().await?;
        let before = load(&mut tx, org_id, id).await?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let mut after = before.clone();
        after.revoked_at = Some(now_ms());
        sqlx::query("UPDATE virtual_keys SET revoked_at = $1 WHERE org_id = $2 AND id = $3")
            .bind(after.revoked_at)
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.audit_key(&mut tx, actor, "key.revoke", Some(&before), Some(&after))
            .await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(after)
    }

    /// Replaces a key with a new one of the same attributes; the old key keeps working for
    /// `grace_ms` (or until its own expiry, if sooner) and records its successor.
    pub async fn rotate_key(
        &self,
        actor: &Actor,
        org_id: &str,
        id: &str,
        grace_ms: i64,
    ) -> Result<CreatedKey, StoreError> {
        if grace_ms < 0 {
            return Err(StoreError::Invalid(
                "the rotation grace period cannot be negative".into(),
            ));
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let before = load(&mut tx, org_id, id).await?;
        if before.revoked_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "key `{id}` is revoked and cannot be rotated"
            )));
        }
        if let Some(next) = &before.rotated_to {
            return Err(StoreError::Conflict(format!(
                "key `{id}` was already rotated to `{next}`"
            )));
        }
        let secret = keys::generate();
        let new = KeyRecord {
            id: new_id("key"),
            prefix: secret.prefix,
            revoked_at: None,
            rotated_to: None,
            created_by: actor.id.clone(),
            created_at: now,
            ..before.clone()
        };
        insert(&mut tx, &new, &secret.hash.0).await?;
        let deadline = now.saturating_add(grace_ms);
        let mut old = before.clone();
        old.rotated_to = Some(new.id.clone());
        old.expires_at = Some(old.expires_at.map_or(deadline, |at| at.min(deadline)));
        sqlx::query(
            "UPDATE virtual_keys SET rotated_to = $1, expires_at = $2 WHERE org_id = $3 AND id = $4",
        )
        .bind(old.rotated_to.as_deref())
        .bind(old.expires_at)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.audit_key(&mut tx, actor, "key.rotate", Some(&before), Some(&old))
            .await?;
        self.audit_key(&mut tx, actor, "key.create", None, Some(&new))
            .await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(CreatedKey {
            record: new,
            secret: secret.secret,
        })
    }

    /// Changes a key's name, lists, metadata or expiry. Revoked keys cannot be changed.
    pub async fn update_key(
        &self,
        actor: &Actor,
        org_id: &str,
        id: &str,
        patch: KeyPatch,
    ) -> Result<KeyRecord, StoreError> {
        if let Some(name) = &patch.name {
            validate_name(name)?;
        }
        if let Some(models) = &patch.models {
            validate_list("models", models.as_deref())?;
        }
        if let Some(apis) = &patch.apis {
            validate_list("apis", apis.as_deref())?;
        }
        if let Some(expires_at) = patch.expires_at {
            validate_expiry(expires_at, now_ms())?;
        }
        let mut tx = self.begin_write().await?;
        let before = load(&mut tx, org_id, id).await?;
        if before.revoked_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "key `{id}` is revoked and cannot be changed"
            )));
        }
        let mut after = before.clone();
        if let Some(name) = patch.name {
            after.name = name;
        }
        if let Some(models) = patch.models {
            after.models = models;
        }
        if let Some(apis) = patch.apis {
            after.apis = apis;
        }
        if let Some(metadata) = patch.metadata {
            after.metadata = metadata;
        }
        if let Some(expires_at) = patch.expires_at {
            after.expires_at = expires_at;
        }
        if after == before {
            return Ok(before);
        }
        sqlx::query(
            "UPDATE virtual_keys SET name = $1, models = $2, apis = $3, metadata = $4, \
             expires_at = $5 WHERE org_id = $6 AND id = $7",
        )
        .bind(after.name.as_str())
        .bind(to_json_opt(after.models.as_ref())?)
        .bind(to_json_opt(after.apis.as_ref())?)
        .bind(to_json(&after.metadata)?)
        .bind(after.expires_at)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.audit_key(&mut tx, actor, "key.update", Some(&before), Some(&after))
            .await?;
        tx.commit().await?;
        self.publish(Change::Access).await;
        Ok(after)
    }

    /// Writes the audit row of a key change (the record, never a hash or secret).
    async fn audit_key(
        &self,
        tx: &mut Transaction<'static, Any>,
        actor: &Actor,
        action: &str,
        before: Option<&KeyRecord>,
        after: Option<&KeyRecord>,
    ) -> Result<(), StoreError> {
        let Some(key) = after.or(before) else {
            return Ok(());
        };
        crate::audit::append(
            tx,
            self.backend,
            crate::audit::AuditRecord {
                actor,
                action,
                object_kind: KIND,
                object_id: &key.id,
                org_id: Some(&key.org_id),
                before: before.map(snapshot).transpose()?,
                after: after.map(snapshot).transpose()?,
            },
        )
        .await
    }
}

/// Checks who the new key belongs to and returns its team: an app of the org (its team), or a
/// user who is a member of the org (and an optional team of the org).
async fn owner_team(
    tx: &mut Transaction<'static, Any>,
    new: &NewKey,
) -> Result<Option<String>, StoreError> {
    match (&new.app_id, &new.user_id) {
        (Some(app_id), None) => {
            let team: Option<String> =
                sqlx::query_scalar("SELECT team_id FROM apps WHERE org_id = $1 AND id = $2")
                    .bind(new.org_id.as_str())
                    .bind(app_id.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
            let team = team.ok_or_else(|| StoreError::NotFound {
                kind: "app",
                name: app_id.clone(),
            })?;
            match &new.team_id {
                Some(given) if *given != team => Err(StoreError::Invalid(format!(
                    "app `{app_id}` is not in team `{given}`"
                ))),
                _ => Ok(Some(team)),
            }
        }
        (None, Some(user_id)) => {
            let member: Option<String> = sqlx::query_scalar(
                "SELECT id FROM memberships WHERE org_id = $1 AND user_id = $2 LIMIT 1",
            )
            .bind(new.org_id.as_str())
            .bind(user_id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
            if member.is_none() {
                return Err(StoreError::Invalid(format!(
                    "user `{user_id}` is not a member of this organisation"
                )));
            }
            if let Some(team_id) = &new.team_id {
                let team: Option<String> =
                    sqlx::query_scalar("SELECT id FROM teams WHERE org_id = $1 AND id = $2")
                        .bind(new.org_id.as_str())
                        .bind(team_id.as_str())
                        .fetch_optional(&mut **tx)
                        .await?;
                if team.is_none() {
                    return Err(StoreError::NotFound {
                        kind: "team",
                        name: team_id.clone(),
                    });
                }
            }
            Ok(new.team_id.clone())
        }
        _ => Err(StoreError::Invalid(
            "a key belongs to exactly one app or one user: give app_id or user_id".into(),
        )),
    }
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    key: &KeyRecord,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO virtual_keys (id, org_id, team_id, app_id, user_id, name, prefix, key_hash, \
         models, apis, metadata, expires_at, revoked_at, rotated_to, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(key.id.as_str())
    .bind(key.org_id.as_str())
    .bind(key.team_id.as_deref())
    .bind(key.app_id.as_deref())
    .bind(key.user_id.as_deref())
    .bind(key.name.as_str())
    .bind(key.prefix.as_str())
    .bind(hash)
    .bind(to_json_opt(key.models.as_ref())?)
    .bind(to_json_opt(key.apis.as_ref())?)
    .bind(to_json(&key.metadata)?)
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .bind(key.rotated_to.as_deref())
    .bind(key.created_by.as_str())
    .bind(key.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::unique(e, || "a key with this hash exists; try again".into()))?;
    Ok(())
}

/// Loads a key of the org inside a write transaction.
async fn load(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    id: &str,
) -> Result<KeyRecord, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM virtual_keys WHERE org_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(row) => read_key(&row),
        None => Err(not_found(id)),
    }
}

fn read_key(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        team_id: row.try_get("team_id")?,
        app_id: row.try_get("app_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        models: from_json_opt("models", row.try_get("models")?)?,
        apis: from_json_opt("apis", row.try_get("apis")?)?,
        metadata: from_json("metadata", &row.try_get::<String, _>("metadata")?)?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        rotated_to: row.try_get("rotated_to")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        name: id.to_owned(),
    }
}

fn validate_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::Invalid("a key needs a non-empty name".into()));
    }
    if name.chars().count() > MAX_NAME {
        return Err(StoreError::Invalid(format!(
            "a key name has at most {MAX_NAME} characters"
        )));
    }
    Ok(())
}

fn validate_list(field: &str, list: Option<&[String]>) -> Result<(), StoreError> {
    let Some(list) = list else { return Ok(()) };
    if list.len() > MAX_LIST {
        return Err(StoreError::Invalid(format!(
            "`{field}` has at most {MAX_LIST} entries"
        )));
    }
    if list.iter().any(|entry| entry.trim().is_empty()) {
        return Err(StoreError::Invalid(format!(
            "`{field}` cannot contain empty names"
        )));
    }
    Ok(())
}

fn validate_expiry(expires_at: Option<i64>, now: i64) -> Result<(), StoreError> {
    match expires_at {
        Some(at) if at <= now => Err(StoreError::Invalid(
            "`expires_at` must be in the future (Unix milliseconds)".into(),
        )),
        _ => Ok(()),
    }
}
