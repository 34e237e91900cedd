//! The config file as written (SPEC section 4): serde types with `deny_unknown_fields` and
//! exactly the documented names, before any semantic check. `validate` turns a `RawConfig` into
//! the `Config` the gateway reads.
//!
//! Parsing goes section by section (`parse`) rather than in one serde call so that one typo in
//! one model does not hide the problems of all the others: every provider and every model entry
//! is deserialized on its own, and each failure is reported with its key path.

use super::locate::KeyPath;
use crate::limits::{BudgetRule, RateLimitRule};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use switchboard_providers::ProviderSettings;
use switchboard_types::MicroUsd;

/// The top level of the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `IP:PORT`; default `0.0.0.0:8080`.
    pub listen: Option<String>,
    pub database: Option<String>,
    pub redis: Option<String>,
    pub admin_key: Option<String>,
    #[serde(default)]
    pub limits: RawLimits,
    /// `alerts:` (config::alerts).
    pub alerts: Option<super::alerts::RawAlerts>,
    pub access: Option<RawAccess>,
    /// OpenTelemetry trace export (docs/config.md `telemetry:`).
    pub telemetry: Option<RawTelemetry>,
    /// Tenants and their teams and apps (config as code).
    pub orgs: Option<BTreeMap<String, RawOrg>>,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    /// Call log bodies and retention (`config::logging`).
    pub logging: Option<super::logging::RawLogging>,
    /// Prompt templates (`config::prompts`), read entry by entry by `parse`.
    #[serde(skip)]
    pub prompts: BTreeMap<String, super::prompts::RawPrompt>,
    /// Prompt APIs, read entry by entry by `parse`.
    #[serde(skip)]
    pub apis: BTreeMap<String, super::prompts::RawApi>,
    /// `rate_limits:` entries that parsed, with their position in the list (read entry by
    /// entry by `parse`, so that problems keep their index).
    #[serde(skip)]
    pub rate_limits: Vec<(usize, RateLimitRule)>,
    #[serde(skip)]
    pub budgets: Vec<(usize, BudgetRule)>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<u64>,
    /// What to do when Redis (shared limit counters) cannot answer: `local` (fall back to this
    /// instance's own counters) or `reject` (503). Default `local`.
    pub on_redis_error: Option<RawRedisFailure>,
    /// How long a limit check waits for Redis. Default 250.
    pub redis_timeout_ms: Option<u64>,
    /// Where budget alerts are POSTed (JSON).
    pub alert_webhook: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawRedisFailure {
    Local,
    Reject,
}

/// One `orgs:` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawOrg {
    pub display_name: Option<String>,
    #[serde(default)]
    pub teams: BTreeMap<String, RawTeam>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    #[serde(default)]
    pub apps: BTreeMap<String, RawApp>,
}

/// An app: the aliases (and prompt APIs) its keys may call; absent = every one.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub models: Option<Vec<String>>,
    pub apis: Option<Vec<String>>,
}

