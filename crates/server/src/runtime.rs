//! The running deployment: the gateway, its store, and where its config comes from. The
//! effective config is the server's file (or the demo's text) plus the providers and models
//! kept in storage; it is rebuilt when the file changes, on SIGHUP, and when another instance
//! (or the admin API here) changes stored config. Access changes only drop cached key grants.

use anyhow::Context as _;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::config::immutable::{self, Removal, VersionConflict};
use switchboard_core::config::{self, Config, ConfigErrors, RedisFailure, StoredLayer};
use switchboard_core::gateway::Attachments;
use switchboard_core::limits::LimitBackend;
use switchboard_core::usage::{self, BodyQueue, UsageQueue};
use switchboard_core::Gateway;
use switchboard_store::{
    BodyWriter, BodyWriterHandle, Change, ChangeListeners, RedisLimits, RetentionTask,
    SecretCipher, Store, StoreOptions, UsageWriter, WriterHandle, WriterOptions,
};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where the server's own config comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A YAML file, reloaded on change and on SIGHUP.
    File(PathBuf),
    /// Fixed text (the offline demo, tests), reloaded only for stored changes.
    Text { name: String, text: String },
}

impl ConfigSource {
    pub fn name(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Text { name, .. } => name.clone(),
        }
    }

    /// The entry names of a mapping section (`prompts`, `models`, ...) the source itself
    /// defines, read from the YAML's keys (the text alone may not validate without the stored
    /// layer). Empty when the file cannot be read or parsed: loading reports that.
    pub fn defined(&self, section: &str) -> BTreeSet<String> {
        let text = match self {
            ConfigSource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(_) => return BTreeSet::new(),
            },
            ConfigSource::Text { text, .. } => text.clone(),
        };
        let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
            return BTreeSet::new();
        };
        doc.get(section)
            .and_then(serde_yaml::Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(key, _)| key.as_str().map(str::to_owned))
            .collect()
    }

    /// Reads and validates the source with `stored` added.
    pub fn load(&self, stored: &StoredLayer) -> Result<Config, ConfigErrors> {
        let env = |name: &str| std::env::var(name).ok();
        match self {
            ConfigSource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => config::load_layered(&self.name(), &text, &env, stored),
                Err(_) => config::load_file(path), // reports the read error the usual way
            },
            ConfigSource::Text { name, text } => config::load_layered(name, text, &env, stored),
        }
    }
}

/// The longest a shutdown waits for limit settlements (they retry while Redis is down).
const LIMITS_FLUSH: Duration = Duration::from_secs(5);

/// Storage URL used when the config names none: a SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://switchboard.db";

/// The gateway plus what keeps it current.
#[derive(Debug)]
pub struct Runtime {
    pub gateway: Arc<Gateway>,
    pub store: Store,
    pub source: ConfigSource,
    /// The usage records' batch writer.
    pub usage_writer: WriterHandle,
    /// Stops the usage writer (after the last request has ended).
    usage_stop: CancellationToken,
    /// The call bodies' queue (`logging.bodies`), drained by a [`BodyWriter`]; sized at start.
    pub bodies: BodyQueue,
    /// The call bodies' writer.
    pub body_writer: BodyWriterHandle,
    tasks: TaskTracker,
    /// The change feed's listener tasks, once [`Runtime::follow_changes`] started them.
    listeners: parking_lot::Mutex<Option<Arc<ChangeListeners>>>,
    /// The alert rules' evaluator (its schedule is started with the server).
    pub alerts: Arc<crate::alerts::Evaluator>,
}

