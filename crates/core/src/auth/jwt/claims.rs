//! From a verified token's claims to a [`UserGrant`]: `sub`, `email`, and the roles named by the
//! configured claims.
//!
//! A role entry that cannot be used (an unknown role value such as `billing`, a missing org, a
//! wrong JSON type) is skipped with a warning instead of rejecting the token. The role claim is
//! often shared with the identity provider's other applications, so it may hold values that mean
//! nothing here; rejecting the whole token would lock a person out over a role that concerns
//! another system. Skipping only ever grants less than the token asked for, so it fails safe, and
//! a token whose roles are all skipped still proves who the caller is (stored memberships may
//! give them roles; the role check then answers 403, not 401).

use super::{ClaimNames, JwtError};
use crate::auth::grant::{RoleGrant, UserGrant};
use crate::auth::roles::Role;
use serde_json::{Map, Value};
use std::str::FromStr;
use tracing::warn;

/// More entries than this in a roles claim are ignored (and logged): no real person has them,
/// and the list is processed on every request.
const MAX_ROLE_ENTRIES: usize = 256;

pub(super) fn grant_from_claims(
    claims: &Map<String, Value>,
    names: &ClaimNames,
) -> Result<UserGrant, JwtError> {
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
        _ => return Err(JwtError::Invalid("missing claim `sub`".to_owned())),
    };
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(str::to_owned);

    let mut mapper = RoleMapper {
        subject: &subject,
        roles: Vec::new(),
    };
    mapper.single(claims, names);
    if let Some(list_claim) = &names.roles {
        mapper.list(claims, list_claim);
    }
    let roles = mapper.roles;
    Ok(UserGrant {
        subject,
        email,
        roles,
    })
}

struct RoleMapper<'a> {
    subject: &'a str,
    roles: Vec<RoleGrant>,
}

impl RoleMapper<'_> {
    /// The `org` / `team` / `role` claims: one place, one or more roles.
    fn single(&mut self, claims: &Map<String, Value>, names: &ClaimNames) {
        let Some(role_value) = lookup(claims, &names.role) else {
            return;
        };
        let org = match lookup(claims, &names.org) {
            Some(Value::String(org)) if !org.is_empty() => org.clone(),
            _ => {
                self.skip(
                    "the role claim has no organisation claim beside it",
                    role_value,
                );
                return;
            }
        };
        let team = match lookup(claims, &names.team) {
            None | Some(Value::Null) => None,
            Some(Value::String(team)) => non_empty(team),
            Some(other) => {
                self.skip("the team claim is not a string", other);
                return;
            }
        };
        match role_value {
            Value::String(role) => self.add(&org, team.as_deref(), role),
            Value::Array(items) => {
                for item in items.iter().take(MAX_ROLE_ENTRIES) {
                    match item {
                        Value::String(role) => self.add(&org, team.as_deref(), role),
                        other => self.skip("a role is not a string", other),
                    }
                }
            }
            other => self.skip("the role claim is not a string or list", other),
        }
    }

    /// The optional list claim: entries `{"org", "team"?, "role"}` or `"org[:team]:role"`.
    fn list(&mut self, claims: &Map<String, Value>, claim: &str) {
        let items = match lookup(claims, claim) {
            None | Some(Value::Null) => return,
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.skip("the roles claim is not a list", other);
                return;
            }
        };
        if items.len() > MAX_ROLE_ENTRIES {
            warn!(
                subject = self.subject,
                entries = items.len(),
                "token's roles claim is too long; only the first {MAX_ROLE_ENTRIES} are used"
            );
        }
        for item in items.iter().take(MAX_ROLE_ENTRIES) {
            match item {
                Value::String(entry) => {
                    let parts: Vec<&str> = entry.split(':').collect();
                    match parts.as_slice() {
                        [org, role] => self.add(org, None, role),
                        [org, team, role] => self.add(org, non_empty(team).as_deref(), role),
                        _ => self.skip("a roles entry is not `org:role` or `org:team:role`", item),
                    }
                }
                Value::Object(entry) => {
                    let field = |name: &str| entry.get(name).and_then(Value::as_str);
                    match (field("org"), field("role")) {
                        (Some(org), Some(role)) => {
                            let team = field("team").and_then(non_empty);
                            self.add(org, team.as_deref(), role);
                        }
                        _ => self.skip("a roles entry lacks `org` or `role`", item),
                    }
                }
                other => self.skip("a roles entry is not a string or object", other),
            }
        }
    }

    fn add(&mut self, org: &str, team: Option<&str>, role: &str) {
        if org.is_empty() {
            self.skip(
                "a role has an empty organisation",
                &Value::String(role.to_owned()),
            );
            return;
        }
        // Identity providers are inconsistent about case (`Admin`); role names are not.
        let Ok(role) = Role::from_str(&role.trim().to_ascii_lowercase()) else {
            self.skip("unknown role", &Value::String(role.to_owned()));
            return;
        };
        let grant = RoleGrant {
            org: org.to_owned(),
            team: team.map(str::to_owned),
            role,
        };
        if !self.roles.contains(&grant) {
            self.roles.push(grant);
        }
    }

    fn skip(&self, why: &str, value: &Value) {
        // The value is from a signed token, but keep the log line bounded.
        let mut shown = value.to_string();
        if shown.len() > 80 {
            let cut = (0..=80)
                .rev()
                .find(|&i| shown.is_char_boundary(i))
                .unwrap_or(0);
            shown.truncate(cut);
            shown.push('…');
        }
        warn!(subject = self.subject, value = %shown, "ignoring a role in a token: {why}");
    }
}

/// The claim `name`, or if there is none, the value at the dotted path `name` in nested objects.
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut parts = name.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
