//! The `logging:` section: which calls keep their request and response bodies, how bodies are
//! redacted and queued, and how long the call log, the bodies and the analytics rollups are
//! kept (docs/config.md, docs/observability.md). Raw shape, checks and the validated form
//! together, since nothing else reads them.

use super::locate::KeyPath;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::time::Duration;

/// `logging:` as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    /// Whether the call log keeps its own columns (client address, user agent, route,
    /// attempts, trace id) besides the usage record. Default true.
    pub metadata: Option<bool>,
    pub bodies: Option<RawBodies>,
    /// JSON field names whose values are replaced with `[REDACTED]` in logged bodies, at any
    /// depth (added to the built-in secret patterns).
    #[serde(default)]
    pub redact_fields: Vec<String>,
    /// Longest logged body, in bytes; longer ones are cut and flagged. Default 65536.
    pub max_body_bytes: Option<u64>,
    /// Bodies waiting to be written; when full, new bodies are dropped and counted. Default
    /// 10000.
    pub body_queue: Option<u64>,
    pub retention: Option<RawRetention>,
}

/// `logging.bodies`: the calls whose bodies are logged.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBodies {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `org/team`.
    #[serde(default)]
    pub teams: Vec<String>,
}

/// `logging.retention`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub calls_days: Option<u32>,
    pub bodies_days: Option<u32>,
    pub rollups_days: Option<u32>,
    pub batch: Option<u32>,
    pub interval_secs: Option<u64>,
}

/// The validated `logging:` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logging {
    /// The call log's own columns are recorded (`false`: each row keeps only the usage
    /// record, what billing, limits and analytics need).
    pub metadata: bool,
    pub bodies: BodySelection,
    pub redact_fields: Vec<String>,
    pub max_body_bytes: usize,
    pub body_queue: usize,
    pub retention: Retention,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            metadata: true,
            bodies: BodySelection::default(),
            redact_fields: Vec::new(),
            max_body_bytes: 65_536,
            body_queue: 10_000,
            retention: Retention::default(),
        }
    }
}

/// Which calls keep their bodies: every call, or those of the named aliases or teams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BodySelection {
    pub all: bool,
    pub aliases: BTreeSet<String>,
    /// `org/team`.
    pub teams: BTreeSet<String>,
}

impl BodySelection {
    /// No call keeps its body (the default): body capture costs nothing then.
    pub fn is_empty(&self) -> bool {
        !self.all && self.aliases.is_empty() && self.teams.is_empty()
    }

    /// Whether a call of `alias` by `org/team` keeps its bodies.
    pub fn selects(&self, alias: &str, org: Option<&str>, team: Option<&str>) -> bool {
        if self.all || self.aliases.contains(alias) {
            return true;
        }
        match (org, team) {
            (Some(org), Some(team)) if !self.teams.is_empty() => {
                self.teams.contains(&format!("{org}/{team}"))
            }
            _ => false,
        }
    }
}

/// How long each kind of row is kept; `None` keeps it forever.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub calls_days: Option<u32>,
    pub bodies_days: Option<u32>,
    pub rollups_days: Option<u32>,
    /// Rows per delete statement.
    pub batch: u32,
    /// Time between two retention passes.
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            calls_days: None,
            bodies_days: Some(7),
            rollups_days: None,
            batch: 500,
            interval: Duration::from_secs(300),
        }
    }
}

