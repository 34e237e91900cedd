//! What the admin API reads and writes, with OpenAPI schemas: the store's records mirrored as
//! response types (so the store stays free of HTTP concerns), request bodies and query
//! parameters. Times are Unix milliseconds everywhere, in and out.

use super::extract::double_option;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchboard_core::auth::roles::Role;
use switchboard_store as store;
use utoipa::{IntoParams, ToSchema};

/// One page of a list. Pass `next_cursor` as `cursor` to get the next page; it is null on the
/// last page. A page may hold fewer than `limit` items when some were hidden from the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// Converts a store page, keeping only the items `keep` accepts (the cursor stays the
    /// store's, so paging goes on past hidden items).
    pub fn from_store<R>(
        page: store::Page<R>,
        keep: impl Fn(&R) -> bool,
        map: impl Fn(R) -> T,
    ) -> Page<T> {
        Page {
            data: page
                .items
                .into_iter()
                .filter(|r| keep(r))
                .map(map)
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// `?limit=&cursor=`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn request(&self) -> store::PageRequest {
        store::PageRequest {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

// ------------------------------------------------------------------ organisations and teams

#[derive(Debug, Serialize, ToSchema)]
pub struct Org {
    pub id: String,
    /// The slug used in URLs.
    pub name: String,
    pub display_name: Option<String>,
    /// `apply` when config as code owns it: read-only here.
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::Org> for Org {
    fn from(o: store::Org) -> Org {
        Org {
            id: o.id,
            name: o.name,
            display_name: o.display_name,
            managed_by: o.managed_by,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// 1-64 characters: lowercase letters, digits, `-`, `_`.
    pub name: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrg {
    /// Null clears it; left out keeps it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Team {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::Team> for Team {
    fn from(t: store::Team) -> Team {
        Team {
            id: t.id,
            org_id: t.org_id,
            name: t.name,
            managed_by: t.managed_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// 1-64 characters: lowercase letters, digits, `-`, `_`.
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct App {
    pub id: String,
    pub org_id: String,
    pub team_id: String,
    pub name: String,
    /// Model aliases the app may call; null = all.
    pub models: Option<Vec<String>>,
    /// Prompt APIs the app may call; null = all.
    pub apis: Option<Vec<String>>,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::App> for App {
    fn from(a: store::App) -> App {
        App {
            id: a.id,
            org_id: a.org_id,
            team_id: a.team_id,
            name: a.name,
            models: a.models,
            apis: a.apis,
            managed_by: a.managed_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// 1-64 characters: lowercase letters, digits, `-`, `_`.
    pub name: String,
    /// Model aliases the app may call; left out = all.
    pub models: Option<Vec<String>>,
    pub apis: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    /// Null = every alias; left out keeps the list.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub apis: Option<Option<Vec<String>>>,
}

// ------------------------------------------------------------------ people

#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    /// The OIDC `sub`.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: i64,
}

impl From<store::User> for User {
    fn from(u: store::User) -> User {
        User {
            id: u.id,
            subject: u.subject,
            email: u.email,
            name: u.name,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// The OIDC `sub` the person signs in with; an existing subject is updated.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// `owner`, `admin`, `developer` or `viewer`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Owner,
    Admin,
    Developer,
    Viewer,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::Owner => Role::Owner,
            RoleName::Admin => Role::Admin,
            RoleName::Developer => Role::Developer,
            RoleName::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for RoleName {
    fn from(r: Role) -> RoleName {
        match r {
            Role::Owner => RoleName::Owner,
            Role::Admin => RoleName::Admin,
            Role::Developer => RoleName::Developer,
            Role::Viewer => RoleName::Viewer,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// The membership id (for DELETE and PATCH).
    pub id: String,
    pub user_id: String,
    pub org_id: String,
    /// Null: the role is on the whole organisation.
    pub team_id: Option<String>,
    pub role: RoleName,
    pub created_at: i64,
}

impl From<store::Membership> for Member {
    fn from(m: store::Membership) -> Member {
        Member {
            id: m.id,
            user_id: m.user_id,
            org_id: m.org_id,
            team_id: m.team_id,
            role: m.role.into(),
            created_at: m.created_at,
        }
    }
}

/// Give a person a role. Name them by `user_id` or by `subject` (a user with that subject is
/// recorded if none exists yet).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user_id: Option<String>,
    pub subject: Option<String>,
    /// The team's name; left out = the whole organisation.
    pub team: Option<String>,
    pub role: RoleName,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    pub role: RoleName,
}

/// The caller as the admin API sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `admin_key` or `user:<subject>`.
    pub actor: String,
    pub platform_admin: bool,
    pub user_id: Option<String>,
    pub roles: Vec<MyRole>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MyRole {
    pub org_id: String,
    pub team_id: Option<String>,
    pub role: RoleName,
}

// ------------------------------------------------------------------ keys

#[derive(Debug, Serialize, ToSchema)]
pub struct Key {
    pub id: String,
    pub org_id: String,
    pub team_id: Option<String>,
    pub app_id: Option<String>,
    pub user_id: Option<String>,
    pub name: String,
    /// The visible start of the key, e.g. `sk-sb-AbCd1234`.
    pub prefix: String,
    /// Aliases the key may call within its app's list; null = whatever the app may call.
    pub models: Option<Vec<String>>,
    pub apis: Option<Vec<String>>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Null = never.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key that replaced this one in a rotation.
    pub rotated_to: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    /// Not revoked and not expired now.
    pub active: bool,
}

impl Key {
    pub fn from_record(k: store::KeyRecord, now_ms: i64) -> Key {
        let active = k.is_active(now_ms);
        Key {
            id: k.id,
            org_id: k.org_id,
            team_id: k.team_id,
            app_id: k.app_id,
            user_id: k.user_id,
            name: k.name,
            prefix: k.prefix,
            models: k.models,
            apis: k.apis,
            metadata: k.metadata,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            rotated_to: k.rotated_to,
            created_by: k.created_by,
            created_at: k.created_at,
            active,
        }
    }
}

/// A key just made, with its secret: shown this once, store it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: Key,
    /// The whole key (`sk-sb-...`). It cannot be shown again.
    pub secret: String,
}

/// A new key for an app (`team` and `app`) or for a person (`user_id`, optional `team`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub team: Option<String>,
    pub app: Option<String>,
    pub user_id: Option<String>,
    pub name: String,
    pub models: Option<Vec<String>>,
    pub apis: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Unix ms, in the future.
    pub expires_at: Option<i64>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    pub name: Option<String>,
    /// Null = whatever the app may call; left out keeps the list.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub models: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub apis: Option<Option<Vec<String>>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Unix ms; null = never.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub expires_at: Option<Option<i64>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working; default `access.rotation_grace_ms` of the config.
    pub grace_ms: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyParams {
    /// Only keys of this team.
    pub team: Option<String>,
    /// Only keys of this app (needs `team`).
    pub app: Option<String>,
    /// Only personal keys of this user.
    pub user_id: Option<String>,
    /// Also list revoked keys.
    #[serde(default)]
    pub include_revoked: bool,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

// ------------------------------------------------------------------ subscriptions

#[derive(Debug, Serialize, ToSchema)]
pub struct Subscription {
    pub id: String,
    pub org_id: String,
    pub team_id: String,
    pub app_id: String,
    /// `model` or `api`.
    pub kind: String,
    /// The model alias or API name.
    pub target: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub reason: Option<String>,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
}

impl From<store::Subscription> for Subscription {
    fn from(s: store::Subscription) -> Subscription {
        Subscription {
            id: s.id,
            org_id: s.org_id,
            team_id: s.team_id,
            app_id: s.app_id,
            kind: match s.kind {
                store::SubscriptionKind::Model => "model",
                store::SubscriptionKind::Api => "api",
            }
            .to_owned(),
            target: s.target,
            status: s.status.as_str().to_owned(),
            reason: s.reason,
            requested_by: s.requested_by,
            decided_by: s.decided_by,
            created_at: s.created_at,
            decided_at: s.decided_at,
        }
    }
}

/// Ask for a `requires_approval` model alias (`model`) or prompt API (`api`) for an app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSubscription {
    pub team: String,
    pub app: String,
    pub model: Option<String>,
    pub api: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectSubscription {
    /// Shown to the app's callers in the 403.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionParams {
    /// `pending`, `approved` or `rejected`.
    pub status: Option<String>,
    /// Only this team's apps.
    pub team: Option<String>,
    /// Only this app (needs `team`).
    pub app: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

// ------------------------------------------------------------------ stored config

#[derive(Debug, Serialize, ToSchema)]
pub struct Provider {
    pub name: String,
    /// The config file's mapping for this provider, without `api_key`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Whether an (encrypted) API key is stored.
    pub has_api_key: bool,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::StoredProvider> for Provider {
    fn from(p: store::StoredProvider) -> Provider {
        Provider {
            name: p.name,
            settings: p.settings,
            has_api_key: p.has_api_key,
            managed_by: p.managed_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Model {
    pub name: String,
    /// The config file's mapping for this model alias.
    #[schema(value_type = Object)]
    pub settings: Value,
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<store::StoredModel> for Model {
    fn from(m: store::StoredModel) -> Model {
        Model {
            name: m.name,
            settings: m.settings,
            managed_by: m.managed_by,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

// ------------------------------------------------------------------ audit

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub org_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<store::AuditEntry> for AuditEntry {
    fn from(e: store::AuditEntry) -> AuditEntry {
        AuditEntry {
            seq: e.seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            object_kind: e.object_kind,
            object_id: e.object_id,
            org_id: e.org_id,
            before: e.before,
            after: e.after,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Platform admin only: the log of this organisation (its name).
    pub org: Option<String>,
    pub limit: Option<u32>,
    /// The last `seq` seen.
    pub cursor: Option<String>,
}
