//! Reading a config-as-code document: validation with the config loader (the document's own
//! problems with file, line, column and key), the refusal of names the server's own file
//! defines, and the desired state it describes. Only the sections a document contains are made
//! equal: a document without `orgs:` leaves the stored organisations alone, `orgs: {}` deletes
//! them all.

use super::rules::{self, FileRules};
use super::ApplyError;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use switchboard_core::config::raw::RawOrg;
use switchboard_core::config::{
    self, expand_text, AppSpec, Escapes, OrgSpec, Problem, StoredLayer, TeamSpec,
};
use switchboard_core::limits::{BudgetRule, RateLimitRule};

/// A document sent to apply: its YAML text and the name used in problems (the file name).
#[derive(Clone, Debug)]
pub struct Document {
    pub name: String,
    pub text: String,
}

/// The server's own config file (or the demo's text): its providers, models and orgs are not
/// stored, so documents may not name them.
#[derive(Clone, Debug)]
pub struct ServerFile {
    pub name: String,
    pub text: String,
}

/// Top-level keys that are server settings: read by `serve` from its own file, ignored here.
const SERVER_KEYS: [&str; 6] = [
    "listen",
    "database",
    "redis",
    "admin_key",
    "limits",
    "access",
];

/// The stand-in API key used to validate a provider whose stored key is kept.
const STORED_KEY: &str = "(stored)";

/// What a document asks for an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyIntent {
    /// No `api_key`: keep the stored key (exports never contain keys).
    Keep,
    /// `api_key: null`: remove the stored key.
    Remove,
    Set(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DesiredProvider {
    /// The mapping without `api_key`.
    pub(crate) settings: Value,
    pub(crate) key: KeyIntent,
}

/// The state a document describes; `None` for a section the document does not contain.
#[derive(Clone, Debug, Default)]
pub(crate) struct Desired {
    pub(crate) providers: Option<BTreeMap<String, DesiredProvider>>,
    pub(crate) models: Option<BTreeMap<String, Value>>,
    /// Prompt and API mappings as in a config file.
    pub(crate) prompts: Option<BTreeMap<String, Value>>,
    pub(crate) apis: Option<BTreeMap<String, Value>>,
    pub(crate) orgs: Option<BTreeMap<String, OrgSpec>>,
    /// By name (every entry of a document has one).
    pub(crate) rate_limits: Option<BTreeMap<String, RateLimitRule>>,
    pub(crate) budgets: Option<BTreeMap<String, BudgetRule>>,
    pub(crate) notes: Vec<String>,
}

/// The server file's own entries, as the config loader's stored layer takes them.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileEntries {
    pub(crate) layer: StoredLayer,
    pub(crate) orgs: BTreeSet<String>,
    pub(crate) rate_limits: FileRules,
    pub(crate) budgets: FileRules,
}

impl FileEntries {
    fn provider_names(&self) -> BTreeSet<&str> {
        self.layer
            .providers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect()
    }

