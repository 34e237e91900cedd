//! Stored prompts at run time (docs/prompts-and-apis.md): which version a label serves to a
//! caller (sticky A/B splits), variable validation against the prompt's JSON Schema, rendering
//! with minijinja, and the chat request a rendered prompt becomes.
//!
//! A [`PromptLibrary`] is built once per config snapshot: every template compiled, every schema
//! compiled into a validator, so a call only looks them up.

use crate::config::prompts::{LabelTarget, PromptConfig, PARAMS};
use crate::error::GatewayError;
use jsonschema::Validator;
use minijinja::Environment;
use serde_json::{Map, Value};
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use switchboard_types::ChatRequest;

pub mod reference;
#[cfg(test)]
mod tests;

/// Whether `text` compiles as a template (config validation).
pub fn compile_check(text: &str) -> Result<(), String> {
    let mut env = environment();
    env.add_template_owned("t".to_owned(), text.to_owned())
        .map_err(|e| describe(&e))
}

/// Printing an undefined variable is an error (a typo in a template must not silently render
/// an empty string into a prompt), while `{% if optional %}` on a variable the caller did not
/// send is false: optional variables are tested that way.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    // A template loop over a huge variable must end: fuel bounds the instructions of one render.
    env.set_fuel(Some(1_000_000));
    // minijinja keeps the details that name what failed (e.g. the undefined variable) only
    // in debug mode, which defaults to debug builds: the release build's errors must say it too.
    env.set_debug(true);
    env
}

fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{} ({detail})", err.kind()),
        None => err.kind().to_string(),
    }
}

/// Which version a caller gets, and how it was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub version: u32,
}

/// One version's rendered parts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    pub prompt: String,
    pub version: u32,
    pub system: Option<String>,
    pub user: Option<String>,
    /// The version's default model parameters.
    pub params: Map<String, Value>,
}

impl Rendered {
    /// `name@version`, as recorded in the call log (`prompt` tag) and shown to callers.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.prompt, self.version)
    }

    /// The rendered parts as OpenAI-format messages: the system message, then the user one.
    pub fn messages(&self) -> Vec<Value> {
        let parts = [("system", &self.system), ("user", &self.user)];
        parts
            .into_iter()
            .filter_map(|(role, text)| {
                text.as_ref()
                    .map(|text| serde_json::json!({"role": role, "content": text}))
            })
            .collect()
    }
}

/// Every prompt of a snapshot, compiled.
#[derive(Default)]
pub struct PromptLibrary {
    env: Environment<'static>,
    validators: HashMap<String, Validator>,
    prompts: BTreeMap<String, PromptConfig>,
}

