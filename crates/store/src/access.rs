//! The data plane's key lookup: from a presented key's hash to everything it may do, in one
//! query (the key joined with its org, team and app, one row per subscription of the app). It
//! runs only when the key cache misses, but then on the request's path, so it stays one round
//! trip on an indexed column (`virtual_keys.key_hash` is UNIQUE).

use crate::db::Store;
use crate::rows::{from_json, from_json_opt};
use crate::subscriptions::{parse_kind, SubscriptionStatus};
use sqlx::Row;
use std::collections::BTreeMap;
use switchboard_core::auth::grant::{KeyGrant, KeyLookup, LookupError, SubscriptionState};
use switchboard_core::auth::keys::KeyHash;

/// Subscriptions of other tenants never join: the `s.org_id = k.org_id` condition is redundant
/// with `s.app_id = k.app_id` (apps belong to one org) and kept as a second lock.
const FIND_KEY: &str = "SELECT k.id, k.prefix, k.org_id, o.name AS org_name, \
     COALESCE(a.team_id, k.team_id) AS team_id, t.name AS team_name, k.app_id, \
     a.name AS app_name, k.user_id, k.models, k.apis, k.metadata, k.expires_at, \
     a.models AS app_models, a.apis AS app_apis, \
     s.target_kind, s.target, s.status, s.reason \
     FROM virtual_keys k \
     JOIN orgs o ON o.id = k.org_id \
     LEFT JOIN apps a ON a.id = k.app_id AND a.org_id = k.org_id \
     LEFT JOIN teams t ON t.id = COALESCE(a.team_id, k.team_id) AND t.org_id = k.org_id \
     LEFT JOIN subscriptions s ON s.app_id = k.app_id AND s.org_id = k.org_id \
     WHERE k.key_hash = $1 AND k.revoked_at IS NULL";

#[async_trait::async_trait]
impl KeyLookup for Store {
    async fn find_key(&self, hash: &KeyHash) -> Result<Option<KeyGrant>, LookupError> {
        let rows = sqlx::query(FIND_KEY)
            .bind(hash.0.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(|e| LookupError(e.to_string()))?;
        grant_from_rows(&rows).map_err(|e| LookupError(e.to_string()))
    }
}

fn grant_from_rows(rows: &[sqlx::any::AnyRow]) -> Result<Option<KeyGrant>, crate::StoreError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let app_id: Option<String> = first.try_get("app_id")?;
    // A key of an app whose row is gone would be cascaded away; never grant more than asked.
    let app_name: Option<String> = first.try_get("app_name")?;
    if app_id.is_some() && app_name.is_none() {
        return Ok(None);
    }
    let key_models = from_json_opt("models", first.try_get("models")?)?;
    let key_apis = from_json_opt("apis", first.try_get("apis")?)?;
    let app_models = from_json_opt("app_models", first.try_get("app_models")?)?;
    let app_apis = from_json_opt("app_apis", first.try_get("app_apis")?)?;
    let mut subscriptions = BTreeMap::new();
    for row in rows {
        let Some(kind) = row.try_get::<Option<String>, _>("target_kind")? else {
            continue;
        };
        let target: String = row.try_get("target")?;
        let status: SubscriptionStatus =
            row.try_get::<String, _>("status")?
                .parse()
                .map_err(|e: crate::StoreError| {
                    crate::StoreError::Database(sqlx::Error::Decode(e.to_string().into()))
                })?;
        let state = match status {
            SubscriptionStatus::Pending => SubscriptionState::Pending,
            SubscriptionStatus::Approved => SubscriptionState::Approved,
            SubscriptionStatus::Rejected => SubscriptionState::Rejected {
                reason: row.try_get("reason")?,
            },
        };
        subscriptions.insert((parse_kind(&kind)?, target), state);
    }
    Ok(Some(KeyGrant {
        key_id: first.try_get("id")?,
        prefix: first.try_get("prefix")?,
        org_id: first.try_get("org_id")?,
        org: first.try_get("org_name")?,
        team_id: first.try_get("team_id")?,
        team: first.try_get("team_name")?,
        app_id,
        app: app_name,
        user_id: first.try_get("user_id")?,
        models: intersect(key_models, app_models),
        apis: intersect(key_apis, app_apis),
        expires_at_ms: first.try_get("expires_at")?,
        subscriptions,
        metadata: from_json("metadata", &first.try_get::<String, _>("metadata")?)?,
    }))
}

/// The names both lists allow, in the key's order; `None` on a side allows everything.
pub(crate) fn intersect(key: Option<Vec<String>>, app: Option<Vec<String>>) -> Option<Vec<String>> {
    match (key, app) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => Some(only),
        (Some(key), Some(app)) => Some(key.into_iter().filter(|m| app.contains(m)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::intersect;

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn effective_lists_are_the_intersection() {
        assert_eq!(intersect(None, None), None);
        assert_eq!(intersect(list(&["a", "b"]), None), list(&["a", "b"]));
        assert_eq!(intersect(None, list(&["a"])), list(&["a"]));
        assert_eq!(
            intersect(list(&["c", "a", "b"]), list(&["a", "c"])),
            list(&["c", "a"])
        );
        assert_eq!(intersect(list(&["a"]), list(&["b"])), list(&[]));
    }
}