impl Runtime {
    /// Opens and migrates the store, loads the config with the stored layer and builds the
    /// gateway. Fails (so `serve` exits with the reason) when storage is unreachable or the
    /// config is invalid.
    pub async fn open(source: ConfigSource) -> anyhow::Result<Runtime> {
        let bootstrap = source
            .load(&StoredLayer::default())
            .map_err(|errors| anyhow::anyhow!("{errors}"))
            .with_context(|| format!("{} is not valid", source.name()))?;
        let store = open_store(&bootstrap).await?;
        let stored = stored_layer(&store).await?;
        let config = source
            .load(&stored)
            .map_err(|errors| anyhow::anyhow!("{errors}"))
            .with_context(|| {
                format!(
                    "{} with the stored providers and models is not valid",
                    source.name()
                )
            })?;
        sync_orgs(&store, &config).await;
        let shared_limits = shared_limits(&config).await?;
        let (usage, records) = UsageQueue::channel(usage::DEFAULT_CAPACITY);
        let tasks = TaskTracker::new();
        let usage_stop = CancellationToken::new();
        let usage_writer = UsageWriter::spawn(
            store.clone(),
            records,
            WriterOptions::default(),
            &tasks,
            usage_stop.clone(),
        );
        let (bodies, body_rx) = BodyQueue::channel(config.logging.body_queue);
        let body_writer = BodyWriter::spawn(store.clone(), body_rx, &tasks, usage_stop.clone());
        let parts = Attachments {
            keys: Some(Arc::new(store.clone())),
            shared_limits,
            spend: Some(Arc::new(store.clone())),
            usage: Some(usage),
        };
        let gateway = Arc::new(Gateway::attach(config, parts).context("cannot build the gateway")?);
        let alerts = Arc::new(crate::alerts::Evaluator::new(
            store.clone(),
            gateway.clone(),
        ));
        // Old call log rows go in small batches, with the retention of the config in force.
        let current = gateway.clone();
        RetentionTask::spawn(
            store.clone(),
            Arc::new(move || current.snapshot().config.logging.retention.clone()),
            &tasks,
            usage_stop.clone(),
        );
        Ok(Runtime {
            alerts,
            gateway,
            store,
            source,
            usage_writer,
            usage_stop,
            bodies,
            body_writer,
            tasks,
            listeners: parking_lot::Mutex::new(None),
        })
    }

    /// After the last request has ended: writes every usage record still buffered (spilling
    /// them to a file if storage is down), then settles the limit counters still queued. Usage
    /// first: it is billing data, while counters left unsettled (Redis down) only expire.
    pub async fn drain(&self) {
        self.alerts.stopped().await;
        self.usage_stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if tokio::time::timeout(LIMITS_FLUSH, self.gateway.limits().flush())
            .await
            .is_err()
        {
            tracing::warn!(
                "Some limit counters were not settled before exit; they expire on their own."
            );
        }
    }

    /// Rebuilds the config from the source and the stored layer. On failure the running config
    /// stays and the reason is recorded (`reload_status`) and returned.
    pub async fn reload(&self) -> Result<(), String> {
        let stored = match stored_layer(&self.store).await {
            Ok(stored) => stored,
            Err(err) => {
                let why = format!("cannot read stored providers and models: {err:#}");
                self.gateway.reload_refused(why.clone());
                return Err(why);
            }
        };
        match self.source.load(&stored) {
            Ok(config) => {
                let running = self.gateway.snapshot();
                let from_file = self.source.defined("prompts");
                // Stored prompts are guarded by the store (which also lets a deleted prompt be
                // made again from 1); this check is for the ones the server's file defines.
                let stored_only: BTreeSet<&str> = stored
                    .prompts
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .filter(|name| !from_file.contains(*name))
                    .collect();
                if let Err(conflict) = prompt_versions_kept(&running.config, &config, &stored_only)
                {
                    let why = conflict.to_string();
                    tracing::error!(%why, "Config problem.");
                    self.gateway.reload_refused(why.clone());
                    return Err(why);
                }
                let old_listen = running.config.listen;
                if config.listen != old_listen {
                    tracing::warn!("`listen` changed: restart to apply it.");
                }
                let orgs_changed = config.orgs != self.gateway.snapshot().config.orgs;
                if orgs_changed {
                    sync_orgs(&self.store, &config).await;
                }
                self.gateway.reload(config).map_err(|e| e.to_string())
            }
            Err(errors) => {
                for problem in &errors.problems {
                    tracing::error!(%problem, "Config problem.");
                }
                let why = errors.to_string();
                self.gateway.reload_refused(why.clone());
                Err(why)
            }
        }
    }

