//! The change feed: how every instance learns that access data (keys, subscriptions, tenancy)
//! or stored config (providers, models) changed, so it can drop cached key grants or reload.
//!
//! Three paths carry a [`Change`]:
//! - a local `tokio::sync::broadcast`, for this process;
//! - Postgres `NOTIFY switchboard_changes, 'access'|'config'` when the store is on Postgres, and a
//!   `LISTEN` task forwarding other instances' notifications into the local broadcast;
//! - Redis pub/sub on `switchboard:changes` when a Redis URL is configured (instances that share
//!   Redis but not a Postgres, e.g. several SQLite-backed gateways, or to spare Postgres).
//!
//! Notifications carry no data, only "something of this kind changed": a receiver invalidates
//! and reloads, so duplicates (an instance hears its own NOTIFY back, or both Postgres and Redis
//! deliver) are harmless, and a lost notification is what must be avoided. That is why a
//! listener that reconnects emits both kinds: whatever happened while it was away is covered.
//! Nothing here blocks callers for long or panics when Postgres or Redis are down: failures are
//! logged and retried with capped backoff.

use crate::db::{redact_url, Backend, Store};
use crate::error::StoreError;
use futures::StreamExt;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The Postgres `NOTIFY` channel.
pub const PG_CHANNEL: &str = "switchboard_changes";
/// The Redis pub/sub channel.
pub const REDIS_CHANNEL: &str = "switchboard:changes";

/// How many changes a slow local subscriber may fall behind before it sees `Lagged` (and
/// should then treat everything as changed).
const LOCAL_CAPACITY: usize = 256;
/// Longest wait for a remote publish (NOTIFY or PUBLISH): the write has committed already, so a
/// slow remote side must not hold up the caller's response for long.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a listener to connect and subscribe before retrying.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What kind of stored data changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// Keys, subscriptions, orgs, teams, apps, users: cached key grants are stale.
    Access,
    /// Stored providers or models: the gateway's config must be rebuilt.
    Config,
}

impl Change {
    /// The notification payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Access => "access",
            Change::Config => "config",
        }
    }

    /// Reads a notification payload; unknown payloads (a newer version's) are ignored.
    pub fn parse(payload: &str) -> Option<Change> {
        match payload {
            "access" => Some(Change::Access),
            "config" => Some(Change::Config),
            _ => None,
        }
    }
}

/// The change feed a [`Store`] holds: the local broadcast and where to reach other instances.
#[derive(Clone)]
pub(crate) struct ChangeFeed {
    local: broadcast::Sender<Change>,
    /// Where to `LISTEN` (the store's own URL) when the store is on Postgres.
    pg_url: Option<Arc<str>>,
    redis: Option<Arc<RedisSide>>,
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed")
            .field("pg_url", &self.pg_url.as_deref().map(redact_url))
            .field("redis", &self.redis.as_ref().map(|r| redact_url(&r.url)))
            .finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// A feed for a store opened on `url`.
    pub(crate) fn new(backend: Backend, url: &str) -> ChangeFeed {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        ChangeFeed {
            local,
            pg_url: (backend == Backend::Postgres).then(|| Arc::from(url)),
            redis: None,
        }
    }
}

/// The Redis side: the client (for listeners) and a shared connection for publishing, made on
/// first use and dropped on error so the next publish reconnects.
struct RedisSide {
    url: String,
    client: redis::Client,
    publisher: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl RedisSide {
    async fn publish(&self, change: Change) -> Result<(), redis::RedisError> {
        let mut slot = self.publisher.lock().await;
        let mut conn = match slot.as_ref() {
            Some(conn) => conn.clone(),
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(PUBLISH_TIMEOUT)
                    .set_response_timeout(PUBLISH_TIMEOUT);
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                *slot = Some(conn.clone());
                conn
            }
        };
        drop(slot);
        let result: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(REDIS_CHANNEL)
            .arg(change.as_str())
            .query_async(&mut conn)
            .await;
        if result.is_err() {
            *self.publisher.lock().await = None;
        }
        result.map(|_| ())
    }
}

