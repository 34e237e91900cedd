//! The bodies of the prompt and API routes. Stored prompts and APIs are shown as the mapping a
//! config file's `prompts:`/`apis:` entry takes (`settings`), as models are.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchboard_store as store;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Prompt {
    pub name: String,
    /// The config file's mapping for this prompt: `description`, `variables` (JSON Schema),
    /// `versions` (immutable) and `labels`.
    #[schema(value_type = Object)]
    pub settings: Value,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::StoredPrompt> for Prompt {
    fn from(p: store::StoredPrompt) -> Prompt {
        Prompt {
            name: p.name,
            settings: p.settings,
            managed_by: p.managed_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Api {
    pub name: String,
    /// The config file's mapping for this API (prompt, label, model, versions, status...).
    #[schema(value_type = Object)]
    pub settings: Value,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::StoredApi> for Api {
    fn from(a: store::StoredApi) -> Api {
        Api {
            name: a.name,
            settings: a.settings,
            managed_by: a.managed_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// The content of a new prompt version; its number is the next one.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// minijinja template of the system message.
    pub system: Option<String>,
    /// minijinja template of the user message.
    pub user: Option<String>,
    /// Default model parameters (OpenAI names: temperature, max_tokens, ...).
    #[schema(value_type = Option<Object>)]
    pub params: Option<Map<String, Value>>,
    /// What changed, for people.
    pub note: Option<String>,
}

/// A prompt version, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromptVersion {
    pub prompt: String,
    pub version: u32,
    pub system: Option<String>,
    pub user: Option<String>,
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    pub note: Option<String>,
}

/// Where a label points: one version, or a weighted split between versions (A/B).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelTarget {
    pub version: Option<u32>,
    pub split: Option<Vec<SplitArm>>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitArm {
    pub version: u32,
    /// Greater than 0; a caller sticks to one arm.
    pub weight: u32,
}

/// The playground: which version to render (by number or label) with which variables.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// A version number; not with `label`.
    pub version: Option<u32>,
    /// A label (default `production` when neither is given).
    pub label: Option<String>,
    /// The variables object, checked against the prompt's schema.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub variables: Value,
    /// For a split label: the caller key whose arm to show (default: the admin caller's).
    pub ab_key: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A rendered prompt: what a model would receive. No model is called.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rendered {
    pub prompt: String,
    pub version: u32,
    /// The label resolved, when one was.
    pub label: Option<String>,
    pub system: Option<String>,
    pub user: Option<String>,
    /// The version's default model parameters.
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    /// The system and user messages in the OpenAI Chat Completions format.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Value>,
}

/// A lifecycle status of an API version.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    Published,
    Deprecated,
    Retired,
}

/// Move an API version to another status.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub status: Status,
    /// `YYYY-MM-DD`: when the version stops being served (the `Sunset` header).
    pub sunset: Option<String>,
    /// The API (`name` or `name@version`) that replaces this one.
    pub successor: Option<String>,
}

/// One version whose status changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Transition {
    pub version: String,
    pub from: Status,
    pub to: Status,
}

/// The API after a status change, and every version whose status changed (publishing one
/// version deprecates the one published before).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusReply {
    pub api: Api,
    pub transitions: Vec<Transition>,
}
