//! Semantic checks of `limits:`, `rate_limits:` and `budgets:` (the part of `validate` about
//! limits, kept apart so that each file stays readable).

use super::locate::KeyPath;
use super::model::{Limits, RedisFailure};
use super::raw::{RawConfig, RawRedisFailure};
use super::validate::is_slug;
use crate::limits::{BudgetAction, BudgetRule, Match, RateLimitRule, Scope};
use std::collections::BTreeSet;
use std::time::Duration;

/// The problems found, each with its key path.
pub(crate) type Problems = Vec<(KeyPath, String)>;

/// `limits:` options about shared counters and alerts.
pub(crate) fn limit_options(raw: &RawConfig, limits: &mut Limits, problems: &mut Problems) {
    let path = KeyPath::root().key("limits");
    if let Some(failure) = raw.limits.on_redis_error {
        limits.on_redis_error = match failure {
            RawRedisFailure::Local => RedisFailure::Local,
            RawRedisFailure::Reject => RedisFailure::Reject,
        };
    }
    match raw.limits.redis_timeout_ms {
        Some(0) => problems.push((
            path.key("redis_timeout_ms"),
            "must be greater than 0".into(),
        )),
        Some(ms) => limits.redis_timeout = Duration::from_millis(ms),
        None => {}
    }
    if let Some(url) = &raw.limits.alert_webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push((
                path.key("alert_webhook"),
                "must be an http:// or https:// URL".into(),
            ));
        }
        limits.alert_webhook = Some(url.clone());
    }
}

/// The name a rule is known by: its own, or one made from its scope and match
/// (`team:org=acme,team=research`), stable across instances and reloads.
pub fn rule_name(name: Option<&str>, scope: Scope, matches: &Match) -> String {
    if let Some(name) = name {
        return name.to_owned();
    }
    let mut out = String::from(scope.as_str());
    let fields = [
        ("org", &matches.org),
        ("team", &matches.team),
        ("app", &matches.app),
        ("key", &matches.key),
        ("alias", &matches.alias),
        ("target", &matches.target),
    ];
    let mut sep = ':';
    for (field, value) in fields {
        if let Some(value) = value {
            out.push(sep);
            out.push_str(field);
            out.push('=');
            out.push_str(value);
            sep = ',';
        }
    }
    out
}

fn check_name(
    path: &KeyPath,
    name: Option<&str>,
    seen: &mut BTreeSet<String>,
    generated: String,
    problems: &mut Problems,
) {
    if let Some(name) = name {
        if !is_slug(name) {
            problems.push((
                path.key("name"),
                format!("`{name}` is not a valid name: use lowercase letters, digits, `-` and `_`"),
            ));
        }
    }
    if !seen.insert(generated.clone()) {
        problems.push((
            path.clone(),
            format!("another entry is already named `{generated}`: give one of them a `name`"),
        ));
    }
}

fn check_match(path: &KeyPath, matches: &Match, models: &BTreeSet<&str>, problems: &mut Problems) {
    if let Some(alias) = &matches.alias {
        if !models.contains(alias.as_str()) {
            problems.push((
                path.key("match").key("alias"),
                format!("unknown model alias `{alias}`"),
            ));
        }
    }
    if let Some(target) = &matches.target {
        if !target.contains('/') {
            problems.push((
                path.key("match").key("target"),
                "must be `provider/model` as in the config".into(),
            ));
        }
    }
    if matches.team.is_some() && matches.org.is_none() {
        problems.push((
            path.key("match").key("team"),
            "a team is named within its org: add `org` to the match".into(),
        ));
    }
    if matches.app.is_some() && matches.team.is_none() {
        problems.push((
            path.key("match").key("app"),
            "an app is named within its team: add `org` and `team` to the match".into(),
        ));
    }
}

/// Checks every `rate_limits:` entry.
pub(crate) fn rate_limits(raw: &RawConfig, models: &BTreeSet<&str>, problems: &mut Problems) {
    let mut seen = BTreeSet::new();
    for (i, rule) in &raw.rate_limits {
        let path = KeyPath::root().key("rate_limits").index(*i);
        check_rate_limit(&path, rule, models, &mut seen, problems);
    }
}

