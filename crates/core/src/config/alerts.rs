//! `alerts:`: rules on error rate, latency percentile, spend and budget use, evaluated on a
//! schedule by the server (docs/observability.md). This file holds the section as written
//! (strict serde types), its checks (each problem with its key path) and the validated form.
//!
//! A rule reads the analytics rollups, which hold one dimension per row, so its `match` names
//! at most one of `alias`, `target`, `team` (with `org`), `app` (with `org` and `team`), `key`
//! or `tag`, optionally within one `org`.

use super::locate::KeyPath;
use super::validate::is_slug;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// Default seconds between evaluations.
pub const DEFAULT_INTERVAL_S: u64 = 60;
/// Default window of a rule.
pub const DEFAULT_WINDOW_S: u64 = 300;

/// `alerts:` as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    pub interval_s: Option<u64>,
    pub webhook: Option<String>,
    #[serde(default)]
    pub rules: Vec<RawAlertRule>,
}

/// One `alerts.rules` entry as written.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAlertRule {
    pub name: String,
    pub kind: AlertKind,
    pub window_s: Option<u64>,
    pub threshold: f64,
    /// `p50`, `p90`, `p95` or `p99`; latency rules only (default `p95`).
    pub percentile: Option<String>,
    /// Fewer requests in the window never fire (error rate and latency rules; default 1).
    pub min_requests: Option<u64>,
    /// The budget's name; budget rules only.
    pub budget: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: AlertMatch,
}

/// What a rule measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Errors per request in the window (a fraction, 0.05 = 5%).
    ErrorRate,
    /// A latency percentile in the window, milliseconds.
    Latency,
    /// Dollars spent in the window.
    Spend,
    /// The fraction of a budget spent in its current period (0.8 = 80%).
    Budget,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ErrorRate => "error_rate",
            AlertKind::Latency => "latency",
            AlertKind::Spend => "spend",
            AlertKind::Budget => "budget",
        }
    }
}

/// Which requests a rule looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `provider/model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// A key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `k=v`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl AlertMatch {
    /// The rollup dimension and value this match reads (`("all", "")` for none), as the
    /// usage writer names them.
    pub fn dimension(&self) -> (&'static str, String) {
        let org = self.org.clone().unwrap_or_default();
        if let (Some(team), Some(app)) = (&self.team, &self.app) {
            return ("app", format!("{org}/{team}/{app}"));
        }
        if let Some(team) = &self.team {
            return ("team", format!("{org}/{team}"));
        }
        for (dim, value) in [
            ("alias", &self.alias),
            ("target", &self.target),
            ("key", &self.key),
            ("tag", &self.tag),
        ] {
            if let Some(value) = value {
                return (dim, value.clone());
            }
        }
        ("all", String::new())
    }
}

/// The validated `alerts:` section.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    pub interval: Duration,
    pub webhook: Option<String>,
    pub rules: Vec<AlertRule>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            interval: Duration::from_secs(DEFAULT_INTERVAL_S),
            webhook: None,
            rules: Vec::new(),
        }
    }
}

/// One validated rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertRule {
    pub name: String,
    pub kind: AlertKind,
    /// The window looked back over (not used by budget rules, which use the budget's period).
    pub window_s: u64,
    /// Fires at or above this value (see [`AlertKind`] for units).
    pub threshold: f64,
    /// Latency rules: the percentile as a fraction (0.95).
    pub percentile: f64,
    pub min_requests: u64,
    pub budget: Option<String>,
    #[serde(rename = "match")]
    pub matches: AlertMatch,
}

/// Checks `raw` and builds the section; problems are pushed with their key paths.
pub(crate) fn validate(
    raw: Option<&RawAlerts>,
    known_models: &BTreeSet<&str>,
    problems: &mut Vec<(KeyPath, String)>,
) -> AlertsConfig {
    let mut out = AlertsConfig::default();
    let Some(raw) = raw else { return out };
    let path = KeyPath::root().key("alerts");
    match raw.interval_s {
        Some(0) => problems.push((path.key("interval_s"), "must be greater than 0".into())),
        Some(s) => out.interval = Duration::from_secs(s),
        None => {}
    }
    if let Some(url) = &raw.webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push((
                path.key("webhook"),
                "must be an http:// or https:// URL".into(),
            ));
        }
        out.webhook = Some(url.clone());
    }
    let mut names = BTreeSet::new();
    for (i, rule) in raw.rules.iter().enumerate() {
        let path = path.key("rules").index(i);
        if let Some(rule) = check_rule(&path, rule, known_models, &mut names, problems) {
            out.rules.push(rule);
        }
    }
    out
}

