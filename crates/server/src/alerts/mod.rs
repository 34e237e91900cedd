//! The alert evaluator: every `alerts.interval_s` it measures each rule of `alerts:` (see
//! `measure.rs`) and, when a rule starts or stops firing, logs the transition and POSTs it to
//! `alerts.webhook` (`deliver.rs`). A rule that stays firing sends nothing more, so each
//! episode is one `firing` and one `resolved`.
//!
//! State is kept in memory per instance. With `redis:` configured, each transition is also
//! claimed in Redis (`claim.rs`), so that a cluster sends it once and a restart does not repeat
//! it; without Redis every instance that evaluates sends its own transitions, so run `alerts:`
//! on one instance (docs/observability.md).
//!
//! The loop runs on its own [`TaskTracker`] and stops with the server's cancellation token.
//! Tests drive [`Evaluator::evaluate_once`] with a time of their choosing instead.

mod claim;
mod deliver;
mod measure;

pub use measure::{measure, MeasureError, Measured};

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchboard_core::config::alerts::AlertRule;
use switchboard_core::Gateway;
use switchboard_store::Store;
use switchboard_types::calendar::now_ms;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Whether a rule is firing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Below the threshold (or not evaluated yet).
    #[default]
    Ok,
    Firing,
}

/// A rule's standing after its last evaluation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuleStatus {
    pub state: AlertState,
    /// When the current state began (Unix ms); `None` before the first transition.
    pub since_ms: Option<i64>,
    /// The last measured value, in the rule's unit.
    pub value: Option<f64>,
    /// Requests in the last window (rollup kinds).
    pub requests: i64,
    /// Budget rules: the subject closest to its limit.
    pub subject: Option<String>,
    pub last_evaluated_ms: Option<i64>,
    /// Why the last evaluation failed (the state is kept as it was).
    pub error: Option<String>,
}

/// A change of state, as logged and delivered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    pub rule: AlertRule,
    pub state: AlertState,
    pub value: Option<f64>,
    pub subject: Option<String>,
    pub at_ms: i64,
}

/// Evaluates the alert rules of the running config.
pub struct Evaluator {
    store: Store,
    gateway: Arc<Gateway>,
    http: reqwest::Client,
    /// Held for a whole evaluation, so that two evaluations never both see the same change.
    states: Mutex<BTreeMap<String, RuleStatus>>,
    tasks: TaskTracker,
    /// Cluster-wide claims of transitions when `redis:` is configured.
    claims: Option<claim::Claims>,
}

impl Evaluator {
    pub fn new(store: Store, gateway: Arc<Gateway>) -> Evaluator {
        let claims = gateway
            .snapshot()
            .config
            .redis
            .as_deref()
            .and_then(claim::Claims::new);
        Evaluator {
            claims,
            store,
            gateway,
            http: reqwest::Client::new(),
            states: Mutex::new(BTreeMap::new()),
            tasks: TaskTracker::new(),
        }
    }

    /// Starts the schedule: the first evaluation one interval after start, then every
    /// `alerts.interval_s` (read from the running config each time, so reloads apply).
    pub fn start(self: &Arc<Self>, stop: CancellationToken) {
        let me = self.clone();
        self.tasks.spawn(async move {
            loop {
                let interval = me.gateway.snapshot().config.alerts.interval;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                if me.gateway.snapshot().config.alerts.rules.is_empty() {
                    continue;
                }
                me.evaluate_once(now_ms()).await;
            }
        });
        self.tasks.close();
    }

    /// Waits for the schedule to end (after its token was cancelled).
    pub async fn stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Measures every rule as of `now_ms`, records the results, logs and delivers each
    /// transition (awaiting delivery), and returns the transitions this instance sent (with
    /// Redis, those another instance already sent are recorded but not sent again).
    pub async fn evaluate_once(&self, now_ms: i64) -> Vec<Transition> {
        let snapshot = self.gateway.snapshot();
        let config = &snapshot.config;
        let mut states = self.states.lock().await;
        // Rules removed from the config are forgotten.
        states.retain(|name, _| config.alerts.rules.iter().any(|r| &r.name == name));
        let mut transitions = Vec::new();
        for rule in &config.alerts.rules {
            let status = states.entry(rule.name.clone()).or_default();
            status.last_evaluated_ms = Some(now_ms);
            let measured = match measure(&self.store, config, rule, now_ms).await {
                Ok(measured) => measured,
                Err(err) => {
                    tracing::warn!(rule = %rule.name, %err, "Cannot evaluate an alert rule.");
                    status.error = Some(err.to_string());
                    continue;
                }
            };
            status.error = None;
            status.value = measured.value;
            status.requests = measured.requests;
            status.subject = measured.subject.clone();
            let firing = measured.value.is_some_and(|v| v >= rule.threshold);
            let state = if firing {
                AlertState::Firing
            } else {
                AlertState::Ok
            };
            if state == status.state {
                continue;
            }
            status.state = state;
            status.since_ms = Some(now_ms);
            transitions.push(Transition {
                rule: rule.clone(),
                state,
                value: measured.value,
                subject: measured.subject,
                at_ms: now_ms,
            });
        }
        drop(states);
        let webhook = config.alerts.webhook.clone();
        let mut sent = Vec::with_capacity(transitions.len());
        for t in transitions {
            if let Some(claims) = &self.claims {
                if !claims.claim(&t.rule.name, t.state).await {
                    tracing::debug!(rule = %t.rule.name, "Alert transition already sent by another instance.");
                    continue;
                }
            }
            match t.state {
                AlertState::Firing => tracing::warn!(
                    rule = %t.rule.name, kind = t.rule.kind.as_str(), value = ?t.value,
                    threshold = t.rule.threshold, subject = ?t.subject, "Alert firing."
                ),
                AlertState::Ok => tracing::info!(
                    rule = %t.rule.name, kind = t.rule.kind.as_str(), value = ?t.value,
                    threshold = t.rule.threshold, "Alert resolved."
                ),
            }
            if let Some(url) = &webhook {
                deliver::deliver(&self.http, url, &t).await;
            }
            sent.push(t);
        }
        sent
    }

    /// Every configured rule with its status, in config order.
    pub async fn statuses(&self) -> Vec<(AlertRule, RuleStatus)> {
        let snapshot = self.gateway.snapshot();
        let states = self.states.lock().await;
        snapshot
            .config
            .alerts
            .rules
            .iter()
            .map(|r| (r.clone(), states.get(&r.name).cloned().unwrap_or_default()))
            .collect()
    }
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}
