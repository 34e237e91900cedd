//! Budget alerts: a JSON POST to `limits.alert_webhook` when a budget crosses one of its
//! `alert_at` thresholds. Exactly one settlement sees each crossing (the backend reports spend
//! before and after atomically), so an alert is sent once per threshold and period even with
//! many instances.

use super::period::rfc3339;
use super::state::Crossing;
use serde_json::json;
use std::time::Duration;
use tracing::warn;

/// The alert's body.
pub fn payload(alert: &Crossing, now_ms: i64) -> serde_json::Value {
    json!({
        "type": "budget.threshold",
        "budget": alert.budget,
        "scope": alert.scope.as_str(),
        "subject": alert.subject,
        "period": alert.period,
        "threshold_percent": alert.percent,
        "spent_micros": alert.spent,
        "limit_micros": alert.limit,
        "spent_usd": micros_text(alert.spent),
        "limit_usd": micros_text(alert.limit),
        "at": rfc3339(now_ms),
    })
}

/// `12.5` for 12_500_000 micro-dollars: exact decimal text, never through `f64`.
pub fn micros_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let whole = abs / 1_000_000;
    let frac = abs % 1_000_000;
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        let digits = format!("{frac:06}");
        format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// POSTs the alert, once, with a short timeout; a failure is logged, not retried forever.
pub async fn deliver(http: &reqwest::Client, url: &str, alert: &Crossing) {
    let body = payload(alert, super::now_ms());
    let sent = http
        .post(url)
        .timeout(Duration::from_secs(5))
        .json(&body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => {
            warn!(status = response.status().as_u16(), budget = %alert.budget, "The budget alert webhook refused the alert.")
        }
        Err(err) => {
            warn!(err = %err.without_url(), budget = %alert.budget, "The budget alert webhook is unreachable.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::micros_text;

    #[test]
    fn dollars_are_printed_exactly() {
        assert_eq!(micros_text(500_000_000), "500");
        assert_eq!(micros_text(12_500_000), "12.5");
        assert_eq!(micros_text(1), "0.000001");
        assert_eq!(micros_text(-2_250_000), "-2.25");
    }
}
