//! The virtual-key cache: the one storage read on the hot path, done once per key and TTL.
//! Misses for the same key share one lookup (no stampede on the database after an
//! invalidation), unknown keys are cached too (a flood of wrong keys cannot reach storage), and
//! any change to access data anywhere in the cluster clears the cache through the store's
//! change feed, so a revoke takes effect on every instance within the feed's delay.
//!
//! Built on `quick_cache` (sharded, bounded, a read lock per hit, single-flight loads) rather
//! than `moka`: a hit must cost well under a microsecond, because the issue allows a virtual key
//! at most 5% of the admin key's throughput, and moka's per-read bookkeeping measured several
//! times that. Expiry is checked on read from the entry's load time.

use super::grant::{KeyGrant, KeyLookup, LookupError};
use super::keys::KeyHash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default time a grant (or an unknown key) stays cached without an invalidation: the upper
/// bound on staleness if the change feed is down.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// Most entries kept (known and unknown keys together).
const CAPACITY: usize = 100_000;

/// One cached answer: the grant, or `None` for an unknown or revoked key.
#[derive(Clone)]
struct Entry {
    grant: Option<Arc<KeyGrant>>,
    loaded: Instant,
}

/// Cached key lookups.
#[derive(Clone)]
pub struct KeyCache {
    lookup: Arc<dyn KeyLookup>,
    entries: Arc<quick_cache::sync::Cache<KeyHash, Entry>>,
    ttl: Duration,
    /// Bumped by every invalidation. A lookup that started before one does not store its
    /// answer: it may have read the database before the change that caused the invalidation.
    generation: Arc<AtomicU64>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("entries", &self.entries.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    pub fn new(lookup: Arc<dyn KeyLookup>, ttl: Duration) -> KeyCache {
        KeyCache {
            lookup,
            entries: Arc::new(quick_cache::sync::Cache::new(CAPACITY)),
            ttl,
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The grant of the key with this hash, `None` for an unknown or revoked key.
    pub async fn get(&self, hash: &KeyHash) -> Result<Option<Arc<KeyGrant>>, LookupError> {
        if let Some(entry) = self.entries.get(hash) {
            if entry.loaded.elapsed() < self.ttl {
                return Ok(entry.grant);
            }
            self.entries.remove(hash);
        }
        match self.entries.get_value_or_guard_async(hash).await {
            // Another task loaded it while this one waited.
            Ok(entry) => Ok(entry.grant),
            Err(guard) => {
                let generation = self.generation.load(Ordering::Acquire);
                // On error the guard is dropped unfilled: the next caller looks up again.
                let grant = self.lookup.find_key(hash).await?.map(Arc::new);
                if self.generation.load(Ordering::Acquire) == generation {
                    let entry = Entry {
                        grant: grant.clone(),
                        loaded: Instant::now(),
                    };
                    let _ = guard.insert(entry);
                }
                Ok(grant)
            }
        }
    }

    /// Forgets every cached grant (access data changed somewhere).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
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

    /// Answers only once released, so a test can invalidate while a lookup is in flight.
    #[derive(Debug, Default)]
    struct Gated {
        calls: AtomicUsize,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl KeyLookup for Gated {
        async fn find_key(&self, hash: &KeyHash) -> Result<Option<KeyGrant>, LookupError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            Counting::default().find_key(hash).await
        }
    }

    #[tokio::test]
    async fn a_lookup_overtaken_by_an_invalidation_is_not_cached() {
        let store = Arc::new(Gated::default());
        let cache = KeyCache::new(store.clone(), DEFAULT_TTL);
        let known = KeyHash("known".into());
        let in_flight = tokio::spawn({
            let cache = cache.clone();
            let known = known.clone();
            async move { cache.get(&known).await }
        });
        while store.calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The key changes (say, it is revoked) while the first lookup is in flight.
        cache.invalidate_all();
        store.release.notify_one();
        assert!(in_flight.await.unwrap().unwrap().is_some());
        // Its possibly stale answer was not kept: the next request looks up again.
        let again = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&known).await }
        });
        while store.calls.load(Ordering::SeqCst) == 1 {
            tokio::task::yield_now().await;
        }
        store.release.notify_one();
        assert!(again.await.unwrap().unwrap().is_some());
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
    }
}
