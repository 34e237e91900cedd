//! The config file: parse strictly, validate purely, report every problem with its place.
//!
//! `load_str` runs the stages in order: `${VAR}` expansion of the text (`interpolate`, line by
//! line so that line numbers hold), YAML syntax (serde_yaml), the key positions
//! (`locate`, one walk with a positions-aware parser), the typed raw shapes with
//! `deny_unknown_fields` (`raw`, entry by entry), then the semantic checks (`validate`). Each
//! stage collects its problems; a `Problem` names the file, line, column and dotted key path.
//! Values read from the environment are scrubbed from every message: they are often secrets.
//! The server owns reloading (SIGHUP, file change): it calls `load_file` and keeps the running
//! config when that fails.

pub mod alerts;
pub mod immutable;
mod interpolate;
mod locate;
pub mod logging;
pub mod model;
pub mod prompts;
pub mod raw;
mod validate;
mod validate_limits;
mod validate_telemetry;

#[cfg(test)]
mod telemetry_tests;
#[cfg(test)]
mod tests;

pub use interpolate::{expand_text, Escapes, ExpandProblem};
pub use logging::{BodySelection, Logging, Retention};
pub use model::*;
pub use validate::{is_slug, SLUG_RULE};
pub use validate_limits::rule_name;

use locate::{KeyPath, Pos, Positions};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

/// One thing wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; `None` when the problem is not about one place (the file cannot be read).
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// Dotted key path such as `models.gpt-4o.targets[0].provider`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `FILE:LINE:COL: KEY: MESSAGE` (the parts that are unknown are left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file, in file order. Display: one problem per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_problems(&self.problems))]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

fn render_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

/// Reads, expands, parses and validates the config file at `path`, with the process
/// environment for `${VAR}`.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&file, &text, &|name| std::env::var(name).ok()),
        Err(err) => Err(ConfigErrors {
            problems: vec![Problem {
                file,
                line: None,
                column: None,
                key: String::new(),
                message: format!("cannot read the config file: {err}"),
            }],
        }),
    }
}

/// Expands, parses and validates config `text`; `source_name` is the file name used in
/// problems and `env` answers `${VAR}` look-ups.
pub fn load_str(
    source_name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_layered(source_name, text, env, &StoredLayer::default())
}

/// Providers and models kept in storage (made through the admin API or `switchboard apply`):
/// the same mappings a config file holds, as JSON. They join the file's own entries before
/// validation; an entry the file also defines is ignored (the file wins), and stored values are
/// never `${VAR}`-expanded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredLayer {
    pub providers: Vec<(String, serde_json::Value)>,
    pub models: Vec<(String, serde_json::Value)>,
    /// Stored rate-limit rules (each has a `name`); appended after the file's own, except those
    /// whose name a file entry already uses.
    pub rate_limits: Vec<serde_json::Value>,
    pub budgets: Vec<serde_json::Value>,
    /// Stored prompts and APIs, by name (the file's own entries win).
    pub prompts: Vec<(String, serde_json::Value)>,
    pub apis: Vec<(String, serde_json::Value)>,
}

impl StoredLayer {
    fn is_empty(&self) -> bool {
        self.providers.is_empty()
            && self.models.is_empty()
            && self.rate_limits.is_empty()
            && self.budgets.is_empty()
            && self.prompts.is_empty()
            && self.apis.is_empty()
    }
}

/// [`load_str`] with the stored layer added to the file's `providers:` and `models:`.
pub fn load_layered(
    source_name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    stored: &StoredLayer,
) -> Result<Config, ConfigErrors> {
    let expanded = interpolate::expand(text, env);
    let mut report = Report {
        file: source_name,
        expanded: &expanded,
        positions: Positions::default(),
        problems: Vec::new(),
    };

    let doc = match serde_yaml::from_str::<serde_yaml::Value>(&expanded.text) {
        Ok(doc) => doc,
        Err(err) => {
            let pos = err.location().map(|l| Pos {
                line: l.line(),
                column: l.column(),
            });
            report.interpolation_problems();
            report.add_at(
                pos.map(|p| expanded.original(p)),
                String::new(),
                &raw::clean_message(&err.to_string()),
            );
            return Err(report.finish());
        }
    };
    let mut positions = Positions::build(&expanded.text);
    positions.map_positions(|p| expanded.original(p));
    report.positions = positions;
    report.interpolation_problems();

    let doc = add_stored(doc, stored);
    let (raw, declared, parse_errors) = raw::parse(doc);
    for err in &parse_errors {
        report.add(&err.path, &err.message);
    }
    match validate::validate(&raw, &declared) {
        Ok(config) if report.problems.is_empty() => Ok(config),
        Ok(_) => Err(report.finish()),
        Err(problems) => {
            for err in &problems {
                report.add(&err.path, &err.message);
            }
            Err(report.finish())
        }
    }
}