    /// Follows the store's change feed until `stop`: access changes drop cached key grants,
    /// config changes rebuild the config. A lagging receiver treats everything as changed.
    pub fn follow_changes(self: &Arc<Self>, stop: CancellationToken) {
        let listeners = Arc::new(self.store.start_listening(stop.clone()));
        *self.listeners.lock() = Some(listeners.clone());
        let mut changes = self.store.subscribe();
        let runtime = self.clone();
        tokio::spawn(async move {
            loop {
                let change = tokio::select! {
                    () = stop.cancelled() => break,
                    change = changes.recv() => change,
                };
                match change {
                    Ok(Change::Access) => runtime.gateway.invalidate_keys(),
                    Ok(Change::Config) => runtime.reload_logged().await,
                    Err(RecvError::Lagged(_)) => {
                        runtime.gateway.invalidate_keys();
                        runtime.reload_logged().await;
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            listeners.stopped().await;
        });
    }

    /// Waits (at most 10 s) until the change feed's listeners are subscribed, so that changes
    /// other instances publish from now on reach this one. For tests and readiness.
    pub async fn changes_connected(&self) -> bool {
        let listeners = self.listeners.lock().clone();
        match listeners {
            Some(listeners) => tokio::time::timeout(Duration::from_secs(10), listeners.connected())
                .await
                .is_ok(),
            None => false,
        }
    }

    async fn reload_logged(&self) {
        match self.reload().await {
            Ok(()) => tracing::info!("Config rebuilt after a stored change."),
            Err(why) => {
                tracing::error!(%why, "Config rebuild refused; the running config stays.")
            }
        }
    }
}

/// The shared limit counters when `redis:` is configured. Redis unreachable at start is an
/// error only with `limits.on_redis_error: reject`; otherwise limits fall back to this
/// instance's counters until it answers.
async fn shared_limits(config: &Config) -> anyhow::Result<Option<Arc<dyn LimitBackend>>> {
    let Some(url) = &config.redis else {
        return Ok(None);
    };
    let limits = RedisLimits::connect(url, config.limits.redis_timeout)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    if config.limits.on_redis_error == RedisFailure::Reject {
        limits.ping().await.map_err(|err| {
            anyhow::anyhow!("{err} (limits.on_redis_error is `reject`, so Redis is required)")
        })?;
    }
    Ok(Some(Arc::new(limits)))
}

/// Connects to the config's database (or the default SQLite file), migrates, and attaches the
/// secret cipher (from `SWITCHBOARD_SECRET_KEY`) and Redis for the change feed.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database.as_deref().unwrap_or(DEFAULT_DATABASE);
    let mut store = Store::connect(url, &StoreOptions::default())
        .await
        .with_context(|| {
            format!(
                "cannot open the database `{}`",
                switchboard_store::redact_url(url)
            )
        })?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    store = store.with_cipher(SecretCipher::from_env().context("SWITCHBOARD_SECRET_KEY")?);
    if let Some(redis) = &config.redis {
        store = store.with_redis(redis)?;
    }
    Ok(store)
}

/// Creates the orgs, teams and apps of the server's own file in storage (never deletes: see
/// `apply::sync_file_orgs`). A failure is logged and serving goes on with what is stored.
async fn sync_orgs(store: &Store, config: &Config) {
    if config.orgs.is_empty() {
        return;
    }
    match crate::apply::sync_file_orgs(store, &config.orgs).await {
        Ok(changes) => {
            for change in &changes {
                tracing::info!(%change, "Org from the config file stored.");
            }
        }
        Err(err) => tracing::error!(%err, "Cannot store the config file's orgs."),
    }
}

/// A reload may add prompt versions and move labels, never change a version the running config
/// has: a call log's `prompt@n` must keep meaning one text. `skip` names prompts that only
/// storage defines. (Versions the new config drops are allowed here: the server's file may
/// prune them; stored prompts keep theirs, see the store.)
fn prompt_versions_kept(
    running: &Config,
    new: &Config,
    skip: &BTreeSet<&str>,
) -> Result<(), VersionConflict> {
    for (name, prompt) in new
        .prompts
        .iter()
        .filter(|(n, _)| !skip.contains(n.as_str()))
    {
        if let Some(old) = running.prompts.get(name) {
            immutable::check_versions(name, &old.versions, &prompt.versions, Removal::Allow)?;
        }
    }
    Ok(())
}

async fn stored_layer(store: &Store) -> anyhow::Result<StoredLayer> {
    Ok(store.stored_layer().await?)
}