/// `telemetry:`: where traces go.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// `service.name` of the exported spans. Default `switchboard`.
    pub service_name: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0 (a caller's sampled flag wins). Default 1.0.
    pub sample_ratio: Option<f64>,
    /// OTLP/HTTP export; without it nothing is exported.
    pub otlp: Option<RawOtlp>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawOtlp {
    /// The collector's OTLP/HTTP base URL, e.g. `http://collector:4318`; spans are posted
    /// (protobuf) to `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// Headers sent with every export (e.g. an API key of a hosted backend).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long one export may take. Default 10000.
    pub timeout_ms: Option<u64>,
    /// How long finished spans wait to be sent in a batch. Default 5000.
    pub batch_delay_ms: Option<u64>,
    /// Finished spans held for export at most; more are dropped (and logged). Default 2048.
    pub queue_size: Option<usize>,
}

/// `access:`: virtual keys, sign-in through an OIDC issuer, subscription approvals.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    /// How long a key lookup stays cached without an invalidation. Default 30000.
    pub key_cache_ttl_ms: Option<u64>,
    /// Default grace period of a rotated key. Default 86400000 (24 h).
    pub rotation_grace_ms: Option<u64>,
    /// Where subscription approvals and rejections are POSTed (JSON).
    pub approval_webhook: Option<String>,
    pub oidc: Option<RawOidc>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: Option<String>,
    pub jwks_ttl_ms: Option<u64>,
    pub leeway_secs: Option<u64>,
    #[serde(default)]
    pub claims: RawClaimNames,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawClaimNames {
    pub org: Option<String>,
    pub team: Option<String>,
    pub role: Option<String>,
    pub roles: Option<String>,
}

/// One `providers:` entry: the provider's own settings (tagged by `type`) plus an optional
/// `circuit`. serde's `flatten` does not combine with `deny_unknown_fields`, so `circuit` is
/// split off the mapping before the rest is read as `ProviderSettings`.
#[derive(Clone, Debug, PartialEq)]
pub struct RawProvider {
    pub settings: ProviderSettings,
    pub circuit: Option<RawCircuit>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawCircuit {
    pub failures: Option<u32>,
    pub cooldown_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawStrategy {
    #[default]
    Weighted,
    Priority,
    LeastLatency,
    LeastBusy,
    Cheapest,
}

/// One `models:` entry (an alias).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub strategy: Option<RawStrategy>,
    #[serde(default)]
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub fallbacks: Vec<String>,
    pub retry: Option<RawRetry>,
    pub timeout: Option<RawTimeout>,
    pub price: Option<RawPrice>,
    pub context_window: Option<u32>,
    /// What to do with a prompt longer than the context window. Default `reject`.
    pub context_policy: Option<super::prompts::RawContextPolicy>,
    pub default_max_tokens: Option<u32>,
    pub circuit: Option<RawCircuit>,
    /// Apps need an approved subscription to call this alias.
    pub requires_approval: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub provider: String,
    pub model: String,
    pub weight: Option<u32>,
    pub priority: Option<u32>,
    pub price: Option<RawPrice>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub attempts: Option<u32>,
    pub backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawTimeout {
    pub connect_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub total_ms: Option<u64>,
    pub idle_ms: Option<u64>,
}

/// Dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input_per_mtok: Dollars,
    /// Default 0 (embedding models have no output tokens).
    #[serde(default)]
    pub output_per_mtok: Dollars,
    pub cached_input_per_mtok: Option<Dollars>,
    pub cache_write_per_mtok: Option<Dollars>,
    /// Default: reasoning tokens are billed as output.
    pub reasoning_per_mtok: Option<Dollars>,
}

/// A non-negative dollar amount with at most six decimals, read exactly: a YAML number is
/// turned back into its shortest decimal text (Rust's float formatting never uses exponents and
/// round-trips) and that text is parsed by `MicroUsd::parse_dollars`; no float arithmetic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dollars(pub MicroUsd);

impl<'de> Deserialize<'de> for Dollars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DollarsVisitor)
    }
}

struct DollarsVisitor;

impl DollarsVisitor {
    fn parse<E: de::Error>(text: &str) -> Result<Dollars, E> {
        match MicroUsd::parse_dollars(text) {
            Some(m) if m.0 < 0 => Err(E::custom("a price must not be negative")),
            Some(m) => Ok(Dollars(m)),
            None => Err(E::custom(
                "expected dollars per million tokens with at most 6 decimals, like 2.50",
            )),
        }
    }
}