impl Store {
    /// Also publishes changes to, and (once [`Store::start_listening`] runs) receives them from,
    /// Redis at `url`. Call before cloning the store: clones made earlier keep their settings.
    /// Does not connect (connections are made on first use and retried).
    pub fn with_redis(mut self, url: &str) -> Result<Store, StoreError> {
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Invalid(format!("invalid Redis URL `{}`: {e}", redact_url(url)))
        })?;
        self.changes.redis = Some(Arc::new(RedisSide {
            url: url.to_owned(),
            client,
            publisher: Mutex::new(None),
        }));
        Ok(self)
    }

    /// Tells this process and every other instance that `change` happened. Call it after the
    /// write committed. Never fails: a remote side that is down is logged (its listeners emit
    /// every kind of change when they reconnect, which covers what they missed).
    pub async fn publish(&self, change: Change) {
        // No local subscriber is not an error.
        let _ = self.changes.local.send(change);
        if self.changes.pg_url.is_some() {
            // NOTIFY takes no bind parameters; the payload is one of two fixed words.
            let sql = match change {
                Change::Access => "NOTIFY switchboard_changes, 'access'",
                Change::Config => "NOTIFY switchboard_changes, 'config'",
            };
            match tokio::time::timeout(PUBLISH_TIMEOUT, sqlx::query(sql).execute(&self.pool)).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, change = change.as_str(), "postgres NOTIFY failed");
                }
                Err(_) => {
                    tracing::warn!(change = change.as_str(), "postgres NOTIFY timed out");
                }
            }
        }
        if let Some(redis) = &self.changes.redis {
            match tokio::time::timeout(PUBLISH_TIMEOUT, redis.publish(change)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, change = change.as_str(), "redis PUBLISH failed");
                }
                Err(_) => {
                    tracing::warn!(change = change.as_str(), "redis PUBLISH timed out");
                }
            }
        }
    }

    /// Receives every change published by this process and, while listeners run, by others.
    /// A receiver that lags (`RecvError::Lagged`) should treat everything as changed.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.local.subscribe()
    }

    /// Starts the tasks that forward other instances' changes into [`Store::subscribe`]: a
    /// Postgres `LISTEN` when the store is on Postgres, a Redis subscription when
    /// [`Store::with_redis`] was given. They reconnect with capped backoff until `shutdown`.
    pub fn start_listening(&self, shutdown: CancellationToken) -> ChangeListeners {
        let tracker = TaskTracker::new();
        let mut ready = Vec::new();
        if let Some(url) = &self.changes.pg_url {
            let (tx, rx) = watch::channel(false);
            ready.push(rx);
            tracker.spawn(listen_postgres(
                url.clone(),
                self.changes.local.clone(),
                tx,
                shutdown.clone(),
            ));
        }
        if let Some(redis) = &self.changes.redis {
            let (tx, rx) = watch::channel(false);
            ready.push(rx);
            tracker.spawn(listen_redis(
                redis.clone(),
                self.changes.local.clone(),
                tx,
                shutdown.clone(),
            ));
        }
        tracker.close();
        ChangeListeners { tracker, ready }
    }
}

/// The running listener tasks of [`Store::start_listening`].
#[derive(Debug)]
pub struct ChangeListeners {
    tracker: TaskTracker,
    /// One per listener: whether it is subscribed right now.
    ready: Vec<watch::Receiver<bool>>,
}

impl ChangeListeners {
    /// Whether every listener is connected and subscribed (true when there are none).
    pub fn is_connected(&self) -> bool {
        self.ready.iter().all(|r| *r.borrow())
    }

    /// Waits until every listener is subscribed, so that changes published from now on reach
    /// this process. Waits forever while a remote side is down: put a timeout around it. Returns
    /// early if the listeners stopped.
    pub async fn connected(&self) {
        for ready in &self.ready {
            let mut ready = ready.clone();
            if ready.wait_for(|up| *up).await.is_err() {
                return;
            }
        }
    }

    /// Waits for the tasks to end (after the shutdown token was cancelled).
    pub async fn stopped(&self) {
        self.tracker.wait().await;
    }
}

/// Capped exponential backoff with a little jitter, so many instances do not reconnect in step.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next: BACKOFF_START,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
        base + jitter
    }
}

