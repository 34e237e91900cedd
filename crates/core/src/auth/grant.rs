//! What an authenticated caller may do, as loaded from storage: the grant of a virtual key, or
//! of a user signed in with a JWT. The store implements [`KeyLookup`]; the data plane only reads
//! grants through the key cache.

use super::keys::KeyHash;
use super::roles::Role;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Whether a subscription is for a model alias or a prompt API.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionKind {
    Model,
    Api,
}

/// Where an app's request for a `requires_approval` model or API stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionState {
    Pending,
    Approved,
    Rejected { reason: Option<String> },
}

/// Everything the data plane needs to decide what a virtual key may do, loaded in one lookup.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyGrant {
    pub key_id: String,
    /// The visible start of the key.
    pub prefix: String,
    pub org_id: String,
    /// The organisation's name (slug).
    pub org: String,
    pub team_id: Option<String>,
    pub team: Option<String>,
    pub app_id: Option<String>,
    pub app: Option<String>,
    pub user_id: Option<String>,
    /// The aliases this key may call: the key's own list intersected with its app's. `None`
    /// means every alias.
    pub models: Option<Vec<String>>,
    /// The prompt APIs this key may call; `None` means every API.
    pub apis: Option<Vec<String>>,
    /// Unix ms after which the key no longer works (also the end of a rotation's grace).
    pub expires_at_ms: Option<i64>,
    /// The app's subscriptions to `requires_approval` models and APIs.
    pub subscriptions: BTreeMap<(SubscriptionKind, String), SubscriptionState>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl KeyGrant {
    /// Whether the key's allow-list names `alias`.
    pub fn lists_model(&self, alias: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == alias))
    }

    /// Whether the key's allow-list names the prompt API `name`.
    pub fn lists_api(&self, name: &str) -> bool {
        self.apis
            .as_ref()
            .is_none_or(|apis| apis.iter().any(|a| a == name))
    }

    pub fn subscription(&self, kind: SubscriptionKind, target: &str) -> Option<&SubscriptionState> {
        self.subscriptions.get(&(kind, target.to_owned()))
    }
}

/// A person signed in through the OIDC issuer: who they are and the roles their token's claims
/// (and stored memberships) give them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserGrant {
    /// The token's `sub`.
    pub subject: String,
    pub email: Option<String>,
    /// Roles from the token's claims: (org name, team name or None for the whole org, role).
    pub roles: Vec<RoleGrant>,
}

/// One role of a user, over a whole organisation or one of its teams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleGrant {
    pub org: String,
    pub team: Option<String>,
    pub role: Role,
}

/// Storage could not answer (the message is for the log, never for a client).
#[derive(Clone, Debug, thiserror::Error)]
#[error("key lookup failed: {0}")]
pub struct LookupError(pub String);

/// Finds the grant of a presented key. Implemented by the store.
#[async_trait::async_trait]
pub trait KeyLookup: Send + Sync + Debug {
    /// The grant of the key with this hash if it exists and is not revoked. Expired keys are
    /// returned (the caller compares `expires_at_ms` with its clock, so a cached grant expires
    /// on time); `None` when no such key exists or it was revoked.
    async fn find_key(&self, hash: &KeyHash) -> Result<Option<KeyGrant>, LookupError>;
}
