//! Authentication and the model check, without storage: a fake lookup stands in for the store.

#![allow(clippy::unwrap_used, reason = "tests")]

use super::grant::{KeyLookup, LookupError, RoleGrant};
use super::keys::KeyHash;
use super::*;
use std::collections::BTreeMap;

#[derive(Debug)]
struct OneKey {
    hash: KeyHash,
    grant: KeyGrant,
}

#[async_trait::async_trait]
impl KeyLookup for OneKey {
    async fn find_key(&self, hash: &KeyHash) -> Result<Option<KeyGrant>, LookupError> {
        Ok((*hash == self.hash).then(|| self.grant.clone()))
    }
}

fn grant() -> KeyGrant {
    KeyGrant {
        key_id: "key_1".into(),
        prefix: "sk-sb-abcdefgh".into(),
        org_id: "org_1".into(),
        org: "acme".into(),
        team_id: Some("team_1".into()),
        team: Some("research".into()),
        app_id: Some("app_1".into()),
        app: Some("notebook".into()),
        user_id: None,
        models: Some(vec!["gpt-4o".into(), "claude".into(), "gated".into()]),
        apis: None,
        expires_at_ms: None,
        subscriptions: BTreeMap::new(),
        metadata: Default::default(),
    }
}

fn auth_with(grant: KeyGrant) -> (Authenticator, String) {
    let new = keys::generate();
    let lookup = OneKey {
        hash: new.hash.clone(),
        grant,
    };
    let cache = cache::KeyCache::new(Arc::new(lookup), cache::DEFAULT_TTL);
    let auth = Authenticator::new(Some(Secret("sk-admin".into())), Some(cache), None);
    (auth, new.secret.expose().to_owned())
}

#[tokio::test]
async fn admin_key_is_accepted_and_others_rejected() {
    let auth = Authenticator::new(Some(Secret("sk-admin".into())), None, None);
    assert_eq!(
        auth.authenticate(Some("sk-admin")).await.unwrap(),
        Principal::Admin
    );
    for (presented, code) in [
        (Some("sk-other"), "invalid_api_key"),
        (Some("sk-sb-unknown"), "invalid_api_key"),
        (Some(""), "missing_api_key"),
        (None, "missing_api_key"),
    ] {
        let err = auth.authenticate(presented).await.unwrap_err();
        assert_eq!(err.code(), code, "{presented:?}");
    }
}

#[tokio::test]
async fn no_admin_key_rejects_everything() {
    let auth = Authenticator::new(None, None, None);
    assert!(matches!(
        auth.authenticate(Some("x")).await,
        Err(GatewayError::InvalidKey)
    ));
}

#[tokio::test]
async fn virtual_keys_authenticate_until_they_expire() {
    let (auth, key) = auth_with(grant());
    let who = auth.authenticate(Some(&key)).await.unwrap();
    assert!(matches!(&who, Principal::Key(g) if g.app.as_deref() == Some("notebook")));
    let wrong = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(
        auth.authenticate(Some(&wrong)).await.unwrap_err().code(),
        "invalid_api_key"
    );

    let expired = KeyGrant {
        expires_at_ms: Some(now_ms() - 1),
        ..grant()
    };
    let (auth, key) = auth_with(expired);
    let err = auth.authenticate(Some(&key)).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (401, "expired_api_key"));
}

#[tokio::test]
async fn model_checks_follow_the_allow_list_then_the_subscription() {
    let mut g = grant();
    let (auth, _) = auth_with(g.clone());
    let who = Principal::Key(Arc::new(g.clone()));
    assert!(auth.check_model(&who, "gpt-4o", false).is_ok());
    let err = auth.check_model(&who, "other", false).unwrap_err();
    assert_eq!((err.status(), err.code()), (403, "model_not_allowed"));
    let err = auth.check_model(&who, "gated", true).unwrap_err();
    assert_eq!((err.status(), err.code()), (403, "approval_required"));

    for (state, code) in [
        (SubscriptionState::Pending, Some("subscription_pending")),
        (
            SubscriptionState::Rejected {
                reason: Some("too costly".into()),
            },
            Some("subscription_rejected"),
        ),
        (SubscriptionState::Approved, None),
    ] {
        g.subscriptions
            .insert((SubscriptionKind::Model, "gated".into()), state);
        let who = Principal::Key(Arc::new(g.clone()));
        let result = auth.check_model(&who, "gated", true);
        assert_eq!(result.as_ref().err().map(GatewayError::code), code);
        if let Err(err) = result {
            assert_eq!(err.status(), 403);
            assert!(err.to_string().contains("gated"), "{err}");
        }
    }
    assert!(auth.check_model(&Principal::Admin, "gated", true).is_ok());
}

#[tokio::test]
async fn people_with_a_developer_role_may_call_ungated_models() {
    let auth = Authenticator::new(None, None, None);
    let user = |role| {
        Principal::User(Arc::new(UserGrant {
            subject: "u1".into(),
            email: None,
            roles: vec![RoleGrant {
                org: "acme".into(),
                team: None,
                role,
            }],
        }))
    };
    assert!(auth.check_model(&user(Role::Developer), "m", false).is_ok());
    assert!(auth.check_model(&user(Role::Owner), "m", false).is_ok());
    assert_eq!(
        auth.check_model(&user(Role::Viewer), "m", false)
            .unwrap_err()
            .code(),
        "model_not_allowed"
    );
    assert_eq!(
        auth.check_model(&user(Role::Admin), "m", true)
            .unwrap_err()
            .code(),
        "approval_required"
    );
}

#[test]
fn api_access_follows_the_apis_allow_list_and_api_subscriptions() {
    let auth = Authenticator::new(None, None, None);
    let mut g = grant();
    // No `apis` list: every API; the key's model list does not matter to APIs.
    let who = Principal::Key(Arc::new(g.clone()));
    assert!(auth.check_api(&who, "summarize", false).is_ok());
    g.apis = Some(vec!["summarize".into(), "gated-api".into()]);
    g.subscriptions.insert(
        (SubscriptionKind::Model, "gated-api".into()),
        SubscriptionState::Approved,
    );
    let who = Principal::Key(Arc::new(g.clone()));
    assert!(auth.check_api(&who, "summarize", false).is_ok());
    let err = auth.check_api(&who, "other", false).unwrap_err();
    assert_eq!(err.code(), "api_not_allowed");
    assert_eq!(err.status(), 403);
    // A model subscription of the same name is not an API subscription.
    let err = auth.check_api(&who, "gated-api", true).unwrap_err();
    assert_eq!(err.code(), "approval_required");
    g.subscriptions.insert(
        (SubscriptionKind::Api, "gated-api".into()),
        SubscriptionState::Pending,
    );
    let who = Principal::Key(Arc::new(g.clone()));
    assert_eq!(
        auth.check_api(&who, "gated-api", true).unwrap_err().code(),
        "subscription_pending"
    );
    g.subscriptions.insert(
        (SubscriptionKind::Api, "gated-api".into()),
        SubscriptionState::Approved,
    );
    let who = Principal::Key(Arc::new(g));
    assert!(auth.check_api(&who, "gated-api", true).is_ok());
    assert!(auth.check_api(&Principal::Admin, "anything", true).is_ok());
}
