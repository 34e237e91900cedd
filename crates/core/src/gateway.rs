//! The live configuration. A [`Snapshot`] is everything built from one validated config (the
//! router with its providers, the authenticator); the [`Gateway`] holds the current one in an
//! `ArcSwap`, so each request reads one consistent snapshot without a lock, and a reload swaps
//! in a new snapshot atomically or, if building it fails, keeps the old one.

use crate::auth::cache::KeyCache;
use crate::auth::grant::KeyLookup;
use crate::auth::jwt::JwtVerifier;
use crate::auth::Authenticator;
use crate::config::{CircuitPolicy, Config};
use crate::limits::{LimitBackend, LimitState, Limiter, SpendSource};
use crate::routing::{Router, TargetStates};
use crate::usage::UsageQueue;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use switchboard_providers::Provider;

/// Everything a request needs from one version of the config.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub router: Router,
    pub auth: Authenticator,
    pub limiter: Limiter,
    /// Where usage records go; `None` when no store is attached (records are not kept).
    pub usage: Option<UsageQueue>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider `{name}`: {message}")]
    Provider { name: String, message: String },
    #[error("cannot build an HTTP client: {0}")]
    Http(String),
}

impl Snapshot {
    /// Builds the providers and the router of `config`. State that outlives snapshots
    /// (per-target circuits and latency, the key cache) comes from `shared`; `jwt` is the
    /// previous snapshot's verifier, reused when the OIDC settings did not change (so a reload
    /// does not refetch the issuer's keys).
    fn build(
        config: Config,
        shared: &Shared,
        jwt: Option<Arc<JwtVerifier>>,
    ) -> Result<Snapshot, BuildError> {
        let states = &shared.states;
        let mut providers: HashMap<String, Arc<dyn Provider>> = HashMap::new();
        let mut circuits: HashMap<String, CircuitPolicy> = HashMap::new();
        for (name, provider) in &config.providers {
            let built = switchboard_providers::build(name, &provider.settings).map_err(|e| {
                BuildError::Provider {
                    name: name.clone(),
                    message: e.to_string(),
                }
            })?;
            providers.insert(name.clone(), built);
            if let Some(policy) = provider.circuit {
                circuits.insert(name.clone(), policy);
            }
        }
        let router = Router::build(&config.models, &providers, states, &circuits);
        let jwt = match (&config.access.oidc, jwt) {
            (Some(settings), Some(old)) if old.settings() == settings => Some(old),
            (Some(settings), _) => Some(Arc::new(JwtVerifier::new(
                settings.clone(),
                shared.http.clone(),
            ))),
            (None, _) => None,
        };
        Ok(Snapshot {
            auth: Authenticator::new(config.admin_key.clone(), shared.keys.clone(), jwt),
            router,
            limiter: Limiter::new(&config, shared.limits.clone()),
            usage: shared.usage.clone(),
            config: Arc::new(config),
        })
    }
}

/// The outcome of config reloads so far, for operators (and tests) to see why a new config
/// was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// How many configs were applied since start (the first one is generation 0).
    pub generation: u64,
    /// How many reloads were refused.
    pub refused: u64,
    /// Why the last refused reload was refused, until a later one succeeds.
    pub last_error: Option<String>,
}

/// State that outlives config snapshots.
#[derive(Debug)]
struct Shared {
    states: Arc<TargetStates>,
    /// Virtual-key lookups, when a store is attached.
    keys: Option<KeyCache>,
    /// For fetching an OIDC issuer's keys and posting budget alerts.
    http: reqwest::Client,
    /// Limit counters and the settle worker.
    limits: Arc<LimitState>,
    usage: Option<UsageQueue>,
}

/// What a gateway is attached to besides its config. Every part is optional: a gateway with
/// none accepts only the admin key, keeps limits in memory and records no usage.
#[derive(Debug, Default)]
pub struct Attachments {
    /// Virtual keys.
    pub keys: Option<Arc<dyn KeyLookup>>,
    /// Shared limit counters (Redis).
    pub shared_limits: Option<Arc<dyn LimitBackend>>,
    /// Recorded spend, to seed budgets after a restart.
    pub spend: Option<Arc<dyn SpendSource>>,
    /// The usage channel to the store's writer.
    pub usage: Option<UsageQueue>,
}

/// The running gateway: the current snapshot and the state that outlives snapshots.
#[derive(Debug)]
pub struct Gateway {
    current: ArcSwap<Snapshot>,
    shared: Shared,
    /// Only touched on reload, never on the request path.
    reloads: parking_lot::Mutex<ReloadStatus>,
}

impl Gateway {
    /// A gateway whose only credential is the admin key (no store attached).
    pub fn new(config: Config) -> Result<Gateway, BuildError> {
        Self::attach(config, Attachments::default())
    }

    /// A gateway that also accepts the virtual keys `lookup` knows.
    pub fn with_keys(config: Config, lookup: Arc<dyn KeyLookup>) -> Result<Gateway, BuildError> {
        Self::attach(
            config,
            Attachments {
                keys: Some(lookup),
                ..Attachments::default()
            },
        )
    }

    /// A gateway attached to storage, shared counters and the usage writer. Call it inside a
    /// Tokio runtime: it starts the limit settle worker.
    pub fn attach(config: Config, parts: Attachments) -> Result<Gateway, BuildError> {
        let ttl = config.access.key_cache_ttl;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let shared = Shared {
            states: TargetStates::new(),
            keys: parts.keys.map(|lookup| KeyCache::new(lookup, ttl)),
            limits: LimitState::new(parts.shared_limits, parts.spend, http.clone()),
            usage: parts.usage,
            http,
        };
        let snapshot = Snapshot::build(config, &shared, None)?;
        Ok(Gateway {
            current: ArcSwap::from_pointee(snapshot),
            shared,
            reloads: parking_lot::Mutex::new(ReloadStatus::default()),
        })
    }

    /// The snapshot a request should use from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the running config. On error the old snapshot stays in place.
    pub fn reload(&self, config: Config) -> Result<(), BuildError> {
        let jwt = self.current.load().auth.jwt().cloned();
        match Snapshot::build(config, &self.shared, jwt) {
            Ok(snapshot) => {
                self.current.store(Arc::new(snapshot));
                let mut status = self.reloads.lock();
                status.generation += 1;
                status.last_error = None;
                Ok(())
            }
            Err(err) => {
                self.reload_refused(err.to_string());
                Err(err)
            }
        }
    }

    /// Records a reload refused before it reached `reload` (the file did not validate).
    pub fn reload_refused(&self, why: String) {
        let mut status = self.reloads.lock();
        status.refused += 1;
        status.last_error = Some(why);
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reloads.lock().clone()
    }

    pub fn target_states(&self) -> &Arc<TargetStates> {
        &self.shared.states
    }

    /// Limit counters and their settle worker (flushed at shutdown).
    pub fn limits(&self) -> &Arc<LimitState> {
        &self.shared.limits
    }

    /// Forgets every cached key grant: access data changed (here or on another instance).
    pub fn invalidate_keys(&self) {
        if let Some(keys) = &self.shared.keys {
            keys.invalidate_all();
        }
    }
}
