//! What one alert rule measures now: error rate, latency percentile or spend over its window
//! from the analytics rollups, or the most-spent subject's share of a budget, also from the
//! rollups (`Store::spend_by_subject`, as the limiter seeds its budget counters).

use switchboard_core::config::alerts::{AlertKind, AlertRule};
use switchboard_core::config::{rule_name, Config};
use switchboard_core::limits::period::bounds;
use switchboard_core::limits::{BudgetRule, Match, Scope};
use switchboard_store::{Dimension, RollupQuery, Store, StoreError};

/// A rule's measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// In the rule's unit; `None` when the window had too few requests to say.
    pub value: Option<f64>,
    /// Requests in the window (rollup kinds).
    pub requests: i64,
    /// Budget rules: the subject closest to (or over) its limit.
    pub subject: Option<String>,
}

/// Why a rule could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("no budget named `{0}` is configured or stored")]
    UnknownBudget(String),
    #[error("the rule's match names no known rollup dimension `{0}`")]
    Dimension(&'static str),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Measures `rule` at `now_ms`.
pub async fn measure(
    store: &Store,
    config: &Config,
    rule: &AlertRule,
    now_ms: i64,
) -> Result<Measured, MeasureError> {
    if rule.kind == AlertKind::Budget {
        return budget(store, config, rule, now_ms).await;
    }
    let (dimension, value) = rule.matches.dimension();
    let dimension = Dimension::parse(dimension).ok_or(MeasureError::Dimension(dimension))?;
    let window_ms = i64::try_from(rule.window_s)
        .unwrap_or(i64::MAX / 2_000)
        .saturating_mul(1_000);
    let query = RollupQuery {
        org: rule.matches.org.clone(),
        dimension,
        value: (dimension != Dimension::All).then_some(value),
        // Rollups are per minute: the window starts at the minute holding `now - window`.
        from_ms: (now_ms - window_ms).div_euclid(60_000) * 60_000,
        to_ms: now_ms.saturating_add(1),
    };
    let mut stats = switchboard_store::RollupStats::default();
    for point in store.rollup_totals(&query).await? {
        add(&mut stats, &point.stats);
    }
    let enough = stats.requests >= i64::try_from(rule.min_requests).unwrap_or(i64::MAX);
    let value = match rule.kind {
        AlertKind::ErrorRate => enough.then(|| stats.error_rate()),
        AlertKind::Latency if enough => stats.latency_percentile(rule.percentile),
        AlertKind::Latency => None,
        AlertKind::Spend => Some(stats.cost_micros as f64 / 1_000_000.0),
        AlertKind::Budget => None,
    };
    Ok(Measured {
        value,
        requests: stats.requests,
        subject: None,
    })
}

fn add(into: &mut switchboard_store::RollupStats, from: &switchboard_store::RollupStats) {
    into.requests += from.requests;
    into.errors += from.errors;
    into.cost_micros += from.cost_micros;
    if into.latency_counts.len() < from.latency_counts.len() {
        into.latency_counts.resize(from.latency_counts.len(), 0);
    }
    for (a, b) in into.latency_counts.iter_mut().zip(&from.latency_counts) {
        *a += b;
    }
}

/// The largest share of the budget spent by one of its subjects in the current period.
async fn budget(
    store: &Store,
    config: &Config,
    rule: &AlertRule,
    now_ms: i64,
) -> Result<Measured, MeasureError> {
    let wanted = rule.budget.clone().unwrap_or_default();
    let Some(budget) = config
        .budgets
        .iter()
        .find(|b| rule_name(b.name.as_deref(), b.scope, &b.matches) == wanted)
    else {
        return Err(MeasureError::UnknownBudget(wanted));
    };
    let since = bounds(budget.period, now_ms).start_ms;
    let limit = budget.limit.0.max(1) as f64;
    let mut worst: Option<(f64, String)> = None;
    for (subject, spent) in store.spend_by_subject(budget.scope, since).await? {
        if !covers(budget, &subject) {
            continue;
        }
        let share = spent as f64 / limit;
        if worst.as_ref().is_none_or(|(w, _)| share > *w) {
            worst = Some((share, subject));
        }
    }
    Ok(Measured {
        value: Some(worst.as_ref().map_or(0.0, |(share, _)| *share)),
        requests: 0,
        subject: worst.map(|(_, s)| s),
    })
}

/// Whether a budget's match covers `subject` (as far as the subject tells: a key id does not
/// say its organisation, so key budgets match on `key` only).
fn covers(budget: &BudgetRule, subject: &str) -> bool {
    let m: &Match = &budget.matches;
    let parts: Vec<&str> = match budget.scope {
        Scope::App => subject.splitn(3, '/').collect(),
        Scope::Team | Scope::Target => subject.splitn(2, '/').collect(),
        Scope::Key | Scope::Org | Scope::Alias => vec![subject],
    };
    let is = |want: &Option<String>, got: Option<&&str>| {
        want.as_deref().is_none_or(|w| got.is_some_and(|g| *g == w))
    };
    match budget.scope {
        Scope::Org => is(&m.org, parts.first()),
        Scope::Team => is(&m.org, parts.first()) && is(&m.team, parts.get(1)),
        Scope::App => {
            is(&m.org, parts.first()) && is(&m.team, parts.get(1)) && is(&m.app, parts.get(2))
        }
        Scope::Key => is(&m.key, parts.first()),
        Scope::Alias => is(&m.alias, parts.first()),
        Scope::Target => m.target.as_deref().is_none_or(|t| t == subject),
    }
}
