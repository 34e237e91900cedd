//! Who calls the admin API and what they may do. The credential comes from
//! `Authorization: Bearer` or `x-api-key`: the bootstrap `admin_key` is the platform admin (every
//! endpoint); a JWT from the OIDC issuer is a person, whose roles are the token's claims plus the
//! memberships stored for their subject; a virtual key is refused (403): keys are for the data
//! plane. Every check goes through [`switchboard_core::auth::roles::allows`], the role matrix.
//!
//! Tenant isolation: a person with no role at all in an organisation gets 404 for it, exactly as
//! if it did not exist, so that the answer does not reveal which names are taken.

use super::error::ApiError;
use crate::http::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use switchboard_core::auth::grant::UserGrant;
use switchboard_core::auth::roles::{allows, Action, Role};
use switchboard_core::auth::Principal;
use switchboard_core::GatewayError;
use switchboard_store::{Actor, Org, Store};

const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The authenticated caller of an admin request. Use it as a handler argument: requests without
/// a valid credential are answered 401 before the handler runs.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who is written into the audit log: `admin_key` or `user:<subject>`.
    pub actor: Actor,
    who: Who,
}

#[derive(Clone, Debug)]
enum Who {
    Platform,
    Person(Person),
}

/// A signed-in person with the roles resolved to ids.
#[derive(Clone, Debug)]
struct Person {
    subject: String,
    /// The stored user with this subject, if there is one.
    user_id: Option<String>,
    roles: Vec<HeldRole>,
}

/// A role on an organisation (`team_id` None) or on one of its teams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldRole {
    pub org_id: String,
    pub team_id: Option<String>,
    pub role: Role,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let presented = credential(parts);
        let principal = state
            .gateway
            .snapshot()
            .auth
            .authenticate(presented.as_deref())
            .await
            .map_err(auth_error)?;
        match principal {
            Principal::Admin => Ok(Caller::platform()),
            Principal::Key(_) => Err(ApiError::forbidden(
                "virtual keys cannot use the admin API: use the `admin_key` or sign in with \
                 your identity provider's token",
            )),
            Principal::User(grant) => Caller::person(&state.runtime.store, &grant).await,
        }
    }
}

/// `Authorization: Bearer X` or `x-api-key: X`.
fn credential(parts: &Parts) -> Option<String> {
    if let Some(value) = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        if let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(token.trim().to_owned());
        }
    }
    parts
        .headers
        .get(X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
}

fn auth_error(err: GatewayError) -> ApiError {
    match err {
        GatewayError::MissingKey => ApiError::unauthorized(
            "missing_api_key",
            "no credential: send `Authorization: Bearer <admin key or token>` (or `x-api-key`)",
        ),
        GatewayError::KeyExpired => ApiError::unauthorized(
            "expired_api_key",
            "the credential has expired: sign in again",
        ),
        GatewayError::AuthUnavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "auth_unavailable",
            "credentials cannot be checked right now (the key store or the identity provider \
             is unreachable); retry shortly",
        ),
        _ => ApiError::unauthorized(
            "invalid_api_key",
            "the credential is unknown, expired or revoked",
        ),
    }
}

impl Caller {
    /// The bootstrap admin key.
    pub fn platform() -> Caller {
        Caller {
            actor: Actor::admin_key(),
            who: Who::Platform,
        }
    }

    /// A person: the token's roles (org and team names resolved to ids; names that do not
    /// exist are skipped) plus the memberships stored for the subject.
    async fn person(store: &Store, grant: &UserGrant) -> Result<Caller, ApiError> {
        let mut roles = Vec::new();
        for claimed in &grant.roles {
            let Ok(org) = store.get_org(&claimed.org).await else {
                continue;
            };
            let team_id = match &claimed.team {
                None => None,
                Some(team) => match store.get_team(&org.id, team).await {
                    Ok(team) => Some(team.id),
                    Err(_) => continue,
                },
            };
            roles.push(HeldRole {
                org_id: org.id,
                team_id,
                role: claimed.role,
            });
        }
        let user = store.find_user_by_subject(&grant.subject).await?;
        if let Some(user) = &user {
            for membership in store.memberships_of_user(&user.id).await? {
                roles.push(HeldRole {
                    org_id: membership.org_id,
                    team_id: membership.team_id,
                    role: membership.role,
                });
            }
        }
        Ok(Caller {
            actor: Actor::new(format!("user:{}", grant.subject)),
            who: Who::Person(Person {
                subject: grant.subject.clone(),
                user_id: user.map(|u| u.id),
                roles,
            }),
        })
    }

    /// A person with these roles (for tests of the checks).
    #[cfg(test)]
    pub fn with_roles(subject: &str, user_id: Option<&str>, roles: Vec<HeldRole>) -> Caller {
        Caller {
            actor: Actor::new(format!("user:{subject}")),
            who: Who::Person(Person {
                subject: subject.to_owned(),
                user_id: user_id.map(str::to_owned),
                roles,
            }),
        }
    }

    pub fn is_platform(&self) -> bool {
        matches!(self.who, Who::Platform)
    }

    /// Only the platform admin passes.
    pub fn require_platform(&self) -> Result<(), ApiError> {
        if self.is_platform() {
            Ok(())
        } else {
            Err(ApiError::platform_only())
        }
    }

