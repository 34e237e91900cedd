//! Who sends a transition when several instances (or a restarted one) evaluate the same rule:
//! with `redis:` configured, each transition is claimed with `SET switchboard:alert:<rule>
//! <state> GET`; only the instance that changes the stored state (the old value differs from
//! the new) delivers it. So a cluster sends each `firing` and `resolved` once, and a restart
//! does not repeat a `firing` that was already sent. When Redis cannot answer, the transition
//! is delivered anyway: a duplicate is better than a missed alert.

use super::AlertState;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long one claim may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Stored states expire after this long without a transition (rules removed from the config
/// leave nothing behind for ever).
const KEEP_S: u64 = 30 * 86_400;

/// The key of a rule's stored state.
pub fn key(rule: &str) -> String {
    format!("switchboard:alert:{rule}")
}

/// Claims transitions in Redis.
pub struct Claims {
    client: redis::Client,
    conn: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Claims {
    /// `None` when `url` does not parse (logged; transitions are then sent by every instance).
    pub fn new(url: &str) -> Option<Claims> {
        match redis::Client::open(url) {
            Ok(client) => Some(Claims {
                client,
                conn: Mutex::new(None),
            }),
            Err(err) => {
                tracing::warn!(%err, "Alerts: the redis URL is not usable; every instance sends its own transitions.");
                None
            }
        }
    }

    /// Whether this instance should deliver the transition of `rule` to `state`.
    pub async fn claim(&self, rule: &str, state: AlertState) -> bool {
        let text = match state {
            AlertState::Firing => "firing",
            AlertState::Ok => "ok",
        };
        match self.swap(rule, text).await {
            Ok(old) => old.as_deref() != Some(text),
            Err(err) => {
                tracing::warn!(%err, rule, "Alerts: cannot claim a transition in Redis; sending it anyway.");
                *self.conn.lock().await = None;
                true
            }
        }
    }

    async fn swap(&self, rule: &str, state: &str) -> redis::RedisResult<Option<String>> {
        let mut slot = self.conn.lock().await;
        let mut conn = match slot.as_ref() {
            Some(conn) => conn.clone(),
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(TIMEOUT)
                    .set_response_timeout(TIMEOUT);
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                *slot = Some(conn.clone());
                conn
            }
        };
        drop(slot);
        redis::cmd("SET")
            .arg(key(rule))
            .arg(state)
            .arg("GET")
            .arg("EX")
            .arg(KEEP_S)
            .query_async(&mut conn)
            .await
    }
}
