//! The audit log: one row per change, in the same transaction as the change, chained by hash so
//! that an edited, inserted or removed row is detected by [`Store::verify_audit`].
//!
//! Row `n` stores `hash = hex(sha256(prev_hash + "\n" + canonical_json([seq, at, actor, action,
//! object_kind, object_id, org_id, before, after])))` with `prev_hash` the hash of row `n - 1`
//! (64 zeros for row 1). Canonical JSON sorts object keys and has no whitespace, so the hash
//! does not depend on how a database or a serde feature orders maps.
//!
//! Sequence numbers are `max(seq) + 1`, which is only correct when appends are serialised; see
//! [`Store::begin_write`] for how each database does that.

use crate::common::{Actor, Page, PageRequest};
use crate::db::{now_ms, Backend, Store};
use crate::error::StoreError;
use crate::records::{AuditEntry, AuditReport};
use crate::rows::from_json_opt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What replaces a secret in audit rows.
pub const REDACTED: &str = "*****";

/// How many rows [`Store::verify_audit`] reads per query.
const VERIFY_BATCH: i64 = 500;

/// One change to record.
pub(crate) struct AuditRecord<'a> {
    pub actor: &'a Actor,
    /// e.g. `org.create`.
    pub action: &'a str,
    /// e.g. `org`.
    pub object_kind: &'a str,
    pub object_id: &'a str,
    pub org_id: Option<&'a str>,
    /// The object before the change; redacted here, callers need not.
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Whether a field of this name holds a secret. Matches whole names (and `*_api_key`,
/// `*_secret`, `*_password`, `*_token` suffixes) rather than substrings, so that settings such
/// as `default_max_tokens` or `api_key_env` (the name of a variable, not a key) stay readable.
fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "api_key" | "key" | "secret" | "password" | "token" | "authorization" | "api_key_enc"
    ) || ["_api_key", "_secret", "_password", "_token"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

/// Replaces the value of every secret-named field (at any depth) with `*****`; `null` and
/// booleans are left as they are.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, field) in map.iter_mut() {
                if is_secret_field(name) {
                    // `null` and booleans (e.g. `has_api_key`) say nothing secret.
                    if !matches!(field, Value::Null | Value::Bool(_)) {
                        *field = Value::String(REDACTED.to_owned());
                    }
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Writes `value` as JSON with object keys sorted and no whitespace.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut fields: Vec<(&String, &Value)> = map.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, field)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                canonical_json(field, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical text of a JSON value (what the `before_json`/`after_json` columns hold).
fn canonical(value: &Value) -> String {
    let mut out = String::new();
    canonical_json(value, &mut out);
    out
}

/// The hash of a row, given the previous row's hash.
fn row_hash(prev_hash: &str, entry: &AuditEntry) -> String {
    let content = Value::Array(vec![
        Value::from(entry.seq),
        Value::from(entry.at),
        Value::from(entry.actor.as_str()),
        Value::from(entry.action.as_str()),
        Value::from(entry.object_kind.as_str()),
        Value::from(entry.object_id.as_str()),
        entry.org_id.as_deref().map_or(Value::Null, Value::from),
        entry.before.clone().unwrap_or(Value::Null),
        entry.after.clone().unwrap_or(Value::Null),
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical(&content).as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends one row inside the caller's transaction, which must come from
/// [`Store::begin_write`] (it holds the lock that makes `max(seq) + 1` safe).
pub(crate) async fn append(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    rec: AuditRecord<'_>,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        // Already held when the transaction came from `begin_write` (then this is a no-op);
        // taken here too so that a transaction begun some other way still cannot race.
        sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
            .execute(&mut **tx)
            .await?;
    }
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await?;
    let (seq, prev_hash) = match last {
        Some(row) => (
            row.try_get::<i64, _>("seq")? + 1,
            row.try_get::<String, _>("hash")?,
        ),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let redacted = |value: Option<Value>| {
        value.map(|mut v| {
            redact(&mut v);
            v
        })
    };
    let mut entry = AuditEntry {
        seq,
        at: now_ms(),
        actor: rec.actor.id.clone(),
        action: rec.action.to_owned(),
        object_kind: rec.object_kind.to_owned(),
        object_id: rec.object_id.to_owned(),
        org_id: rec.org_id.map(str::to_owned),
        before: redacted(rec.before),
        after: redacted(rec.after),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = row_hash(&entry.prev_hash, &entry);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, object_kind, object_id, org_id, \
         before_json, after_json, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(entry.seq)
    .bind(entry.at)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.object_kind)
    .bind(entry.object_id)
    .bind(entry.org_id)
    .bind(entry.before.as_ref().map(canonical))
    .bind(entry.after.as_ref().map(canonical))
    .bind(entry.prev_hash)
    .bind(entry.hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The audit columns' SELECT followed by a literal tail (a `&'static str`, as sqlx wants).
macro_rules! select_audit {
    ($tail:literal) => {
        concat!(
            "SELECT seq, at, actor, action, object_kind, object_id, org_id, before_json, ",
            "after_json, prev_hash, hash FROM audit_log ",
            $tail
        )
    };
}

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        object_kind: row.try_get("object_kind")?,
        object_id: row.try_get("object_id")?,
        org_id: row.try_get("org_id")?,
        before: from_json_opt("before_json", row.try_get("before_json")?)?,
        after: from_json_opt("after_json", row.try_get("after_json")?)?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl Store {
    /// Begins a transaction for a change that will be audited, holding the database's write
    /// lock from the start so that the audit row's `seq` and `prev_hash` cannot race:
    ///
    /// - Postgres: `LOCK TABLE audit_log IN EXCLUSIVE MODE` blocks other writers' appends (not
    ///   readers) until this transaction ends. Taken first, before any other row lock, so that
    ///   writers queue on one lock and cannot deadlock on it.
    /// - SQLite: `BEGIN IMMEDIATE` takes the database's single write lock at once. A plain
    ///   (deferred) `BEGIN` would let two transactions both read `max(seq)` and then fail to
    ///   upgrade to writing (SQLITE_BUSY right away, the busy timeout cannot help there) or
    ///   collide on the primary key; an immediate one makes the second writer wait, up to the
    ///   busy timeout, until the first commits, and then read the new `max(seq)`.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    /// A page of the audit log in `seq` order, of one organisation or of everything; the
    /// cursor is the last `seq` seen.
    pub async fn list_audit(
        &self,
        org_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        let after = match page.cursor.as_deref() {
            None | Some("") => 0,
            Some(cursor) => cursor.parse::<i64>().map_err(|_| {
                StoreError::Invalid(format!(
                    "invalid audit cursor `{cursor}`: expected a number"
                ))
            })?,
        };
        let limit = i64::from(page.limit()) + 1;
        let rows = match org_id {
            Some(org_id) => {
                sqlx::query(select_audit!(
                    "WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ))
                .bind(org_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(select_audit!("WHERE seq > $1 ORDER BY seq LIMIT $2"))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let items = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |e| e.seq.to_string()))
    }

    /// Checks the whole chain: sequence numbers without gaps from 1, each `prev_hash` equal to
    /// the previous row's hash, each hash matching the row's content. Stops at the first row
    /// that fails. (Removing the newest rows cannot be detected from the log alone.)
    pub async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let mut checked: u64 = 0;
        let mut expected_seq: i64 = 1;
        let mut prev_hash = GENESIS_HASH.to_owned();
        // Starts below any possible seq so that a forged row numbered 0 or less is seen too.
        let mut last_seen = i64::MIN;
        let bad = |checked, seq, reason: String| AuditReport {
            checked,
            first_bad: Some(seq),
            reason: Some(reason),
        };
        loop {
            let rows = sqlx::query(select_audit!("WHERE seq > $1 ORDER BY seq LIMIT $2"))
                .bind(last_seen)
                .bind(VERIFY_BATCH)
                .fetch_all(&self.pool)
                .await?;
            if rows.is_empty() {
                return Ok(AuditReport {
                    checked,
                    first_bad: None,
                    reason: None,
                });
            }
            for row in &rows {
                checked += 1;
                let seq: i64 = row.try_get("seq")?;
                last_seen = seq;
                if seq > expected_seq {
                    let reason =
                        format!("seq {seq} follows {}: rows are missing", expected_seq - 1);
                    return Ok(bad(checked, seq, reason));
                }
                if seq < expected_seq {
                    let reason = format!("unexpected seq {seq} (expected {expected_seq})");
                    return Ok(bad(checked, seq, reason));
                }
                let entry = match entry_from_row(row) {
                    Ok(entry) => entry,
                    Err(e) => return Ok(bad(checked, seq, format!("row does not decode: {e}"))),
                };
                if entry.prev_hash != prev_hash {
                    let reason = "prev_hash does not match the previous row's hash".to_owned();
                    return Ok(bad(checked, seq, reason));
                }
                if row_hash(&prev_hash, &entry) != entry.hash {
                    let reason = "hash does not match the row's content".to_owned();
                    return Ok(bad(checked, seq, reason));
                }
                prev_hash = entry.hash;
                expected_seq += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_hides_secret_fields_at_any_depth() {
        let mut value = json!({
            "api_key": "sk-live",
            "api_key_env": "OPENAI_KEY",
            "default_max_tokens": 100,
            "nested": [{"password": "p", "client_secret": "c", "ok": "x"}],
            "token": null,
            "has_api_key": true,
        });
        redact(&mut value);
        assert_eq!(
            value,
            json!({
                "api_key": REDACTED,
                "api_key_env": "OPENAI_KEY",
                "default_max_tokens": 100,
                "nested": [{"password": REDACTED, "client_secret": REDACTED, "ok": "x"}],
                "token": null,
                "has_api_key": true,
            })
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = json!({"b": 1, "a": {"d": [true, null], "c": "é\"q"}});
        assert_eq!(
            canonical(&value),
            r#"{"a":{"c":"é\"q","d":[true,null]},"b":1}"#
        );
    }
}
