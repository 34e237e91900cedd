//! Newtypes for names that cross module boundaries, so that an alias is never confused with an
//! upstream model name.

use std::fmt;
use std::sync::Arc;

/// A model alias as configured under `models:` and as asked for by clients.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelAlias(pub Arc<str>);

impl ModelAlias {
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One routing target: `provider-name/model` as written in the config. This is also the value
/// of the `x-switchboard-target` response header.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetId {
    pub provider: Arc<str>,
    pub model: Arc<str>,
}

impl TargetId {
    /// `provider/model`, as `Display` writes it, built without the formatter (whose padding
    /// logic runs per argument): the call log and the response headers need it on every call.
    pub fn label(&self) -> String {
        let mut text = String::with_capacity(self.provider.len() + 1 + self.model.len());
        text.push_str(&self.provider);
        text.push('/');
        text.push_str(&self.model);
        text
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

#[cfg(test)]
mod tests {
    use super::TargetId;

    #[test]
    fn a_targets_label_is_its_display() {
        let target = TargetId {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
        };
        assert_eq!(target.label(), "openai/gpt-4o-mini");
        assert_eq!(target.label(), target.to_string());
    }
}