/// Inserts the stored entries the document does not define itself.
fn add_stored(doc: serde_yaml::Value, stored: &StoredLayer) -> serde_yaml::Value {
    let mut top = match doc {
        serde_yaml::Value::Mapping(map) => map,
        serde_yaml::Value::Null if !stored.is_empty() => serde_yaml::Mapping::new(),
        other => return other,
    };
    for (section, entries) in [
        ("providers", &stored.providers),
        ("models", &stored.models),
        ("prompts", &stored.prompts),
        ("apis", &stored.apis),
    ] {
        if entries.is_empty() {
            continue;
        }
        let slot = top
            .entry(serde_yaml::Value::from(section))
            .or_insert_with(|| serde_yaml::Value::Mapping(serde_yaml::Mapping::new()));
        if slot.is_null() {
            *slot = serde_yaml::Value::Mapping(serde_yaml::Mapping::new());
        }
        let serde_yaml::Value::Mapping(map) = slot else {
            continue; // not a mapping: the file's own problem, reported by the parser
        };
        for (name, value) in entries {
            let key = serde_yaml::Value::from(name.as_str());
            if map.contains_key(&key) {
                continue;
            }
            if let Ok(value) = serde_yaml::to_value(value) {
                map.insert(key, value);
            }
        }
    }
    for (section, entries) in [
        ("rate_limits", &stored.rate_limits),
        ("budgets", &stored.budgets),
    ] {
        add_stored_list(&mut top, section, entries);
    }
    serde_yaml::Value::Mapping(top)
}

/// Appends stored list entries to a list section, skipping names the file already uses.
fn add_stored_list(top: &mut serde_yaml::Mapping, section: &str, entries: &[serde_json::Value]) {
    if entries.is_empty() {
        return;
    }
    let slot = top
        .entry(serde_yaml::Value::from(section))
        .or_insert_with(|| serde_yaml::Value::Sequence(Vec::new()));
    if slot.is_null() {
        *slot = serde_yaml::Value::Sequence(Vec::new());
    }
    let serde_yaml::Value::Sequence(items) = slot else {
        return; // not a list: the file's own problem, reported by the parser
    };
    let name_of = |value: &serde_yaml::Value| {
        value
            .get("name")
            .and_then(serde_yaml::Value::as_str)
            .map(str::to_owned)
    };
    let taken: Vec<String> = items.iter().filter_map(name_of).collect();
    for entry in entries {
        let Ok(value) = serde_yaml::to_value(entry) else {
            continue;
        };
        if name_of(&value).is_some_and(|name| taken.contains(&name)) {
            continue;
        }
        items.push(value);
    }
}

/// Turns key paths into positioned, redacted `Problem`s.
struct Report<'a> {
    file: &'a str,
    expanded: &'a interpolate::Expanded,
    positions: Positions,
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn interpolation_problems(&mut self) {
        for (pos, message) in &self.expanded.problems {
            let key = self
                .positions
                .key_before(*pos)
                .map(|k| k.to_string())
                .unwrap_or_default();
            self.add_at(Some(*pos), key, message);
        }
    }

    fn add(&mut self, path: &KeyPath, message: &str) {
        let key = path.to_string();
        // A variable that could not be expanded was already reported for this key: the empty
        // value it left behind would only repeat the same problem in other words.
        let already = self.expanded.problems.iter().any(|(pos, _)| {
            self.positions
                .key_before(*pos)
                .is_some_and(|k| k.to_string() == key)
        });
        if already {
            return;
        }
        let pos = self.positions.find(path);
        self.add_at(pos, key, message);
    }

    fn add_at(&mut self, pos: Option<Pos>, key: String, message: &str) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            key: redact(&key, &self.expanded.secrets),
            message: redact(message, &self.expanded.secrets),
        });
    }

    fn finish(mut self) -> ConfigErrors {
        // File order; problems without a place last. The sort is stable.
        self.problems
            .sort_by_key(|p| (p.line.is_none(), p.line, p.column));
        ConfigErrors {
            problems: self.problems,
        }
    }
}

/// Replaces every environment value (of 3 characters or more: shorter ones cannot be secrets
/// and would mangle messages) with `*****`.
fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.chars().count() >= 3).collect();
    // Longest first, so that a secret containing another is removed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        out = out.replace(secret.as_str(), "*****");
    }
    out
}

/// The embedded offline demo (`switchboard serve` with no config file) as config text: SQLite
/// in the working directory, the built-in `mock` provider as `demo`, and the model alias `demo`
/// on it. Text rather than a `Config` so that the demo reloads with the stored layer exactly
/// like a file does.
pub fn demo_yaml(admin_key: &Secret, listen: SocketAddr) -> String {
    format!(
        "listen: \"{listen}\"\ndatabase: sqlite://switchboard.db\nadmin_key: \"{}\"\n\
         providers:\n  demo: {{ type: mock }}\n\
         models:\n  demo:\n    targets: [ {{ provider: demo, model: echo }} ]\n",
        admin_key.expose()
    )
}

/// The demo's config (see [`demo_yaml`]).
pub fn demo_config(admin_key: Secret, listen: SocketAddr) -> Result<Config, ConfigErrors> {
    load_str("(demo)", &demo_yaml(&admin_key, listen), &|_| None)
}