fn check_rule(
    path: &KeyPath,
    raw: &RawAlertRule,
    known_models: &BTreeSet<&str>,
    names: &mut BTreeSet<String>,
    problems: &mut Vec<(KeyPath, String)>,
) -> Option<AlertRule> {
    let before = problems.len();
    let mut problem = |key: &str, message: String| problems.push((path.key(key), message));
    if !is_slug(&raw.name) {
        problem(
            "name",
            format!(
                "`{}` is not a valid name: use lowercase letters, digits, `-` and `_`",
                raw.name
            ),
        );
    } else if !names.insert(raw.name.clone()) {
        problem(
            "name",
            format!("another rule is already named `{}`", raw.name),
        );
    }
    let window_s = raw.window_s.unwrap_or(DEFAULT_WINDOW_S);
    if window_s < 60 {
        problem(
            "window_s",
            "must be at least 60 (rollups are per minute)".into(),
        );
    }
    if !raw.threshold.is_finite() || raw.threshold < 0.0 {
        problem("threshold", "must be a number >= 0".into());
    }
    let kind = raw.kind;
    let mut percentile = 0.95;
    match (&raw.percentile, kind) {
        (Some(p), AlertKind::Latency) => match p.as_str() {
            "p50" => percentile = 0.5,
            "p90" => percentile = 0.9,
            "p95" => percentile = 0.95,
            "p99" => percentile = 0.99,
            _ => problem("percentile", format!("`{p}`: use p50, p90, p95 or p99")),
        },
        (Some(_), _) => problem("percentile", "only latency rules take a percentile".into()),
        (None, _) => {}
    }
    if kind == AlertKind::ErrorRate && raw.threshold > 1.0 {
        problem(
            "threshold",
            "an error rate is a fraction between 0 and 1 (0.05 = 5%)".into(),
        );
    }
    match (kind, &raw.budget) {
        (AlertKind::Budget, None) => problem("budget", "a budget rule names its budget".into()),
        (AlertKind::Budget, Some(_)) => {
            if !raw.matches.is_empty_match() {
                problem(
                    "match",
                    "a budget rule takes its subjects from the budget".into(),
                );
            }
        }
        (_, Some(_)) => problem("budget", "only budget rules name a budget".into()),
        (_, None) => {}
    }
    if raw.min_requests.is_some() && !matches!(kind, AlertKind::ErrorRate | AlertKind::Latency) {
        problem(
            "min_requests",
            "only error_rate and latency rules take min_requests".into(),
        );
    }
    let m = &raw.matches;
    let mpath = |key: &str| path.key("match").key(key);
    if m.team.is_some() && m.org.is_none() {
        problems.push((
            mpath("team"),
            "a team is named within its org: add `org`".into(),
        ));
    }
    if m.app.is_some() && m.team.is_none() {
        problems.push((
            mpath("app"),
            "an app is named within its team: add `org` and `team`".into(),
        ));
    }
    let dims = [
        m.team.is_some(),
        m.alias.is_some(),
        m.target.is_some(),
        m.key.is_some(),
        m.tag.is_some(),
    ];
    if dims.iter().filter(|d| **d).count() > 1 {
        problems.push((
            path.key("match"),
            "name at most one of team (with app), alias, target, key and tag (besides org): \
             the rollups hold one of them per row"
                .into(),
        ));
    }
    if let Some(alias) = &m.alias {
        if !known_models.contains(alias.as_str()) {
            problems.push((mpath("alias"), format!("unknown model alias `{alias}`")));
        }
    }
    if let Some(target) = &m.target {
        if !target.contains('/') {
            problems.push((mpath("target"), "must be `provider/model`".into()));
        }
    }
    if let Some(tag) = &m.tag {
        if !tag.contains('=') {
            problems.push((mpath("tag"), "must be `key=value`".into()));
        }
    }
    (problems.len() == before).then(|| AlertRule {
        name: raw.name.clone(),
        kind,
        window_s,
        threshold: raw.threshold,
        percentile,
        min_requests: raw.min_requests.unwrap_or(1),
        budget: raw.budget.clone(),
        matches: raw.matches.clone(),
    })
}