impl Visitor<'_> for DollarsVisitor {
    type Value = Dollars;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dollars per million tokens, like 2.50")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dollars, E> {
        Self::parse(&v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dollars, E> {
        Self::parse(&v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dollars, E> {
        if !v.is_finite() {
            return Err(E::custom("a price must be a finite number"));
        }
        Self::parse(&format!("{v}"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Dollars, E> {
        Self::parse(v)
    }
}

/// A parse failure: where (key path relative to the document root) and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawError {
    pub(crate) path: KeyPath,
    pub(crate) message: String,
}

impl RawError {
    fn at(path: KeyPath, message: impl Into<String>) -> RawError {
        RawError {
            path,
            message: message.into(),
        }
    }

    /// From a `serde_path_to_error` failure below `base`. serde names an unknown field only in
    /// its message (and, for tagged enums, not in the path): add it to the path so that the
    /// position is the field's own.
    fn from_serde(base: &KeyPath, err: &serde_path_to_error::Error<serde_yaml::Error>) -> Self {
        let mut path = base.join(err.path());
        let message = clean_message(&err.inner().to_string());
        if let Some(field) = backticked_after(&message, "unknown field `") {
            if path.last_key() != Some(field) {
                path = path.key(field);
            }
            if let Some(note) = unsupported_note(&path, field) {
                return RawError::at(path, note);
            }
        }
        if backticked_after(&message, "unknown variant `").is_some() && path.last_key().is_none() {
            path = path.key("type");
        }
        RawError::at(path, message)
    }
}

/// The text between the backticks that follow `prefix` in `message`.
fn backticked_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// serde_yaml appends `at line L column C` (of the expanded text): positions are reported
/// separately, so drop it.
pub(crate) fn clean_message(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// SPEC sections that this version does not implement yet: rejected, with a clear reason.
fn unsupported_note(path: &KeyPath, field: &str) -> Option<String> {
    const TOP: [&str; 6] = ["teams", "prompts", "apis", "guardrails", "cache", "keys"];
    if path.0.len() == 1 && TOP.contains(&field) {
        Some(format!(
            "`{field}` is not supported yet in this version of Switchboard; remove it"
        ))
    } else {
        None
    }
}

/// Provider and model names that appear in the document, whether or not their entry parsed:
/// validation checks references against these so that one broken entry does not also produce
/// "unknown provider" problems everywhere it is used.
#[derive(Debug, Default)]
pub(crate) struct Declared {
    pub(crate) providers: Vec<String>,
    pub(crate) models: Vec<String>,
}

/// Reads the parsed YAML document into a `RawConfig`, collecting every entry's failure.
/// Entries that failed are left out of the result.
pub(crate) fn parse(doc: serde_yaml::Value) -> (RawConfig, Declared, Vec<RawError>) {
    let mut errors = Vec::new();
    let mut declared = Declared::default();
    let root = KeyPath::root();
    let mut top = match doc {
        serde_yaml::Value::Mapping(map) => map,
        serde_yaml::Value::Null => serde_yaml::Mapping::new(),
        _ => {
            errors.push(RawError::at(
                root,
                "the config file must be a mapping of sections (listen, providers, models, ...)",
            ));
            return (RawConfig::default(), declared, errors);
        }
    };
    let providers = top.remove("providers");
    let models = top.remove("models");
    let rate_limits = top.remove("rate_limits");
    let budgets = top.remove("budgets");
    let prompts = top.remove("prompts");
    let apis = top.remove("apis");

    let mut raw =
        match serde_path_to_error::deserialize::<_, RawConfig>(serde_yaml::Value::Mapping(top)) {
            Ok(raw) => raw,
            Err(err) => {
                errors.push(RawError::from_serde(&root, &err));
                RawConfig::default()
            }
        };

    for (name, value) in entries(providers, &root.key("providers"), &mut errors) {
        declared.providers.push(name.clone());
        let path = root.key("providers").key(&name);
        match RawProvider::from_value(&path, value) {
            Ok(provider) => {
                raw.providers.insert(name, provider);
            }
            Err(errs) => errors.extend(errs),
        }
    }
    for (name, value) in entries(models, &root.key("models"), &mut errors) {
        declared.models.push(name.clone());
        let path = root.key("models").key(&name);
        match serde_path_to_error::deserialize::<_, RawModel>(value) {
            Ok(model) => {
                raw.models.insert(name, model);
            }
            Err(err) => errors.push(RawError::from_serde(&path, &err)),
        }
    }
    raw.prompts = named_entries(prompts, &root.key("prompts"), &mut errors);
    raw.apis = named_entries(apis, &root.key("apis"), &mut errors);
    raw.rate_limits = list_entries(rate_limits, &root.key("rate_limits"), &mut errors);
    raw.budgets = list_entries(budgets, &root.key("budgets"), &mut errors);
    (raw, declared, errors)
}

/// The entries of a list section (`rate_limits:`, `budgets:`), each read on its own so that one
/// bad entry does not hide the others' problems.
fn list_entries<T: de::DeserializeOwned>(
    section: Option<serde_yaml::Value>,
    path: &KeyPath,
    errors: &mut Vec<RawError>,
) -> Vec<(usize, T)> {
    let items = match section {
        None | Some(serde_yaml::Value::Null) => return Vec::new(),
        Some(serde_yaml::Value::Sequence(items)) => items,
        Some(_) => {
            errors.push(RawError::at(path.clone(), "expected a list of entries"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, value) in items.into_iter().enumerate() {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(entry) => out.push((i, entry)),
            Err(err) => errors.push(RawError::from_serde(&path.index(i), &err)),
        }
    }
    out
}

/// The entries of a mapping section (`prompts:`, `apis:`), each read on its own.
fn named_entries<T: de::DeserializeOwned>(
    section: Option<serde_yaml::Value>,
    path: &KeyPath,
    errors: &mut Vec<RawError>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    for (name, value) in entries(section, path, errors) {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(entry) => {
                out.insert(name, entry);
            }
            Err(err) => errors.push(RawError::from_serde(&path.key(&name), &err)),
        }
    }
    out
}

/// The `name: value` entries of a `providers:` or `models:` section.
fn entries(
    section: Option<serde_yaml::Value>,
    path: &KeyPath,
    errors: &mut Vec<RawError>,
) -> Vec<(String, serde_yaml::Value)> {
    let map = match section {
        None | Some(serde_yaml::Value::Null) => return Vec::new(),
        Some(serde_yaml::Value::Mapping(map)) => map,
        Some(_) => {
            errors.push(RawError::at(
                path.clone(),
                "expected a mapping of names to entries",
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (key, value) in map {
        match key {
            serde_yaml::Value::String(name) => out.push((name, value)),
            _ => errors.push(RawError::at(path.clone(), "every name must be a string")),
        }
    }
    out
}

impl RawProvider {
    /// Reads one provider entry found at `path`.
    pub(crate) fn from_value(
        path: &KeyPath,
        value: serde_yaml::Value,
    ) -> Result<RawProvider, Vec<RawError>> {
        let serde_yaml::Value::Mapping(mut map) = value else {
            return Err(vec![RawError::at(
                path.clone(),
                "expected a mapping such as `{ type: openai, api_key: ... }`",
            )]);
        };
        let mut errors = Vec::new();
        let circuit = match map.remove("circuit") {
            None | Some(serde_yaml::Value::Null) => None,
            Some(value) => match serde_path_to_error::deserialize::<_, RawCircuit>(value) {
                Ok(circuit) => Some(circuit),
                Err(err) => {
                    errors.push(RawError::from_serde(&path.key("circuit"), &err));
                    None
                }
            },
        };
        let settings = serde_path_to_error::deserialize::<_, ProviderSettings>(
            serde_yaml::Value::Mapping(map),
        );
        match settings {
            Ok(settings) if errors.is_empty() => Ok(RawProvider { settings, circuit }),
            Ok(_) => Err(errors),
            Err(err) => {
                errors.push(RawError::from_serde(path, &err));
                Err(errors)
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawProvider {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(deserializer)?;
        RawProvider::from_value(&KeyPath::root(), value).map_err(|errors| {
            let text: Vec<String> = errors
                .iter()
                .map(|e| match e.path.0.is_empty() {
                    true => e.message.clone(),
                    false => format!("{}: {}", e.path, e.message),
                })
                .collect();
            de::Error::custom(text.join("; "))
        })
    }
}
