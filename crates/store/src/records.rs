//! The records the store hands out and takes in: plain serde structs, one per table row, plus
//! the inputs of create and update calls. The admin API wraps them in its own DTOs (with OpenAPI
//! schemas), so nothing here depends on the HTTP layer.

use serde::{Deserialize, Serialize};
use switchboard_core::auth::roles::Role;

/// An organisation (tenant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    /// The slug, unique across the installation.
    pub name: String,
    pub display_name: Option<String>,
    /// `Some("apply")` when config as code owns it (read-only in the admin API).
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new organisation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrg {
    pub name: String,
    pub display_name: Option<String>,
    pub managed_by: Option<String>,
}

/// A change to an organisation; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPatch {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
    /// Only `apply` may set this: it takes over (`Some(Some("apply"))`) or releases an object.
    pub managed_by: Option<Option<String>>,
}

/// A team within an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub org_id: String,
    /// Unique within the organisation.
    pub name: String,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new team.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTeam {
    pub name: String,
    pub managed_by: Option<String>,
}

/// A change to a team; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamPatch {
    /// Only `apply` may set this (see [`OrgPatch::managed_by`]).
    pub managed_by: Option<Option<String>>,
}

/// An application of a team: what virtual keys usually belong to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub org_id: String,
    pub team_id: String,
    /// Unique within the team.
    pub name: String,
    /// The model aliases the app may call; `None` means every alias.
    pub models: Option<Vec<String>>,
    /// The prompt APIs the app may call; `None` means every API.
    pub apis: Option<Vec<String>>,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A new app.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApp {
    pub name: String,
    pub models: Option<Vec<String>>,
    pub apis: Option<Vec<String>>,
    pub managed_by: Option<String>,
}

/// A change to an app; the outer `None` leaves a field as it is, `Some(None)` sets it to "all".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPatch {
    pub models: Option<Option<Vec<String>>>,
    pub apis: Option<Option<Vec<String>>>,
    /// Only `apply` may set this (see [`OrgPatch::managed_by`]).
    pub managed_by: Option<Option<String>>,
}

/// A person known through the OIDC issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// The token's `sub` claim, unique.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: i64,
}

/// A user to create, or to update when the subject is known already.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// A role a user holds on an organisation (`team_id` None) or one of its teams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    pub team_id: Option<String>,
    pub role: Role,
    pub created_at: i64,
}

/// A provider stored through the admin API or `apply`: the mapping a config file's `providers:`
/// entry holds, as JSON, without its API key (kept encrypted, never handed out here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredProvider {
    pub name: String,
    pub settings: serde_json::Value,
    /// Whether an encrypted API key is stored with it.
    pub has_api_key: bool,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A model alias, prompt or prompt API stored through the admin API or `apply`: the mapping a
/// config file's `models:`, `prompts:` or `apis:` entry holds, as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub name: String,
    pub settings: serde_json::Value,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub type StoredModel = StoredEntry;
/// Description, variables, versions and labels.
pub type StoredPrompt = StoredEntry;
pub type StoredApi = StoredEntry;

/// One row of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3, ... without gaps.
    pub seq: i64,
    /// Unix ms.
    pub at: i64,
    /// `admin_key`, `user:<subject>` or `apply`.
    pub actor: String,
    /// e.g. `org.create`, `key.revoke`.
    pub action: String,
    /// e.g. `org`, `key`.
    pub object_kind: String,
    pub object_id: String,
    pub org_id: Option<String>,
    /// The object before the change (secrets redacted); `None` for creations.
    pub before: Option<serde_json::Value>,
    /// The object after the change (secrets redacted); `None` for deletions.
    pub after: Option<serde_json::Value>,
    /// The previous row's hash (64 zeros for the first row).
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash` and this row's content.
    pub hash: String,
}

/// The result of checking the audit log's hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Rows read, up to and including the first bad one.
    pub checked: u64,
    /// The sequence number of the first row that does not match the chain.
    pub first_bad: Option<i64>,
    /// Why that row does not match.
    pub reason: Option<String>,
}

impl AuditReport {
    /// Whether every row matched.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}
