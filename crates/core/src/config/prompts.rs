//! The `prompts:` and `apis:` sections (SPEC section 6, docs/prompts-and-apis.md): versioned
//! prompt templates with labels and A/B splits, and the prompt APIs served at
//! `POST /apis/{name}` with their versions, lifecycle and workflows. Raw shapes, checks and the
//! validated form together, as for `logging:`.
//!
//! Templates are compiled here (a syntax error is a config problem with its place) and the
//! variables' JSON Schemas are checked to be schemas; rendering lives in `crate::prompts`.

use super::locate::KeyPath;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use switchboard_types::Secret;

/// The label an API (or a chat request's prompt reference) resolves when it names none.
pub const DEFAULT_LABEL: &str = "production";

/// Model parameters a prompt version or an API may set: OpenAI Chat Completions names, applied
/// to the request the gateway builds (then translated for the target like any request).
pub const PARAMS: &[&str] = &[
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "reasoning_effort",
];

// ---------------------------------------------------------------------------------------------
// As written.

/// One `prompts:` entry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPrompt {
    pub description: Option<String>,
    /// JSON Schema of the variables object (`type: object` with `properties`, `required`).
    pub variables: Option<Value>,
    #[serde(default)]
    pub versions: Vec<RawPromptVersion>,
    /// Label name to a version number, or to `{ split: [{ version, weight }] }`.
    #[serde(default)]
    pub labels: BTreeMap<String, RawLabel>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPromptVersion {
    pub version: u32,
    /// minijinja template of the system message.
    pub system: Option<String>,
    /// minijinja template of the user message.
    pub user: Option<String>,
    /// Default model parameters (names in [`PARAMS`]).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// What changed in this version, for people.
    pub note: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RawLabel {
    Version(u32),
    Split(RawSplit),
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSplit {
    pub split: Vec<RawSplitArm>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSplitArm {
    pub version: u32,
    pub weight: u32,
}

/// One `apis:` entry. The fields beside `versions` are the defaults of every version; without
/// `versions` they describe the API's only version, `v1`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub description: Option<String>,
    /// Apps need an approved subscription to call this API.
    pub requires_approval: Option<bool>,
    #[serde(flatten)]
    pub defaults: RawApiVersion,
    /// Version name (`v1`, `v2`, ...) to what differs from the defaults.
    pub versions: Option<BTreeMap<String, RawApiVersion>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawApiVersion {
    pub status: Option<RawApiStatus>,
    /// The prompt this API renders (not with `steps`).
    pub prompt: Option<String>,
    /// The prompt label served. Default `production`.
    pub label: Option<String>,
    /// The model alias called.
    pub model: Option<String>,
    /// Model parameters over the prompt version's.
    pub params: Option<Map<String, Value>>,
    /// JSON Schema of the output: the model's answer is parsed as JSON and validated.
    pub output_schema: Option<Value>,
    pub context_policy: Option<RawContextPolicy>,
    /// `YYYY-MM-DD`: when the version was deprecated (the `Deprecation` header).
    pub deprecated_at: Option<String>,
    /// `YYYY-MM-DD`: when it stops being served (the `Sunset` header).
    pub sunset: Option<String>,
    /// The API (`name` or `name@version`) that replaces this one.
    pub successor: Option<String>,
    /// The whole call (every step of a workflow). Default: the model's own timeouts.
    pub timeout_ms: Option<u64>,
    /// A workflow instead of one prompt.
    pub steps: Option<Vec<RawStep>>,
    /// The step whose output is the API's output. Default: the last step.
    pub output: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawApiStatus {
    Draft,
    Published,
    Deprecated,
    Retired,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawContextPolicy {
    Reject,
    TruncateOldest,
    MiddleOut,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub id: String,
    pub prompt: Option<String>,
    pub label: Option<String>,
    pub model: Option<String>,
    pub params: Option<Map<String, Value>>,
    pub http: Option<RawHttpStep>,
    /// Steps that must finish first. Default: the step before (a sequence); `[]` for none.
    pub needs: Option<Vec<String>>,
    /// Variables of this step as templates over the run's context; default: the whole context.
    pub variables: Option<Map<String, Value>>,
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawHttpStep {
    pub url: String,
    /// `POST` (default) or `GET`.
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Validated.

/// A prompt: its variables' schema and its immutable versions.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptConfig {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the variables object (`{"type": "object"}` when none was declared).
    pub variables: Value,
    pub versions: BTreeMap<u32, PromptVersion>,
    pub labels: BTreeMap<String, LabelTarget>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PromptVersion {
    pub version: u32,
    pub system: Option<String>,
    pub user: Option<String>,
    pub params: Map<String, Value>,
    pub note: Option<String>,
}

/// What a label points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelTarget {
    Version(u32),
    /// `(version, weight)`, weights > 0; each caller sticks to one arm.
    Split(Vec<(u32, u32)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiConfig {
    pub name: String,
    pub description: Option<String>,
    pub requires_approval: bool,
    /// By version name; at most one is `Published`.
    pub versions: BTreeMap<String, ApiVersion>,
}

impl ApiConfig {
    /// The version `POST /apis/{name}` serves: the published one, else the newest deprecated
    /// one, else the newest retired one (which answers 410). Drafts are only served by name.
    pub fn current(&self) -> Option<&ApiVersion> {
        let newest = |status: ApiStatus| {
            self.versions
                .values()
                .filter(|v| v.status == status)
                .max_by(|a, b| version_order(&a.version, &b.version))
        };
        newest(ApiStatus::Published)
            .or_else(|| newest(ApiStatus::Deprecated))
            .or_else(|| newest(ApiStatus::Retired))
    }
}

/// `v2` before `v10`: by the number in the name when both have one, else by text.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let number = |s: &str| {
        s.trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse::<u64>()
            .ok()
    };
    match (number(a), number(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiStatus {
    Draft,
    Published,
    Deprecated,
    Retired,
}

impl ApiStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiStatus::Draft => "draft",
            ApiStatus::Published => "published",
            ApiStatus::Deprecated => "deprecated",
            ApiStatus::Retired => "retired",
        }
    }
}

/// What an alias or API does with a prompt longer than the context window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextPolicy {
    /// 400 `context_window_exceeded` with the counts.
    #[default]
    Reject,
    /// Drop the oldest turns, keeping the system prompt and the latest turns.
    TruncateOldest,
    /// Drop turns from the middle, keeping the first and the latest.
    MiddleOut,
}

impl From<RawContextPolicy> for ContextPolicy {
    fn from(raw: RawContextPolicy) -> Self {
        match raw {
            RawContextPolicy::Reject => ContextPolicy::Reject,
            RawContextPolicy::TruncateOldest => ContextPolicy::TruncateOldest,
            RawContextPolicy::MiddleOut => ContextPolicy::MiddleOut,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApiVersion {
    /// `v1`, `v2`...
    pub version: String,
    pub status: ApiStatus,
    pub body: ApiBody,
    /// JSON Schema the output must satisfy (parsed as JSON); `None`: the output is text.
    pub output_schema: Option<Value>,
    /// Overrides the model's own policy for this API's calls.
    pub context_policy: Option<ContextPolicy>,
    /// Unix seconds.
    pub deprecated_at: Option<i64>,
    /// Unix seconds.
    pub sunset: Option<i64>,
    pub successor: Option<String>,
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ApiBody {
    Prompt(PromptCall),
    Workflow(Workflow),
}

/// A prompt (by label) bound to a model alias and parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptCall {
    pub prompt: String,
    pub label: String,
    pub model: String,
    /// Over the prompt version's own parameters.
    pub params: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Workflow {
    /// In the order written; `needs` only names earlier steps, so this order is a valid
    /// execution order.
    pub steps: Vec<Step>,
    /// Index into `steps` of the step whose output is the API's.
    pub output: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub id: String,
    pub kind: StepKind,
    /// Indexes of earlier steps that must finish first.
    pub needs: Vec<usize>,
    /// Templates of this step's variables; `None`: the whole context.
    pub variables: Option<Map<String, Value>>,
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    Prompt(PromptCall),
    Http(HttpStep),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpStep {
    pub url: String,
    pub method: http::Method,
    /// Values may hold credentials.
    pub headers: BTreeMap<String, Secret>,
}

// ---------------------------------------------------------------------------------------------
// Checks.

type Problems = Vec<(KeyPath, String)>;

/// Checks the `prompts:` entries.
pub(crate) fn prompts(
    raw: &BTreeMap<String, RawPrompt>,
    problems: &mut Problems,
) -> BTreeMap<String, PromptConfig> {
    let mut out = BTreeMap::new();
    for (name, prompt) in raw {
        let path = KeyPath::root().key("prompts").key(name);
        if !super::is_slug(name) {
            problems.push((path.clone(), format!("name {}", super::SLUG_RULE)));
        }
        out.insert(name.clone(), prompt_config(&path, name, prompt, problems));
    }
    out
}

fn prompt_config(
    path: &KeyPath,
    name: &str,
    raw: &RawPrompt,
    problems: &mut Problems,
) -> PromptConfig {
    let variables = raw
        .variables
        .clone()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    check_schema(&path.key("variables"), &variables, problems);
    if raw.versions.is_empty() {
        problems.push((
            path.key("versions"),
            "a prompt needs at least one version".into(),
        ));
    }
    let mut versions = BTreeMap::new();
    for (i, v) in raw.versions.iter().enumerate() {
        let at = path.key("versions").index(i);
        if v.version == 0 {
            problems.push((at.key("version"), "versions are numbered from 1".into()));
        }
        if versions.contains_key(&v.version) {
            problems.push((
                at.key("version"),
                format!("version {} is listed twice", v.version),
            ));
        }
        if v.user.is_none() && v.system.is_none() {
            problems.push((at.clone(), "needs a `user` or a `system` template".into()));
        }
        for (field, text) in [("system", &v.system), ("user", &v.user)] {
            if let Some(text) = text {
                if let Err(err) = crate::prompts::compile_check(text) {
                    problems.push((at.key(field), format!("is not a valid template: {err}")));
                }
            }
        }
        check_params(&at.key("params"), &v.params, problems);
        versions.insert(
            v.version,
            PromptVersion {
                version: v.version,
                system: v.system.clone(),
                user: v.user.clone(),
                params: v.params.clone(),
                note: v.note.clone(),
            },
        );
    }
    let mut labels = BTreeMap::new();
    for (label, target) in &raw.labels {
        let at = path.key("labels").key(label);
        if !super::is_slug(label) {
            problems.push((at.clone(), format!("label {}", super::SLUG_RULE)));
        }
        let known = |v: u32, at: KeyPath, problems: &mut Problems| {
            if !versions.contains_key(&v) {
                problems.push((at, format!("prompt `{name}` has no version {v}")));
            }
        };
        let target = match target {
            RawLabel::Version(v) => {
                known(*v, at.clone(), problems);
                LabelTarget::Version(*v)
            }
            RawLabel::Split(split) => {
                if split.split.is_empty() {
                    problems.push((at.key("split"), "a split needs at least one arm".into()));
                }
                let mut arms = Vec::new();
                for (i, arm) in split.split.iter().enumerate() {
                    let arm_at = at.key("split").index(i);
                    known(arm.version, arm_at.key("version"), problems);
                    if arm.weight == 0 {
                        problems.push((arm_at.key("weight"), "must be greater than 0".into()));
                    }
                    arms.push((arm.version, arm.weight));
                }
                LabelTarget::Split(arms)
            }
        };
        labels.insert(label.clone(), target);
    }
    PromptConfig {
        name: name.to_owned(),
        description: raw.description.clone(),
        variables,
        versions,
        labels,
    }
}

/// Checks the `apis:` entries against the prompts and model aliases.
pub(crate) fn apis(
    raw: &BTreeMap<String, RawApi>,
    prompts: &BTreeMap<String, PromptConfig>,
    models: &BTreeSet<&str>,
    problems: &mut Problems,
) -> BTreeMap<String, ApiConfig> {
    let mut out = BTreeMap::new();
    for (name, api) in raw {
        let path = KeyPath::root().key("apis").key(name);
        if !super::is_slug(name) {
            problems.push((path.clone(), format!("name {}", super::SLUG_RULE)));
        }
        let refs = Refs { prompts, models };
        let mut versions = BTreeMap::new();
        match &api.versions {
            None => {
                let v = api_version(&path, "v1", &api.defaults, &refs, problems);
                versions.insert("v1".to_owned(), v);
            }
            Some(listed) => {
                if listed.is_empty() {
                    problems.push((path.key("versions"), "lists no version".into()));
                }
                for (version, overrides) in listed {
                    let at = path.key("versions").key(version);
                    if !super::is_slug(version) {
                        problems.push((at.clone(), format!("version {}", super::SLUG_RULE)));
                    }
                    let merged = merge(&api.defaults, overrides);
                    versions.insert(
                        version.clone(),
                        api_version(&at, version, &merged, &refs, problems),
                    );
                }
            }
        }
        let published = versions
            .values()
            .filter(|v| v.status == ApiStatus::Published)
            .count();
        if published > 1 {
            problems.push((
                path.key("versions"),
                "at most one version may be `published` (it is what /apis/{name} serves)".into(),
            ));
        }
        out.insert(
            name.clone(),
            ApiConfig {
                name: name.clone(),
                description: api.description.clone(),
                requires_approval: api.requires_approval.unwrap_or(false),
                versions,
            },
        );
    }
    for api in out.values() {
        for v in api.versions.values() {
            if let Some(successor) = &v.successor {
                let (base, version) = split_api_ref(successor);
                let exists = out
                    .get(base)
                    .is_some_and(|a| version.is_none_or(|v| a.versions.contains_key(v)));
                if !exists {
                    let at = KeyPath::root().key("apis").key(&api.name).key("successor");
                    problems.push((at, format!("unknown API `{successor}`")));
                }
            }
        }
    }
    out
}

/// `name@version` into its parts.
pub fn split_api_ref(reference: &str) -> (&str, Option<&str>) {
    match reference.split_once('@') {
        Some((name, version)) => (name, Some(version)),
        None => (reference, None),
    }
}

struct Refs<'a> {
    prompts: &'a BTreeMap<String, PromptConfig>,
    models: &'a BTreeSet<&'a str>,
}

/// A version's fields over the API's defaults.
fn merge(defaults: &RawApiVersion, over: &RawApiVersion) -> RawApiVersion {
    fn pick<T: Clone>(over: &Option<T>, default: &Option<T>) -> Option<T> {
        over.clone().or_else(|| default.clone())
    }
    RawApiVersion {
        status: pick(&over.status, &defaults.status),
        prompt: pick(&over.prompt, &defaults.prompt),
        label: pick(&over.label, &defaults.label),
        model: pick(&over.model, &defaults.model),
        params: pick(&over.params, &defaults.params),
        output_schema: pick(&over.output_schema, &defaults.output_schema),
        context_policy: pick(&over.context_policy, &defaults.context_policy),
        deprecated_at: pick(&over.deprecated_at, &defaults.deprecated_at),
        sunset: pick(&over.sunset, &defaults.sunset),
        successor: pick(&over.successor, &defaults.successor),
        timeout_ms: pick(&over.timeout_ms, &defaults.timeout_ms),
        steps: pick(&over.steps, &defaults.steps),
        output: pick(&over.output, &defaults.output),
    }
}

fn api_version(
    path: &KeyPath,
    version: &str,
    raw: &RawApiVersion,
    refs: &Refs<'_>,
    problems: &mut Problems,
) -> ApiVersion {
    let status = match raw.status.unwrap_or(RawApiStatus::Draft) {
        RawApiStatus::Draft => ApiStatus::Draft,
        RawApiStatus::Published => ApiStatus::Published,
        RawApiStatus::Deprecated => ApiStatus::Deprecated,
        RawApiStatus::Retired => ApiStatus::Retired,
    };
    let body = match (&raw.steps, &raw.prompt) {
        (Some(_), Some(_)) => {
            problems.push((
                path.key("steps"),
                "an API has either `prompt` or `steps`, not both".into(),
            ));
            None
        }
        (Some(steps), None) => {
            workflow(path, steps, raw.output.as_deref(), refs, problems).map(ApiBody::Workflow)
        }
        (None, Some(_)) => prompt_call(
            path,
            &raw.prompt,
            &raw.label,
            &raw.model,
            &raw.params,
            refs,
            problems,
        )
        .map(ApiBody::Prompt),
        (None, None) => {
            problems.push((
                path.clone(),
                "needs a `prompt` (or workflow `steps`)".into(),
            ));
            None
        }
    };
    if raw.output.is_some() && raw.steps.is_none() {
        problems.push((
            path.key("output"),
            "only workflows (`steps`) name an output step".into(),
        ));
    }
    if let Some(schema) = &raw.output_schema {
        check_schema(&path.key("output_schema"), schema, problems);
    }
    let date = |field: &str, value: &Option<String>, problems: &mut Problems| {
        value.as_deref().and_then(|text| match parse_date(text) {
            Some(secs) => Some(secs),
            None => {
                problems.push((path.key(field), "expected a date such as 2027-03-31".into()));
                None
            }
        })
    };
    let deprecated_at = date("deprecated_at", &raw.deprecated_at, problems);
    let sunset = date("sunset", &raw.sunset, problems);
    if raw.timeout_ms == Some(0) {
        problems.push((path.key("timeout_ms"), "must be greater than 0".into()));
    }
    ApiVersion {
        version: version.to_owned(),
        status,
        body: body.unwrap_or(ApiBody::Workflow(Workflow {
            steps: Vec::new(),
            output: 0,
        })),
        output_schema: raw.output_schema.clone(),
        context_policy: raw.context_policy.map(ContextPolicy::from),
        deprecated_at,
        sunset,
        successor: raw.successor.clone(),
        timeout: raw.timeout_ms.map(Duration::from_millis),
    }
}

fn prompt_call(
    path: &KeyPath,
    prompt: &Option<String>,
    label: &Option<String>,
    model: &Option<String>,
    params: &Option<Map<String, Value>>,
    refs: &Refs<'_>,
    problems: &mut Problems,
) -> Option<PromptCall> {
    let prompt = prompt.clone()?;
    let label = label.clone().unwrap_or_else(|| DEFAULT_LABEL.to_owned());
    match refs.prompts.get(&prompt) {
        None => problems.push((path.key("prompt"), format!("unknown prompt `{prompt}`"))),
        Some(p) if !p.labels.contains_key(&label) => problems.push((
            path.key("label"),
            format!("prompt `{prompt}` has no label `{label}`"),
        )),
        Some(_) => {}
    }
    let Some(model) = model.clone() else {
        problems.push((path.key("model"), "names no model alias".into()));
        return None;
    };
    if !refs.models.contains(model.as_str()) {
        problems.push((path.key("model"), format!("unknown model alias `{model}`")));
    }
    let params = params.clone().unwrap_or_default();
    check_params(&path.key("params"), &params, problems);
    Some(PromptCall {
        prompt,
        label,
        model,
        params,
    })
}

fn workflow(
    path: &KeyPath,
    raw: &[RawStep],
    output: Option<&str>,
    refs: &Refs<'_>,
    problems: &mut Problems,
) -> Option<Workflow> {
    if raw.is_empty() {
        problems.push((
            path.key("steps"),
            "a workflow needs at least one step".into(),
        ));
        return None;
    }
    let mut steps: Vec<Step> = Vec::new();
    for (i, step) in raw.iter().enumerate() {
        let at = path.key("steps").index(i);
        if !super::is_slug(&step.id) {
            problems.push((at.key("id"), format!("step id {}", super::SLUG_RULE)));
        }
        if steps.iter().any(|s| s.id == step.id) {
            problems.push((at.key("id"), format!("step id `{}` is used twice", step.id)));
        }
        let needs = match &step.needs {
            None if i > 0 => vec![i - 1],
            None => Vec::new(),
            Some(names) => names
                .iter()
                .enumerate()
                .filter_map(|(j, name)| match steps.iter().position(|s| &s.id == name) {
                    Some(index) => Some(index),
                    None => {
                        problems.push((
                            at.key("needs").index(j),
                            format!("`{name}` is not an earlier step (steps run after what they need, so list them in order)"),
                        ));
                        None
                    }
                })
                .collect(),
        };
        let kind = match (&step.prompt, &step.http) {
            (Some(_), Some(_)) | (None, None) => {
                problems.push((at.clone(), "a step has either `prompt` or `http`".into()));
                None
            }
            (Some(_), None) => prompt_call(
                &at,
                &step.prompt,
                &step.label,
                &step.model,
                &step.params,
                refs,
                problems,
            )
            .map(StepKind::Prompt),
            (None, Some(http)) => http_step(&at.key("http"), http, problems).map(StepKind::Http),
        };
        if step.timeout_ms == Some(0) {
            problems.push((at.key("timeout_ms"), "must be greater than 0".into()));
        }
        if let Some(vars) = &step.variables {
            for (name, value) in vars {
                if let Value::String(text) = value {
                    if let Err(err) = crate::prompts::compile_check(text) {
                        problems.push((
                            at.key("variables").key(name),
                            format!("is not a valid template: {err}"),
                        ));
                    }
                }
            }
        }
        let Some(kind) = kind else { continue };
        steps.push(Step {
            id: step.id.clone(),
            kind,
            needs,
            variables: step.variables.clone(),
            timeout: step.timeout_ms.map(Duration::from_millis),
        });
    }
    let output = match output {
        None => steps.len().saturating_sub(1),
        Some(id) => match steps.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                problems.push((path.key("output"), format!("no step has the id `{id}`")));
                0
            }
        },
    };
    Some(Workflow { steps, output })
}

fn http_step(path: &KeyPath, raw: &RawHttpStep, problems: &mut Problems) -> Option<HttpStep> {
    let method = match raw
        .method
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("POST") => http::Method::POST,
        Some("GET") => http::Method::GET,
        Some(other) => {
            problems.push((
                path.key("method"),
                format!("`{other}`: expected POST or GET"),
            ));
            return None;
        }
    };
    if !(raw.url.starts_with("http://") || raw.url.starts_with("https://")) {
        problems.push((
            path.key("url"),
            "expected an http:// or https:// URL".into(),
        ));
        return None;
    }
    Some(HttpStep {
        url: raw.url.clone(),
        method,
        headers: raw
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Secret(v.clone())))
            .collect(),
    })
}

fn check_params(path: &KeyPath, params: &Map<String, Value>, problems: &mut Problems) {
    for name in params.keys() {
        if !PARAMS.contains(&name.as_str()) {
            problems.push((
                path.key(name),
                format!(
                    "unknown model parameter (expected one of: {})",
                    PARAMS.join(", ")
                ),
            ));
        }
    }
}

fn check_schema(path: &KeyPath, schema: &Value, problems: &mut Problems) {
    if let Err(err) = jsonschema::meta::validate(schema) {
        problems.push((path.clone(), format!("is not a valid JSON Schema: {err}")));
    }
}

/// `YYYY-MM-DD` as Unix seconds at midnight UTC.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || !(1970..=9999).contains(&year) {
        return None;
    }
    Some(switchboard_types::calendar::days_from_civil(year, month, day) * 86_400)
}