impl std::fmt::Debug for PromptLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptLibrary")
            .field("prompts", &self.prompts.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn template_name(prompt: &str, version: u32, part: &str) -> String {
    format!("{prompt}@{version}/{part}")
}

impl PromptLibrary {
    /// Compiles the prompts of a validated config (validation already compiled each template
    /// once, so failures here are not expected; a prompt that fails is left out and logged).
    pub fn build(prompts: &BTreeMap<String, PromptConfig>) -> PromptLibrary {
        let mut env = environment();
        let mut validators = HashMap::new();
        for (name, prompt) in prompts {
            match jsonschema::validator_for(&prompt.variables) {
                Ok(v) => {
                    validators.insert(name.clone(), v);
                }
                Err(err) => {
                    tracing::error!(prompt = %name, %err, "Cannot compile a variables schema.")
                }
            }
            for version in prompt.versions.values() {
                for (part, text) in [("system", &version.system), ("user", &version.user)] {
                    if let Some(text) = text {
                        let key = template_name(name, version.version, part);
                        if let Err(err) = env.add_template_owned(key, text.clone()) {
                            tracing::error!(prompt = %name, %err, "Cannot compile a template.");
                        }
                    }
                }
            }
        }
        PromptLibrary {
            env,
            validators,
            prompts: prompts.clone(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&PromptConfig> {
        self.prompts.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prompts.keys().map(String::as_str)
    }

    /// The version `label` serves to the caller identified by `sticky` (the key id, or the
    /// `x-switchboard-ab-key` header): a plain label is one version; a split hashes the caller
    /// and the prompt name onto the arms' weights, so a caller always gets the same arm while
    /// the split stays the same.
    pub fn choose(&self, prompt: &str, label: &str, sticky: &str) -> Result<Chosen, GatewayError> {
        let config = self
            .prompts
            .get(prompt)
            .ok_or_else(|| GatewayError::UnknownPrompt(prompt.to_owned()))?;
        let target = config
            .labels
            .get(label)
            .ok_or_else(|| GatewayError::UnknownPrompt(format!("{prompt} (label {label})")))?;
        let version = match target {
            LabelTarget::Version(v) => *v,
            LabelTarget::Split(arms) => pick_arm(arms, prompt, sticky),
        };
        Ok(Chosen { version })
    }

    /// Checks `variables` against the prompt's schema: 400 naming the first bad variable.
    pub fn validate(&self, prompt: &str, variables: &Value) -> Result<(), GatewayError> {
        let Some(validator) = self.validators.get(prompt) else {
            return Err(GatewayError::UnknownPrompt(prompt.to_owned()));
        };
        if !variables.is_object() {
            return Err(GatewayError::InvalidVariables {
                variable: String::new(),
                message: "the variables must be a JSON object".into(),
            });
        }
        match validator.iter_errors(variables).next() {
            None => Ok(()),
            Some(err) => Err(GatewayError::InvalidVariables {
                variable: variable_name(&err),
                message: err.to_string(),
            }),
        }
    }

    /// Validates and renders one version.
    pub fn render(
        &self,
        prompt: &str,
        version: u32,
        variables: &Value,
    ) -> Result<Rendered, GatewayError> {
        self.validate(prompt, variables)?;
        let config = self
            .prompts
            .get(prompt)
            .ok_or_else(|| GatewayError::UnknownPrompt(prompt.to_owned()))?;
        let stored = config
            .versions
            .get(&version)
            .ok_or_else(|| GatewayError::UnknownPrompt(format!("{prompt}@{version}")))?;
        let part = |name: &str, present: bool| -> Result<Option<String>, GatewayError> {
            if !present {
                return Ok(None);
            }
            let template = self
                .env
                .get_template(&template_name(prompt, version, name))
                .map_err(|e| GatewayError::Internal(format!("template {prompt}@{version}: {e}")))?;
            template
                .render(minijinja::value::Serde(variables))
                .map(Some)
                .map_err(|e| GatewayError::InvalidVariables {
                    variable: String::new(),
                    message: format!("the {name} template cannot render: {}", describe(&e)),
                })
        };
        Ok(Rendered {
            prompt: prompt.to_owned(),
            version,
            system: part("system", stored.system.is_some())?,
            user: part("user", stored.user.is_some())?,
            params: stored.params.clone(),
        })
    }
}

/// The name of the variable an error is about: the first segment of its instance path, or for
/// a missing required property, that property.
fn variable_name(err: &jsonschema::ValidationError<'_>) -> String {
    if let jsonschema::error::ValidationErrorKind::Required { property } = err.kind() {
        if let Some(name) = property.as_str() {
            return name.to_owned();
        }
    }
    let path = err
        .instance_path()
        .as_str()
        .trim_start_matches('/')
        .to_owned();
    path.replace("~1", "/").replace("~0", "~")
}

fn pick_arm(arms: &[(u32, u32)], prompt: &str, sticky: &str) -> u32 {
    let total: u64 = arms.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return arms.first().map_or(1, |(v, _)| *v);
    }
    // A fixed hash (not a per-process RandomState): the same caller lands on the same arm on
    // every instance and after restarts.
    let digest = sha2::Sha256::new()
        .chain_update(prompt.as_bytes())
        .chain_update([0])
        .chain_update(sticky.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut point = u64::from_le_bytes(first) % total;
    for (version, weight) in arms {
        let weight = u64::from(*weight);
        if point < weight {
            return *version;
        }
        point -= weight;
    }
    arms.last().map_or(1, |(v, _)| *v)
}

/// The chat request a rendered prompt becomes: its system and user messages, then `extra`
/// messages (a chat request that referenced the prompt and sent turns of its own), with the
/// version's parameters under `params` (an API's, then the caller's win). Built as an OpenAI
/// body and parsed by the same parser as a client's, so every parameter is checked the same way.
pub fn chat_request(
    model: &str,
    rendered: &Rendered,
    params: &[&Map<String, Value>],
    extra_messages: Vec<Value>,
    stream: bool,
) -> Result<ChatRequest, GatewayError> {
    let mut messages = rendered.messages();
    messages.extend(extra_messages);
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model.to_owned()));
    body.insert("messages".into(), Value::Array(messages));
    for layer in std::iter::once(&rendered.params).chain(params.iter().copied()) {
        for (name, value) in layer {
            if PARAMS.contains(&name.as_str()) {
                body.insert(name.clone(), value.clone());
            }
        }
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    }
    let bytes = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| GatewayError::Internal(format!("prompt request: {e}")))?;
    let mut req = switchboard_protocols::openai::parse_chat_request(&bytes)
        .map_err(GatewayError::BadRequest)?;
    // Built by the gateway: nothing to forward as-is.
    req.raw = None;
    Ok(req)
}

/// Renders one template string over `context` (a workflow step's variable over the run's
/// context). Same rules as prompt templates: undefined names are errors, fuel bounds loops.
/// The template is compiled per call: workflow variables are short and rendered once per run.
pub fn render_str(template: &str, context: &Value) -> Result<String, String> {
    let env = environment();
    env.render_str(template, minijinja::value::Serde(context))
        .map_err(|e| describe(&e))
}
