//! The approval webhook: when a subscription is approved or rejected, `access.approval_webhook`
//! (if set) receives `{event, subscription, org, app, reason, at}` as a JSON POST. It is sent in
//! a task of its own with a timeout, so a slow or dead receiver never delays the admin's answer;
//! a failure is logged and not retried.

use super::dto::Subscription;
use serde::Serialize;
use std::sync::OnceLock;
use std::time::Duration;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the receiver gets.
#[derive(Debug, Serialize)]
pub struct Event {
    /// `subscription.approved` or `subscription.rejected`.
    pub event: &'static str,
    pub subscription: Subscription,
    /// The organisation's name.
    pub org: String,
    /// The app's name.
    pub app: String,
    pub reason: Option<String>,
    /// Unix ms of the decision.
    pub at: i64,
}

/// One client for every delivery (connection reuse); `None` if it cannot be built.
fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(
            || match reqwest::Client::builder().timeout(TIMEOUT).build() {
                Ok(client) => Some(client),
                Err(err) => {
                    tracing::error!(%err, "Cannot build the approval webhook's HTTP client.");
                    None
                }
            },
        )
        .as_ref()
}

/// Sends `event` to `url` in the background.
pub fn notify(url: Option<String>, event: Event) {
    let Some(url) = url else { return };
    let Some(client) = client() else { return };
    tokio::spawn(async move {
        let sent = client.post(&url).json(&event).send().await;
        match sent {
            Ok(resp) if resp.status().is_success() => {
                tracing::debug!(event = event.event, "Approval webhook delivered.");
            }
            Ok(resp) => tracing::warn!(
                status = resp.status().as_u16(),
                event = event.event,
                "The approval webhook answered with an error."
            ),
            Err(err) => tracing::warn!(
                error = %err.without_url(),
                event = event.event,
                "The approval webhook could not be delivered."
            ),
        }
    });
}