/// Checks `raw` (`logging:`) and builds the section; problems go to `problems`.
pub(crate) fn logging(
    raw: Option<&RawLogging>,
    models: &BTreeSet<&str>,
    problems: &mut Vec<(KeyPath, String)>,
) -> Logging {
    let mut out = Logging::default();
    let Some(raw) = raw else {
        return out;
    };
    let path = KeyPath::root().key("logging");
    out.metadata = raw.metadata.unwrap_or(true);
    if let Some(bodies) = &raw.bodies {
        let at = path.key("bodies");
        for (i, alias) in bodies.aliases.iter().enumerate() {
            if !models.contains(alias.as_str()) {
                problems.push((
                    at.key("aliases").index(i),
                    format!("`{alias}` is not a model alias of this config"),
                ));
            }
        }
        for (i, team) in bodies.teams.iter().enumerate() {
            let parts: Vec<&str> = team.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                problems.push((
                    at.key("teams").index(i),
                    format!("`{team}` is not `org/team`"),
                ));
            }
        }
        out.bodies = BodySelection {
            all: bodies.all,
            aliases: bodies.aliases.iter().cloned().collect(),
            teams: bodies.teams.iter().cloned().collect(),
        };
    }
    for (i, field) in raw.redact_fields.iter().enumerate() {
        if field.is_empty() {
            problems.push((path.key("redact_fields").index(i), "is empty".to_owned()));
        }
    }
    out.redact_fields = raw.redact_fields.clone();
    let mut positive = |value: Option<u64>, key: &str, max: u64| -> Option<usize> {
        let value = value?;
        if value == 0 || value > max {
            problems.push((path.key(key), format!("must be between 1 and {max}")));
            return None;
        }
        usize::try_from(value).ok()
    };
    if let Some(n) = positive(raw.max_body_bytes, "max_body_bytes", 16 << 20) {
        out.max_body_bytes = n;
    }
    if let Some(n) = positive(raw.body_queue, "body_queue", 1_000_000) {
        out.body_queue = n;
    }
    if let Some(retention) = &raw.retention {
        let at = path.key("retention");
        let mut days = |value: Option<u32>, key: &str, default: Option<u32>| match value {
            Some(0) => {
                problems.push((
                    at.key(key),
                    "must be at least 1 (leave it out to keep rows forever)".to_owned(),
                ));
                default
            }
            Some(n) => Some(n),
            None => default,
        };
        let defaults = Retention::default();
        out.retention.calls_days = days(retention.calls_days, "calls_days", defaults.calls_days);
        out.retention.bodies_days =
            days(retention.bodies_days, "bodies_days", defaults.bodies_days);
        out.retention.rollups_days = days(
            retention.rollups_days,
            "rollups_days",
            defaults.rollups_days,
        );
        match retention.batch {
            Some(n) if n == 0 || n > 10_000 => {
                problems.push((at.key("batch"), "must be between 1 and 10000".to_owned()))
            }
            Some(n) => out.retention.batch = n,
            None => {}
        }
        match retention.interval_secs {
            Some(0) => problems.push((at.key("interval_secs"), "must be at least 1".to_owned())),
            Some(n) => out.retention.interval = Duration::from_secs(n),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    const MODELS: &str = "providers:\n  mock: { type: mock }\nmodels:\n  fast: { targets: [ { provider: mock, model: m } ] }\n";

    #[test]
    fn the_section_is_read_and_checked_with_key_paths() {
        let text = format!(
            "{MODELS}logging:\n  bodies: {{ aliases: [fast], teams: [acme/web] }}\n  redact_fields: [password]\n  max_body_bytes: 1024\n  retention: {{ calls_days: 30, rollups_days: 400, batch: 50 }}\n"
        );
        let config = load_str("t.yaml", &text, &|_| None).unwrap();
        let l = &config.logging;
        assert!(l.metadata, "the call log's columns are on by default");
        assert!(l.bodies.selects("fast", None, None));
        assert_eq!(l.max_body_bytes, 1024);
        assert_eq!(l.body_queue, 10_000);
        assert_eq!(l.retention.calls_days, Some(30));
        assert_eq!(l.retention.bodies_days, Some(7));
        assert_eq!(l.retention.batch, 50);
        let bad = format!(
            "{MODELS}logging:\n  bodies: {{ aliases: [nope], teams: [acme] }}\n  max_body_bytes: 0\n  retention: {{ calls_days: 0, batch: 0 }}\n"
        );
        let keys: Vec<String> = load_str("t.yaml", &bad, &|_| None)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.key)
            .collect();
        for key in [
            "logging.bodies.aliases[0]",
            "logging.bodies.teams[0]",
            "logging.max_body_bytes",
            "logging.retention.calls_days",
            "logging.retention.batch",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
        let off = format!("{MODELS}logging:\n  metadata: false\n");
        assert!(
            !load_str("t.yaml", &off, &|_| None)
                .unwrap()
                .logging
                .metadata
        );
        let unknown = format!("{MODELS}logging:\n  bodys: {{}}\n");
        let problems = load_str("t.yaml", &unknown, &|_| None)
            .unwrap_err()
            .problems;
        assert!(problems[0].key.starts_with("logging"), "{problems:?}");
    }

    #[test]
    fn selection_by_alias_or_team() {
        let s = BodySelection {
            all: false,
            aliases: ["fast".to_owned()].into(),
            teams: ["acme/web".to_owned()].into(),
        };
        assert!(s.selects("fast", None, None));
        assert!(s.selects("smart", Some("acme"), Some("web")));
        assert!(!s.selects("smart", Some("acme"), Some("ops")));
        assert!(!s.selects("smart", None, Some("web")));
        assert!(BodySelection::default().is_empty());
    }
}