    fn model_names(&self) -> BTreeSet<&str> {
        self.layer.models.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn prompt_names(&self) -> BTreeSet<&str> {
        self.layer.prompts.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn api_names(&self) -> BTreeSet<&str> {
        self.layer.apis.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The file's entries of the list section `rate_limits` or `budgets`.
    pub(crate) fn rules(&self, section: &str) -> &FileRules {
        if section == "budgets" {
            &self.budgets
        } else {
            &self.rate_limits
        }
    }
}

impl ServerFile {
    /// Expands the server's file with the server's environment and takes its entries.
    pub(crate) fn entries(&self) -> Result<FileEntries, ApplyError> {
        let env = |name: &str| std::env::var(name).ok();
        let unreadable = |why: String| {
            ApplyError::Server(format!(
                "the server's config file {} cannot be read: {why}",
                self.name
            ))
        };
        let text = expand_text(&self.text, &env, Escapes::Resolve)
            .map_err(|p| unreadable(format!("{} expansion problem(s)", p.len())))?;
        let top = parse_top(&text).map_err(unreadable)?;
        let mut entries = FileEntries::default();
        for (section, out) in [
            ("providers", &mut entries.layer.providers),
            ("models", &mut entries.layer.models),
            ("prompts", &mut entries.layer.prompts),
            ("apis", &mut entries.layer.apis),
        ] {
            if let Some(Value::Object(map)) = top.get(section) {
                out.extend(map.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        if let Some(Value::Object(map)) = top.get("orgs") {
            entries.orgs.extend(map.keys().cloned());
        }
        entries.rate_limits = FileRules::of(&top, "rate_limits");
        entries.budgets = FileRules::of(&top, "budgets");
        Ok(entries)
    }
}

/// The top-level mapping of a YAML text, as JSON (`{}` for an empty text).
fn parse_top(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    match serde_json::to_value(yaml).map_err(|e| e.to_string())? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(serde_json::Map::new()),
        _ => Err(
            "the document must be a mapping of sections (providers, models, prompts, apis, orgs, \
             rate_limits, budgets)"
                .into(),
        ),
    }
}

/// Validates `doc` against the server's file and reads the state it asks for.
/// `stored` holds what storage has now: it stands in for the sections the document leaves out
/// (which apply leaves alone), so that references to them resolve. `stored_keys` names the
/// stored providers that have an API key: an entry without `api_key` keeps it, so the key need
/// not be in the document even where the provider type requires one.
pub(crate) fn read(
    doc: &Document,
    file: &FileEntries,
    server_name: &str,
    stored: &StoredLayer,
    stored_keys: &BTreeSet<String>,
) -> Result<Desired, ApplyError> {
    // The document is expanded without any environment: the server's variables are not the
    // caller's, and must never end up in stored config. `switchboard apply` expands the
    // caller's variables before sending.
    let no_env = |_: &str| None;
    let top = match expand_text(&doc.text, &no_env, Escapes::Resolve) {
        Ok(text) => parse_top(&text).ok(),
        Err(_) => None,
    };
    let file_providers = file.provider_names();
    let file_models = file.model_names();
    let file_prompts = file.prompt_names();
    let file_apis = file.api_names();
    // Entries the loader gets besides the document's: the server file's, and the stored ones
    // of sections the document leaves out. Their own problems are not the document's.
    let mut layer = file.layer.clone();
    if let Some(top) = &top {
        for (section, from, to, skip) in [
            (
                "providers",
                &stored.providers,
                &mut layer.providers,
                &file_providers,
            ),
            ("models", &stored.models, &mut layer.models, &file_models),
            (
                "prompts",
                &stored.prompts,
                &mut layer.prompts,
                &file_prompts,
            ),
            ("apis", &stored.apis, &mut layer.apis, &file_apis),
        ] {
            if !top.contains_key(section) {
                let extra = from.iter().filter(|(n, _)| !skip.contains(n.as_str()));
                to.extend(extra.cloned());
            }
        }
    }
    let mut problems = match config::load_layered(&doc.name, &doc.text, &no_env, &layer) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.problems,
    };
    problems.retain(|p| {
        let from_layer = |section: &str, entries: &[(String, Value)]| {
            entries
                .iter()
                .any(|(n, _)| under(&p.key, &format!("{section}.{n}")))
        };
        let keeps_stored_key = p.message.contains("missing field `api_key`")
            && p.key
                .strip_prefix("providers.")
                .is_some_and(|name| stored_keys.contains(name));
        !(from_layer("providers", &layer.providers)
            || from_layer("models", &layer.models)
            || from_layer("prompts", &layer.prompts)
            || from_layer("apis", &layer.apis)
            || keeps_stored_key)
    });
    let Some(top) = top else {
        // The loader has said why already.
        return Err(invalid(problems, doc));
    };
    for (section, names) in [
        ("providers", &file_providers),
        ("models", &file_models),
        ("prompts", &file_prompts),
        ("apis", &file_apis),
        ("orgs", &file.orgs.iter().map(String::as_str).collect()),
    ] {
        let Some(Value::Object(entries)) = top.get(section) else {
            continue;
        };
        for name in entries.keys().filter(|n| names.contains(n.as_str())) {
            let (line, column) = find_entry(&doc.text, section, name).unzip();
            problems.push(Problem {
                file: doc.name.clone(),
                line,
                column,
                key: format!("{section}.{name}"),
                message: format!(
                    "`{name}` is defined in the server's config file ({server_name}), which \
                     wins over stored config: remove it from one of the two files"
                ),
            });
        }
    }
    problems.extend(rules::name_problems(
        &doc.name,
        &doc.text,
        &top,
        file,
        server_name,
    ));
    if !problems.is_empty() {
        return Err(invalid(problems, doc));
    }
    desired(&top).map_err(|message| {
        invalid(
            vec![Problem {
                file: doc.name.clone(),
                line: None,
                column: None,
                key: String::new(),
                message,
            }],
            doc,
        )
    })
}

fn invalid(mut problems: Vec<Problem>, doc: &Document) -> ApplyError {
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    ApplyError::Invalid {
        context: format!("{} is not valid", doc.name),
        problems,
    }
}

/// Whether dotted `key` is `prefix` or below it.
fn under(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// The state of a validated document.
fn desired(top: &serde_json::Map<String, Value>) -> Result<Desired, String> {
    let mut out = Desired::default();
    for key in SERVER_KEYS.iter().filter(|k| top.contains_key(**k)) {
        out.notes.push(format!(
            "`{key}` is a server setting: apply ignores it (it is read from the server's own \
             config file)"
        ));
    }
    if let Some(section) = top.get("providers") {
        let mut providers = BTreeMap::new();
        for (name, value) in entries(section) {
            let mut settings = value.clone();
            let key = match settings.as_object_mut().and_then(|m| m.remove("api_key")) {
                None => KeyIntent::Keep,
                Some(Value::Null) => KeyIntent::Remove,
                Some(Value::String(key)) => KeyIntent::Set(key),
                Some(_) => return Err(format!("providers.{name}.api_key must be a string")),
            };
            providers.insert(name.clone(), DesiredProvider { settings, key });
        }
        out.providers = Some(providers);
    }
    if let Some(section) = top.get("models") {
        let models = entries(section)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        out.models = Some(models);
    }
    for (section, out) in [("prompts", &mut out.prompts), ("apis", &mut out.apis)] {
        if let Some(section) = top.get(section) {
            let named = entries(section)
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            *out = Some(named);
        }
    }
    if let Some(section) = top.get("orgs") {
        let raw: BTreeMap<String, Option<RawOrg>> = match section {
            Value::Null => BTreeMap::new(),
            other => serde_json::from_value(other.clone()).map_err(|e| format!("orgs: {e}"))?,
        };
        let orgs = raw
            .into_iter()
            .map(|(name, org)| (name, org_spec(org.unwrap_or_default())))
            .collect();
        out.orgs = Some(orgs);
    }
    rules::desired(top, &mut out)?;
    Ok(out)
}

/// The entries of a `name: mapping` section (an empty section is `null`).
fn entries(section: &Value) -> impl Iterator<Item = (&String, &Value)> {
    section.as_object().into_iter().flatten()
}

fn org_spec(org: RawOrg) -> OrgSpec {
    let teams = org
        .teams
        .into_iter()
        .map(|(name, team)| {
            let apps = team
                .apps
                .into_iter()
                .map(|(name, app)| {
                    let spec = AppSpec {
                        models: app.models,
                        apis: app.apis,
                    };
                    (name, spec)
                })
                .collect();
            (name, TeamSpec { apps })
        })
        .collect();
    OrgSpec {
        display_name: org.display_name,
        teams,
    }
}

/// Where `name` is defined under the top-level `section` of a block-style YAML text: its line
/// and column (1-based), for problems. `None` when the layout is not the usual one.
pub(crate) fn find_entry(text: &str, section: &str, name: &str) -> Option<(usize, usize)> {
    let mut in_section = false;
    let mut entry_indent: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            in_section = key_of(trimmed) == Some(section);
            entry_indent = None;
            continue;
        }
        if !in_section {
            continue;
        }
        let first = *entry_indent.get_or_insert(indent);
        if indent == first && key_of(trimmed) == Some(name) {
            return Some((index + 1, indent + 1));
        }
    }
    None
}

/// The key of a `key: value` line, quotes removed.
fn key_of(line: &str) -> Option<&str> {
    let (key, _) = line.split_once(':')?;
    let key = key.trim();
    Some(key.trim_matches(|c| c == '"' || c == '\''))
}

/// The stored layer the server would build from the final state: what the second check
/// validates the server's file against. Kept keys become a stand-in (validation needs a value;
/// the real key stays encrypted in storage).
pub(crate) fn final_layer(
    providers: impl Iterator<Item = (String, Value, bool)>,
    models: impl IntoIterator<Item = (String, Value)>,
) -> StoredLayer {
    StoredLayer {
        providers: providers
            .map(|(name, mut settings, has_key)| {
                if has_key {
                    if let Value::Object(map) = &mut settings {
                        map.entry("api_key")
                            .or_insert_with(|| Value::String(STORED_KEY.to_owned()));
                    }
                }
                (name, settings)
            })
            .collect(),
        models: models.into_iter().collect(),
        ..StoredLayer::default()
    }
}

/// Validates the server's file with `layer` as its stored providers and models, as a reload
/// after the apply would. Problems of stored entries get no position: they are not in the
/// server's file.
pub(crate) fn check_final(
    server: &ServerFile,
    file: &FileEntries,
    layer: &StoredLayer,
) -> Result<(), ApplyError> {
    let env = |name: &str| std::env::var(name).ok();
    let Err(errors) = config::load_layered(&server.name, &server.text, &env, layer) else {
        return Ok(());
    };
    let file_providers = file.provider_names();
    let file_models = file.model_names();
    let file_prompts = file.prompt_names();
    let file_apis = file.api_names();
    let problems = errors
        .problems
        .into_iter()
        .map(|mut p| {
            let stored = |section: &str, entries: &[(String, Value)], skip: &BTreeSet<&str>| {
                entries.iter().any(|(n, _)| {
                    !skip.contains(n.as_str()) && under(&p.key, &format!("{section}.{n}"))
                })
            };
            if stored("providers", &layer.providers, &file_providers)
                || stored("models", &layer.models, &file_models)
                || stored("prompts", &layer.prompts, &file_prompts)
                || stored("apis", &layer.apis, &file_apis)
                || rules::is_stored_entry(&p.key, file)
            {
                p.file = "(stored)".to_owned();
                p.line = None;
                p.column = None;
            }
            p
        })
        .collect();
    Err(ApplyError::Invalid {
        context: format!(
            "after this apply, the server's config ({}) with the stored providers, models, \
             prompts, APIs, rate limits and budgets would not be valid",
            server.name
        ),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_entries_of_block_sections() {
        let text = "listen: x\nproviders:\n  # c\n  openai: { type: openai }\n  \"b\":\n    type: mock\nmodels:\n  openai: {}\n";
        assert_eq!(find_entry(text, "providers", "openai"), Some((4, 3)));
        assert_eq!(find_entry(text, "providers", "b"), Some((5, 3)));
        assert_eq!(find_entry(text, "models", "openai"), Some((8, 3)));
        assert_eq!(find_entry(text, "orgs", "openai"), None);
    }

    #[test]
    fn key_paths_nest() {
        assert!(under("providers.a", "providers.a"));
        assert!(under("providers.a.type", "providers.a"));
        assert!(!under("providers.ab", "providers.a"));
    }
}
