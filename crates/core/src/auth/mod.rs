//! Who is calling, and what they may call. A credential is the bootstrap `admin_key` (full
//! rights), a virtual key (`sk-sb-...`, looked up through the [`cache::KeyCache`]), or a JWT
//! from the configured OIDC issuer (a person, with roles from the token's claims). The
//! [`Authenticator`] turns a credential into a [`Principal`]; [`Authenticator::check_model`]
//! decides whether that principal may call a model alias (allow-lists, then subscription
//! approval). The admin API's role matrix lives in `roles`.

pub mod cache;
pub mod grant;
pub mod jwt;
pub mod keys;
pub mod roles;

use crate::config::Secret;
use crate::error::GatewayError;
use grant::{KeyGrant, SubscriptionKind, SubscriptionState, UserGrant};
use roles::Role;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Principal {
    /// The bootstrap admin key: may call every model and use every admin endpoint.
    Admin,
    /// A virtual key of an app or a user.
    Key(Arc<KeyGrant>),
    /// A person signed in with a JWT from the OIDC issuer.
    User(Arc<UserGrant>),
}

/// Turns credentials into principals. Built with each config snapshot; the key cache inside
/// outlives snapshots (it belongs to the gateway).
#[derive(Clone, Debug)]
pub struct Authenticator {
    admin_key: Option<Secret>,
    keys: Option<cache::KeyCache>,
    jwt: Option<Arc<jwt::JwtVerifier>>,
}

impl Authenticator {
    pub fn new(
        admin_key: Option<Secret>,
        keys: Option<cache::KeyCache>,
        jwt: Option<Arc<jwt::JwtVerifier>>,
    ) -> Self {
        Authenticator {
            admin_key,
            keys,
            jwt,
        }
    }

    /// The OIDC verifier, if one is configured.
    pub fn jwt(&self) -> Option<&Arc<jwt::JwtVerifier>> {
        self.jwt.as_ref()
    }

    /// Who presented `presented`. The admin key is compared in constant time, so response
    /// timing does not reveal how much of a guessed key was right; virtual keys are looked up
    /// by their hash (equal hashes are a lookup, not a comparison of secrets).
    pub async fn authenticate(&self, presented: Option<&str>) -> Result<Principal, GatewayError> {
        let presented = presented
            .filter(|k| !k.is_empty())
            .ok_or(GatewayError::MissingKey)?;
        if let Some(admin) = &self.admin_key {
            if bool::from(admin.expose().as_bytes().ct_eq(presented.as_bytes())) {
                return Ok(Principal::Admin);
            }
        }
        if keys::is_virtual_key(presented) {
            if let Some(cache) = &self.keys {
                return self.virtual_key(cache, presented).await;
            }
        } else if let Some(verifier) = self.jwt.as_ref().filter(|_| jwt::looks_like_jwt(presented))
        {
            return match verifier.verify(presented).await {
                Ok(user) => Ok(Principal::User(Arc::new(user))),
                Err(jwt::JwtError::JwksUnavailable(why)) => {
                    tracing::warn!(%why, "Cannot verify a JWT: the issuer's keys are unavailable.");
                    Err(GatewayError::AuthUnavailable)
                }
                Err(err) => {
                    tracing::debug!(%err, "JWT refused.");
                    Err(GatewayError::InvalidKey)
                }
            };
        }
        Err(GatewayError::InvalidKey)
    }

    async fn virtual_key(
        &self,
        cache: &cache::KeyCache,
        presented: &str,
    ) -> Result<Principal, GatewayError> {
        let grant = match cache.get(&keys::hash(presented)).await {
            Ok(Some(grant)) => grant,
            Ok(None) => return Err(GatewayError::InvalidKey),
            Err(err) => {
                tracing::warn!(%err, "Cannot look up a virtual key.");
                return Err(GatewayError::AuthUnavailable);
            }
        };
        if grant.expires_at_ms.is_some_and(|at| at <= now_ms()) {
            return Err(GatewayError::KeyExpired);
        }
        Ok(Principal::Key(grant))
    }

    /// Whether `who` may call the model `alias`, which `requires_approval` or not. Order: the
    /// key's allow-list, then the app's subscription when approval is required. People signed
    /// in with a JWT may call models that need no approval once they hold a role of developer
    /// or above; approval-gated models are for apps (their keys) only.
    pub fn check_model(
        &self,
        who: &Principal,
        alias: &str,
        requires_approval: bool,
    ) -> Result<(), GatewayError> {
        check_access(who, SubscriptionKind::Model, alias, requires_approval)
    }

    /// Whether `who` may call the prompt API `name`, by the same rules as
    /// [`Self::check_model`] with the key's `apis` allow-list and `api` subscriptions. The API
    /// is the grant: its model alias is not checked against the key's model list.
    pub fn check_api(
        &self,
        who: &Principal,
        name: &str,
        requires_approval: bool,
    ) -> Result<(), GatewayError> {
        check_access(who, SubscriptionKind::Api, name, requires_approval)
    }

    /// Whether `alias` would pass [`Self::check_model`] (for `GET /v1/models`): listed and, if
    /// gated, approved.
    pub fn may_call(&self, who: &Principal, alias: &str, requires_approval: bool) -> bool {
        self.check_model(who, alias, requires_approval).is_ok()
    }
}

/// The rules of [`Authenticator::check_model`] for a model alias or a prompt API.
fn check_access(
    who: &Principal,
    kind: SubscriptionKind,
    name: &str,
    requires_approval: bool,
) -> Result<(), GatewayError> {
    let not_allowed = || match kind {
        SubscriptionKind::Model => GatewayError::ModelNotAllowed(name.to_owned()),
        SubscriptionKind::Api => GatewayError::ApiNotAllowed(name.to_owned()),
    };
    match who {
        Principal::Admin => Ok(()),
        Principal::Key(grant) => {
            let listed = match kind {
                SubscriptionKind::Model => grant.lists_model(name),
                SubscriptionKind::Api => grant.lists_api(name),
            };
            if !listed {
                return Err(not_allowed());
            }
            if !requires_approval {
                return Ok(());
            }
            subscribed(grant, kind, name)
        }
        Principal::User(user) => {
            if !user.roles.iter().any(|r| r.role.at_least(Role::Developer)) {
                return Err(not_allowed());
            }
            if requires_approval {
                return Err(GatewayError::ApprovalRequired(name.to_owned()));
            }
            Ok(())
        }
    }
}

/// Whether the app of `grant` holds an approved subscription to `target`.
fn subscribed(grant: &KeyGrant, kind: SubscriptionKind, target: &str) -> Result<(), GatewayError> {
    match grant.subscription(kind, target) {
        Some(SubscriptionState::Approved) => Ok(()),
        Some(SubscriptionState::Pending) => {
            Err(GatewayError::SubscriptionPending(target.to_owned()))
        }
        Some(SubscriptionState::Rejected { reason }) => Err(GatewayError::SubscriptionRejected {
            alias: target.to_owned(),
            reason: reason.clone(),
        }),
        None => Err(GatewayError::ApprovalRequired(target.to_owned())),
    }
}

use switchboard_types::calendar::now_ms;

#[cfg(test)]
mod tests;