pub(crate) fn check_rate_limit(
    path: &KeyPath,
    rule: &RateLimitRule,
    models: &BTreeSet<&str>,
    seen: &mut BTreeSet<String>,
    problems: &mut Problems,
) {
    let generated = rule_name(rule.name.as_deref(), rule.scope, &rule.matches);
    check_name(path, rule.name.as_deref(), seen, generated, problems);
    check_match(path, &rule.matches, models, problems);
    let m = &rule.matches;
    let names_caller = m.org.is_some() || m.team.is_some() || m.app.is_some() || m.key.is_some();
    if rule.scope == Scope::Target && names_caller {
        problems.push((
            path.key("match"),
            "a `scope: target` rule protects an upstream whoever calls it: match only `target` and `alias`".into(),
        ));
    }
    if rule.scope != Scope::Target && m.target.is_some() {
        problems.push((
            path.key("match").key("target"),
            "`match.target` is only for `scope: target` rules (the target is chosen after admission)".into(),
        ));
    }
    let limits = [
        ("requests_per_second", rule.requests_per_second),
        ("requests_per_minute", rule.requests_per_minute),
        ("tokens_per_minute", rule.tokens_per_minute),
        ("concurrent", rule.concurrent),
    ];
    if limits.iter().all(|(_, v)| v.is_none()) {
        problems.push((
            path.clone(),
            "sets no limit: add requests_per_second, requests_per_minute, tokens_per_minute or concurrent".into(),
        ));
    }
    for (field, value) in limits {
        if value == Some(0) {
            problems.push((
                path.key(field),
                "must be at least 1 (remove the rule, or block the key, to allow nothing)".into(),
            ));
        }
    }
}

/// Checks every `budgets:` entry.
pub(crate) fn budgets(raw: &RawConfig, models: &BTreeSet<&str>, problems: &mut Problems) {
    let mut seen = BTreeSet::new();
    for (i, rule) in &raw.budgets {
        let path = KeyPath::root().key("budgets").index(*i);
        check_budget(&path, rule, models, &mut seen, problems);
    }
}

pub(crate) fn check_budget(
    path: &KeyPath,
    rule: &BudgetRule,
    models: &BTreeSet<&str>,
    seen: &mut BTreeSet<String>,
    problems: &mut Problems,
) {
    let generated = rule_name(rule.name.as_deref(), rule.scope, &rule.matches);
    check_name(path, rule.name.as_deref(), seen, generated, problems);
    check_match(path, &rule.matches, models, problems);
    if rule.matches.target.is_some() {
        problems.push((
            path.key("match").key("target"),
            "budgets count a caller's spend: match on org, team, app, key or alias".into(),
        ));
    }
    if matches!(rule.scope, Scope::Alias | Scope::Target) {
        problems.push((
            path.key("scope"),
            "budgets belong to a key, app, team or org (narrow them to a model with `match: { alias: ... }`)".into(),
        ));
    }
    match (rule.action, &rule.downgrade_to) {
        (BudgetAction::Downgrade, None) => problems.push((
            path.key("downgrade_to"),
            "`action: downgrade` needs `downgrade_to`, the cheaper alias to serve instead".into(),
        )),
        (BudgetAction::Downgrade, Some(alias)) if !models.contains(alias.as_str()) => problems
            .push((
                path.key("downgrade_to"),
                format!("unknown model alias `{alias}`"),
            )),
        (BudgetAction::Block | BudgetAction::Alert, Some(_)) => problems.push((
            path.key("downgrade_to"),
            "only used with `action: downgrade`".into(),
        )),
        _ => {}
    }
    if rule.action == BudgetAction::Alert && rule.alert_at.is_empty() {
        problems.push((
            path.key("alert_at"),
            "`action: alert` needs thresholds, such as `alert_at: [0.5, 0.8, 1.0]`".into(),
        ));
    }
}
