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

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}
