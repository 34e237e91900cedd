//! Delivery of an alert transition: a JSON POST to `alerts.webhook`, once, with a short
//! timeout. A failure is logged and not retried (the next transition is sent anyway; the log
//! line is the record).

use super::{AlertState, Transition};
use serde_json::json;
use std::time::Duration;
use switchboard_core::limits::period::rfc3339;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The webhook's body.
pub fn payload(t: &Transition) -> serde_json::Value {
    json!({
        "type": match t.state {
            AlertState::Firing => "alert.firing",
            AlertState::Ok => "alert.resolved",
        },
        "rule": t.rule.name,
        "kind": t.rule.kind.as_str(),
        "state": t.state,
        "value": t.value,
        "threshold": t.rule.threshold,
        "window_s": t.rule.window_s,
        "match": t.rule.matches,
        "budget": t.rule.budget,
        "subject": t.subject,
        "at": rfc3339(t.at_ms),
        "at_ms": t.at_ms,
    })
}

pub async fn deliver(http: &reqwest::Client, url: &str, t: &Transition) {
    let sent = http
        .post(url)
        .timeout(TIMEOUT)
        .json(&payload(t))
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => tracing::warn!(
            status = response.status().as_u16(), rule = %t.rule.name,
            "The alert webhook refused the alert."
        ),
        Err(err) => tracing::warn!(
            err = %err.without_url(), rule = %t.rule.name,
            "The alert webhook is unreachable."
        ),
    }
}
