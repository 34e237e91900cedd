//! One line of a plan: what `apply` creates, updates or deletes, in the form users read
//! (`+ provider openai`, `~ model gpt-4o (targets)`, `- app acme/research/old`) and as JSON.
//! Changes never carry values, only names and the names of changed fields, so that a diff can
//! be printed in CI logs without leaking secrets.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What happens to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    /// The diff marker: `+`, `~` or `-`.
    pub fn marker(self) -> char {
        match self {
            Op::Create => '+',
            Op::Update => '~',
            Op::Delete => '-',
        }
    }
}

/// The kind of object changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Provider,
    Model,
    Org,
    Team,
    App,
    RateLimit,
    Budget,
    Prompt,
    Api,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Provider => "provider",
            Kind::Model => "model",
            Kind::Org => "org",
            Kind::Team => "team",
            Kind::App => "app",
            Kind::RateLimit => "rate_limit",
            Kind::Budget => "budget",
            Kind::Prompt => "prompt",
            Kind::Api => "api",
        }
    }
}

/// One change of a plan. `name` is the object's path: `openai`, `acme`, `acme/research`,
/// `acme/research/notebook`. `fields` lists what an update changes (`managed` when apply takes
/// over an object made through the admin API); it is empty for creations and deletions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub op: Op,
    pub kind: Kind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl Change {
    pub fn create(kind: Kind, name: impl Into<String>) -> Change {
        Change {
            op: Op::Create,
            kind,
            name: name.into(),
            fields: Vec::new(),
        }
    }

    pub fn update(kind: Kind, name: impl Into<String>, fields: Vec<String>) -> Change {
        Change {
            op: Op::Update,
            kind,
            name: name.into(),
            fields,
        }
    }

    pub fn delete(kind: Kind, name: impl Into<String>) -> Change {
        Change {
            op: Op::Delete,
            kind,
            name: name.into(),
            fields: Vec::new(),
        }
    }
}

impl fmt::Display for Change {
    /// `+ provider openai`, `~ model gpt-4o (targets, retry)`, `- app acme/research/old`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.op.marker(),
            self.kind.as_str(),
            self.name
        )?;
        if !self.fields.is_empty() {
            write!(f, " ({})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

/// The one-line summary of a plan: `3 to create, 1 to update, 0 to delete`.
pub fn summary(changes: &[Change]) -> String {
    let count = |op| changes.iter().filter(|c| c.op == op).count();
    format!(
        "{} to create, {} to update, {} to delete",
        count(Op::Create),
        count(Op::Update),
        count(Op::Delete)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_a_diff() {
        assert_eq!(
            Change::create(Kind::Provider, "openai").to_string(),
            "+ provider openai"
        );
        assert_eq!(
            Change::update(Kind::Model, "gpt-4o", vec!["targets".into()]).to_string(),
            "~ model gpt-4o (targets)"
        );
        assert_eq!(
            Change::delete(Kind::App, "acme/research/old").to_string(),
            "- app acme/research/old"
        );
    }

    #[test]
    fn json_is_flat_and_stable() {
        let change = Change::update(Kind::App, "a/b/c", vec!["models".into()]);
        let json = serde_json::to_value(&change).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"op": "update", "kind": "app", "name": "a/b/c", "fields": ["models"]})
        );
    }
}
