//! The virtual-key cache: the one storage read on the hot path, done once per key and TTL.
//! Misses for the same key share one lookup (no stampede on the database after an
//! invalidation), unknown keys are cached too (a flood of wrong keys cannot reach storage), and
//! any change to access data anywhere in the cluster clears the cache through the store's
//! change feed, so a revoke takes effect on every instance within the feed's delay.

use super::grant::{KeyGrant, KeyLookup, LookupError};
use super::keys::KeyHash;
use std::sync::Arc;
use std::time::Duration;

/// Default time a grant (or an unknown key) stays cached without an invalidation: the upper
/// bound on staleness if the change feed is down.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// Cached key lookups.
#[derive(Clone)]
pub struct KeyCache {
    lookup: Arc<dyn KeyLookup>,
    entries: moka::future::Cache<KeyHash, Option<Arc<KeyGrant>>>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub fn new(lookup: Arc<dyn KeyLookup>, ttl: Duration) -> KeyCache {
        KeyCache {
            lookup,
            entries: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The grant of the key with this hash, `None` for an unknown or revoked key.
    pub async fn get(&self, hash: &KeyHash) -> Result<Option<Arc<KeyGrant>>, LookupError> {
        if let Some(hit) = self.entries.get(hash).await {
            return Ok(hit);
        }
        let lookup = &self.lookup;
        self.entries
            .try_get_with_by_ref(hash, async move {
                lookup.find_key(hash).await.map(|grant| grant.map(Arc::new))
            })
            .await
            .map_err(|err: Arc<LookupError>| LookupError::clone(&err))
    }

    /// Forgets every cached grant (access data changed somewhere).
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl KeyLookup for Counting {
        async fn find_key(&self, hash: &KeyHash) -> Result<Option<KeyGrant>, LookupError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if hash.0 == "down" {
                return Err(LookupError("database unreachable".into()));
            }
            Ok((hash.0 == "known").then(|| KeyGrant {
                key_id: "key_1".into(),
                prefix: "sk-sb-abcdefgh".into(),
                org_id: "org_1".into(),
                org: "acme".into(),
                team_id: None,
                team: None,
                app_id: None,
                app: None,
                user_id: Some("user_1".into()),
                models: None,
                apis: None,
                expires_at_ms: None,
                subscriptions: Default::default(),
                metadata: Default::default(),
            }))
        }
    }

    #[tokio::test]
    async fn hits_misses_and_invalidation() {
        let store = Arc::new(Counting::default());
        let cache = KeyCache::new(store.clone(), DEFAULT_TTL);
        let known = KeyHash("known".into());
        let unknown = KeyHash("unknown".into());
        assert!(cache.get(&known).await.unwrap().is_some());
        assert!(cache.get(&known).await.unwrap().is_some());
        assert!(cache.get(&unknown).await.unwrap().is_none());
        assert!(cache.get(&unknown).await.unwrap().is_none());
        assert_eq!(store.calls.load(Ordering::SeqCst), 2, "one lookup per key");
        cache.invalidate_all();
        assert!(cache.get(&known).await.unwrap().is_some());
        assert_eq!(store.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_lookup_and_failures_are_not_cached() {
        let store = Arc::new(Counting::default());
        let cache = KeyCache::new(store.clone(), DEFAULT_TTL);
        let known = KeyHash("known".into());
        let all = futures::future::join_all((0..16).map(|_| cache.get(&known))).await;
        assert!(all.iter().all(|r| matches!(r, Ok(Some(_)))));
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        let down = KeyHash("down".into());
        assert!(cache.get(&down).await.is_err());
        assert!(cache.get(&down).await.is_err());
        assert_eq!(store.calls.load(Ordering::SeqCst), 3, "errors are retried");
    }
}