    /// The OIDC subject of a person.
    pub fn subject(&self) -> Option<&str> {
        match &self.who {
            Who::Platform => None,
            Who::Person(p) => Some(&p.subject),
        }
    }

    /// The stored user id of a person, if they have one.
    pub fn user_id(&self) -> Option<&str> {
        match &self.who {
            Who::Platform => None,
            Who::Person(p) => p.user_id.as_deref(),
        }
    }

    /// The person's roles (empty for the platform admin, who needs none).
    pub fn roles(&self) -> &[HeldRole] {
        match &self.who {
            Who::Platform => &[],
            Who::Person(p) => &p.roles,
        }
    }

    /// The ids of the organisations the caller may see; `None` means all of them.
    pub fn visible_orgs(&self) -> Option<Vec<String>> {
        match &self.who {
            Who::Platform => None,
            Who::Person(p) => {
                let mut ids: Vec<String> = p.roles.iter().map(|r| r.org_id.clone()).collect();
                ids.sort();
                ids.dedup();
                Some(ids)
            }
        }
    }

    /// Whether the caller holds any role in the organisation (or is the platform admin).
    pub fn is_member(&self, org_id: &str) -> bool {
        match &self.who {
            Who::Platform => true,
            Who::Person(p) => p.roles.iter().any(|r| r.org_id == org_id),
        }
    }

    /// The organisation named `name`, if the caller may see it; 404 otherwise, whether it
    /// exists or not.
    pub async fn org(&self, store: &Store, name: &str) -> Result<Org, ApiError> {
        match store.get_org(name).await {
            Ok(org) if self.is_member(&org.id) => Ok(org),
            Ok(_) => Err(ApiError::not_found("organisation", name)),
            Err(err) => Err(err.into()),
        }
    }

    /// Whether the caller may do `action` on the organisation (`team_id` None: on the whole
    /// organisation) or on one of its teams. A role on the organisation covers its teams; a
    /// role on a team covers that team only, and never an org-wide action.
    pub fn may(&self, org_id: &str, team_id: Option<&str>, action: Action) -> bool {
        match &self.who {
            Who::Platform => true,
            Who::Person(p) => p.roles.iter().any(|held| {
                held.org_id == org_id
                    && allows(held.role, action)
                    && match held.team_id.as_deref() {
                        None => true,
                        Some(team) => !action.org_wide() && team_id == Some(team),
                    }
            }),
        }
    }

    /// [`Caller::may`] or a 403 that names the role needed and where.
    pub fn require(
        &self,
        org: &Org,
        team: Option<(&str, &str)>,
        action: Action,
    ) -> Result<(), ApiError> {
        let team_id = team.map(|(id, _)| id);
        if self.may(&org.id, team_id, action) {
            return Ok(());
        }
        let scope = match team {
            Some((_, name)) if !action.org_wide() => {
                format!("team `{name}` or on organisation `{}`", org.name)
            }
            _ => format!("organisation `{}`", org.name),
        };
        Err(ApiError::role_needed(action, &scope))
    }

    /// Whether the caller may do `action` on some team of the organisation, or on all of it.
    pub fn may_somewhere(&self, org_id: &str, action: Action) -> bool {
        match &self.who {
            Who::Platform => true,
            Who::Person(p) => p.roles.iter().any(|held| {
                held.org_id == org_id
                    && allows(held.role, action)
                    && (held.team_id.is_none() || !action.org_wide())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str) -> Org {
        Org {
            id: id.to_owned(),
            name: id.to_owned(),
            display_name: None,
            managed_by: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn held(org: &str, team: Option<&str>, role: Role) -> HeldRole {
        HeldRole {
            org_id: org.to_owned(),
            team_id: team.map(str::to_owned),
            role,
        }
    }

    #[test]
    fn team_roles_cover_their_team_only() {
        let caller = Caller::with_roles("u", None, vec![held("a", Some("t1"), Role::Admin)]);
        assert!(caller.may("a", Some("t1"), Action::ManageApps));
        assert!(!caller.may("a", Some("t2"), Action::ManageApps));
        assert!(!caller.may("a", None, Action::ManageApps));
        assert!(!caller.may("a", Some("t1"), Action::DecideSubscriptions));
        assert!(!caller.may("b", Some("t1"), Action::Read));
        assert!(caller.require(&org("a"), None, Action::ReadAudit).is_err());
    }

    #[test]
    fn org_roles_cover_every_team() {
        let caller = Caller::with_roles("u", None, vec![held("a", None, Role::Developer)]);
        assert!(caller.may("a", Some("t9"), Action::ManageKeys));
        assert!(!caller.may("a", Some("t9"), Action::ManageApps));
        let err = caller
            .require(&org("a"), Some(("t9", "nine")), Action::ManageApps)
            .unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains("`admin`"), "{}", err.message);
    }

    #[test]
    fn the_platform_admin_may_everything() {
        let caller = Caller::platform();
        assert!(caller.require_platform().is_ok());
        for action in Action::ALL {
            assert!(caller.may("any", None, action));
        }
        assert!(Caller::with_roles("u", None, vec![])
            .require_platform()
            .is_err());
    }
}