/// Sleeps, unless shutdown comes first; returns whether to go on.
async fn pause(backoff: &mut Backoff, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(backoff.next_delay()) => true,
    }
}

fn forward(local: &broadcast::Sender<Change>, payload: &str, source: &'static str) {
    match Change::parse(payload) {
        Some(change) => {
            let _ = local.send(change);
        }
        None => tracing::debug!(payload, source, "ignoring unknown change notification"),
    }
}

/// After a listener (re)connects having lost its subscription, anything may have changed.
fn assume_everything_changed(local: &broadcast::Sender<Change>) {
    let _ = local.send(Change::Access);
    let _ = local.send(Change::Config);
}

async fn listen_postgres(
    url: Arc<str>,
    local: broadcast::Sender<Change>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    // Set once the subscription was lost or never made: the next success emits everything.
    let mut missed = false;
    loop {
        let attempt = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(PG_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tokio::time::timeout(CONNECT_TIMEOUT, attempt) => r,
        };
        match connected {
            Ok(Ok(mut listener)) => {
                ready.send_replace(true);
                backoff.reset();
                if missed {
                    tracing::info!("postgres change listener reconnected");
                    assume_everything_changed(&local);
                }
                missed = true;
                loop {
                    let received = tokio::select! {
                        () = shutdown.cancelled() => return,
                        r = listener.try_recv() => r,
                    };
                    match received {
                        Ok(Some(note)) => forward(&local, note.payload(), "postgres"),
                        // try_recv reports a lost connection as None; reconnect ourselves so
                        // that we know when to emit everything.
                        Ok(None) => {
                            tracing::warn!("postgres change listener lost its connection");
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "postgres change listener failed");
                            break;
                        }
                    }
                }
                ready.send_replace(false);
            }
            Ok(Err(err)) => {
                missed = true;
                tracing::warn!(error = %err, "postgres change listener cannot connect");
            }
            Err(_) => {
                missed = true;
                tracing::warn!("postgres change listener timed out connecting");
            }
        }
        if !pause(&mut backoff, &shutdown).await {
            return;
        }
    }
}

async fn listen_redis(
    redis: Arc<RedisSide>,
    local: broadcast::Sender<Change>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut missed = false;
    loop {
        let attempt = async {
            let mut pubsub = redis.client.get_async_pubsub().await?;
            pubsub.subscribe(REDIS_CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let connected = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tokio::time::timeout(CONNECT_TIMEOUT, attempt) => r,
        };
        match connected {
            Ok(Ok(mut pubsub)) => {
                ready.send_replace(true);
                backoff.reset();
                if missed {
                    tracing::info!("redis change listener reconnected");
                    assume_everything_changed(&local);
                }
                missed = true;
                let mut messages = pubsub.on_message();
                loop {
                    let message = tokio::select! {
                        () = shutdown.cancelled() => return,
                        m = messages.next() => m,
                    };
                    match message {
                        Some(message) => match message.get_payload::<String>() {
                            Ok(payload) => forward(&local, &payload, "redis"),
                            Err(err) => {
                                tracing::debug!(error = %err, "ignoring a non-text redis message");
                            }
                        },
                        None => {
                            tracing::warn!("redis change listener lost its connection");
                            break;
                        }
                    }
                }
                ready.send_replace(false);
            }
            Ok(Err(err)) => {
                missed = true;
                tracing::warn!(error = %err, "redis change listener cannot connect");
            }
            Err(_) => {
                missed = true;
                tracing::warn!("redis change listener timed out connecting");
            }
        }
        if !pause(&mut backoff, &shutdown).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        for change in [Change::Access, Change::Config] {
            assert_eq!(Change::parse(change.as_str()), Some(change));
        }
        assert_eq!(Change::parse("other"), None);
    }

    #[test]
    fn backoff_is_capped() {
        let mut backoff = Backoff::new();
        for _ in 0..20 {
            assert!(backoff.next_delay() <= BACKOFF_MAX.mul_f64(1.25));
        }
        backoff.reset();
        assert!(backoff.next_delay() < BACKOFF_START * 2);
    }
}
