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
use crate::trace::Telemetry;
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
    /// The trace exporter; `None` when `telemetry.otlp` is not configured (nothing is traced).
    pub telemetry: Option<Arc<Telemetry>>,
    /// The config's prompts, compiled.
    pub prompts: crate::prompts::PromptLibrary,
    /// The gateway's shared HTTP client (workflow HTTP steps).
    pub http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider `{name}`: {message}")]
    Provider { name: String, message: String },
    #[error("cannot build an HTTP client: {0}")]
    Http(String),
    #[error("telemetry: {0}")]
    Telemetry(#[from] crate::trace::TelemetryError),
}

impl Snapshot {
    /// Builds the providers and the router of `config`. State that outlives snapshots
    /// (per-target circuits and latency, the key cache) comes from `shared`; `jwt` is the
    /// previous snapshot's verifier, reused when the OIDC settings did not change (so a reload
    /// does not refetch the issuer's keys); `telemetry` likewise is the previous exporter, kept
    /// when the `telemetry:` section did not change.
    fn build(
        config: Config,
        shared: &Shared,
        jwt: Option<Arc<JwtVerifier>>,
        telemetry: Option<Arc<Telemetry>>,
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
        let telemetry = match (&config.telemetry, telemetry) {
            (Some(settings), Some(old)) if old.config() == settings => Some(old),
            (Some(settings), _) => Some(Arc::new(Telemetry::build(settings)?)),
            (None, _) => None,
        };
        let limiter = Limiter::new(&config, shared.limits.clone());
        if limiter.counts_tokens() {
            // Admission counts with the encoder of each alias's first target (`chat_demand`).
            crate::tokens::warm(
                config
                    .models
                    .values()
                    .filter_map(|m| m.targets.first())
                    .map(|t| t.model.as_str()),
            );
        }
        Ok(Snapshot {
            telemetry,
            auth: Authenticator::new(config.admin_key.clone(), shared.keys.clone(), jwt),
            router,
            limiter,
            usage: shared.usage.clone(),
            prompts: crate::prompts::PromptLibrary::build(&config.prompts),
            http: shared.http.clone(),
            config: Arc::new(config),
        })
    }
}

/// How long a replaced or stopping trace exporter may take to send what it holds.
const EXPORT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
        let snapshot = Snapshot::build(config, &shared, None, None)?;
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
        let current = self.current.load();
        let jwt = current.auth.jwt().cloned();
        let telemetry = current.telemetry.clone();
        drop(current);
        match Snapshot::build(config, &self.shared, jwt, telemetry) {
            Ok(snapshot) => {
                let old = self.current.swap(Arc::new(snapshot));
                let replaced = old.telemetry.as_ref().filter(|old| {
                    let new = self.current.load();
                    !new.telemetry
                        .as_ref()
                        .is_some_and(|new| Arc::ptr_eq(old, new))
                });
                if let Some(old) = replaced.cloned() {
                    // Flushing waits on the network: off the caller's thread, which may be
                    // a runtime worker.
                    std::thread::spawn(move || old.shutdown(EXPORT_GRACE));
                }
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

    /// Exports the spans still queued and stops the trace exporter (at shutdown). Blocking.
    pub fn shutdown_telemetry(&self) {
        if let Some(telemetry) = &self.current.load().telemetry {
            telemetry.shutdown(EXPORT_GRACE);
        }
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
