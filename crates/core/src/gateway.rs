//! The live configuration. A [`Snapshot`] is everything built from one validated config (the
//! router with its providers, the authenticator); the [`Gateway`] holds the current one in an
//! `ArcSwap`, so each request reads one consistent snapshot without a lock, and a reload swaps
//! in a new snapshot atomically or, if building it fails, keeps the old one.

use crate::auth::Authenticator;
use crate::config::{CircuitPolicy, Config};
use crate::routing::{Router, TargetStates};
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
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("provider `{name}`: {message}")]
    Provider { name: String, message: String },
}

impl Snapshot {
    /// Builds the providers and the router of `config`. Per-target live state (circuits,
    /// latency) comes from `states`, so it survives reloads.
    pub fn build(config: Config, states: &Arc<TargetStates>) -> Result<Snapshot, BuildError> {
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
        Ok(Snapshot {
            auth: Authenticator::new(config.admin_key.clone()),
            router,
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

/// The running gateway: the current snapshot and the state that outlives snapshots.
#[derive(Debug)]
pub struct Gateway {
    current: ArcSwap<Snapshot>,
    states: Arc<TargetStates>,
    /// Only touched on reload, never on the request path.
    reloads: parking_lot::Mutex<ReloadStatus>,
}

impl Gateway {
    pub fn new(config: Config) -> Result<Gateway, BuildError> {
        let states = TargetStates::new();
        let snapshot = Snapshot::build(config, &states)?;
        Ok(Gateway {
            current: ArcSwap::from_pointee(snapshot),
            states,
            reloads: parking_lot::Mutex::new(ReloadStatus::default()),
        })
    }

    /// The snapshot a request should use from start to end.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the running config. On error the old snapshot stays in place.
    pub fn reload(&self, config: Config) -> Result<(), BuildError> {
        match Snapshot::build(config, &self.states) {
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
        &self.states
    }
}