impl AlertMatch {
    fn is_empty_match(&self) -> bool {
        *self == AlertMatch::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load_str, ConfigErrors, Problem};
    use super::*;

    const BASE: &str = "providers:\n  p: { type: openai, api_key: k }\nmodels:\n  \
                        fast: { targets: [ { provider: p, model: m } ] }\n";

    fn load(alerts: &str) -> Result<super::super::Config, ConfigErrors> {
        load_str("test.yaml", &format!("{BASE}{alerts}"), &|_: &str| None)
    }

    fn problems(alerts: &str) -> Vec<Problem> {
        match load(alerts) {
            Ok(_) => panic!("expected problems for:\n{alerts}"),
            Err(errors) => errors.problems,
        }
    }

    fn has(problems: &[Problem], key: &str) -> bool {
        problems.iter().any(|p| p.key == key)
    }

    #[test]
    fn a_full_section_loads() {
        let config = load(
            "alerts:\n  interval_s: 30\n  webhook: http://hook\n  rules:\n    \
             - { name: errs, kind: error_rate, window_s: 120, threshold: 0.1, min_requests: 5, \
             match: { alias: fast, org: acme } }\n    \
             - { name: slow, kind: latency, percentile: p99, threshold: 2000, \
             match: { org: acme, team: ops } }\n    \
             - { name: spend, kind: spend, threshold: 25.5 }\n    \
             - { name: b80, kind: budget, budget: monthly, threshold: 0.8 }\n",
        )
        .unwrap();
        let alerts = &config.alerts;
        assert_eq!(alerts.interval, Duration::from_secs(30));
        assert_eq!(alerts.rules.len(), 4);
        assert_eq!(alerts.rules[0].window_s, 120);
        assert_eq!(
            alerts.rules[0].matches.dimension(),
            ("alias", "fast".into())
        );
        assert_eq!(alerts.rules[1].percentile, 0.99);
        assert_eq!(
            alerts.rules[1].matches.dimension(),
            ("team", "acme/ops".into())
        );
        assert_eq!(alerts.rules[2].window_s, DEFAULT_WINDOW_S);
        assert_eq!(alerts.rules[2].matches.dimension(), ("all", String::new()));
        assert_eq!(alerts.rules[3].budget.as_deref(), Some("monthly"));
    }

    #[test]
    fn problems_name_their_keys() {
        let p = problems(
            "alerts:\n  interval_s: 0\n  webhook: ftp://x\n  rules:\n    \
             - { name: a, kind: error_rate, threshold: 2 }\n    \
             - { name: a, kind: latency, threshold: 1, percentile: p42 }\n    \
             - { name: c, kind: budget, threshold: 1 }\n    \
             - { name: d, kind: spend, threshold: 1, match: { alias: nope, key: k } }\n    \
             - { name: e, kind: spend, threshold: 1, window_s: 5, match: { team: t } }\n",
        );
        for key in [
            "alerts.interval_s",
            "alerts.webhook",
            "alerts.rules[0].threshold",
            "alerts.rules[1].name",
            "alerts.rules[1].percentile",
            "alerts.rules[2].budget",
            "alerts.rules[3].match",
            "alerts.rules[3].match.alias",
            "alerts.rules[4].window_s",
            "alerts.rules[4].match.team",
        ] {
            assert!(has(&p, key), "no problem at {key}: {p:#?}");
        }
        let p = problems(
            "alerts:\n  rules:\n    - { name: x, kind: error_rate, threshold: 1, colour: red }\n",
        );
        assert!(
            p.iter().any(|p| p.key.starts_with("alerts.rules[0]")),
            "{p:#?}"
        );
    }
}
