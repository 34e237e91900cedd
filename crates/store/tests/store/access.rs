//! The data plane's lookup (`KeyLookup::find_key`): effective model and API lists (the key's
//! list within its app's), expired and deleted keys, and that a grant only carries its own
//! app's subscriptions; keys of users.

use crate::common::{admin, TestDb};
use crate::keys::{app_key, hash_of, now_ms, strings, tenant};
use switchboard_core::auth::grant::KeyLookup;
use switchboard_core::auth::roles::Role;
use switchboard_store::{
    AppPatch, KeyPatch, NewApp, NewKey, NewUser, StoreError, SubscriptionKind,
};

both!(
    effective_lists_are_the_intersection,
    grants_follow_the_app,
    expired_keys_are_returned_with_their_deadline,
    user_keys_need_a_membership_and_carry_the_user,
);

async fn effective_lists_are_the_intersection(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", Some(&["gpt", "claude"])).await;
    let mut narrow = app_key(&t, "narrow");
    narrow.models = Some(strings(&["llama", "claude"]));
    narrow.apis = Some(strings(&["summarise", "translate"]));
    let narrow = store.create_key(&admin(), narrow).await.unwrap();
    let open = store
        .create_key(&admin(), app_key(&t, "open"))
        .await
        .unwrap();

    // The key names llama, but its app does not allow it.
    let grant = store.find_key(&hash_of(&narrow)).await.unwrap().unwrap();
    assert_eq!(grant.models, Some(strings(&["claude"])));
    assert!(grant.lists_model("claude"));
    assert!(!grant.lists_model("llama"));
    assert!(!grant.lists_model("gpt"));
    // The app allows every API: the key's own list applies.
    assert_eq!(grant.apis, Some(strings(&["summarise", "translate"])));
    // No list on the key: the app's.
    let grant = store.find_key(&hash_of(&open)).await.unwrap().unwrap();
    assert_eq!(grant.models, Some(strings(&["gpt", "claude"])));
    assert_eq!(grant.apis, None);

    // Changing the app changes every key's grant.
    store
        .update_app(
            &admin(),
            &t.org.id,
            &t.team.id,
            "web",
            AppPatch {
                models: Some(None),
                apis: Some(Some(strings(&["translate"]))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let grant = store.find_key(&hash_of(&narrow)).await.unwrap().unwrap();
    assert_eq!(grant.models, Some(strings(&["llama", "claude"])));
    assert_eq!(grant.apis, Some(strings(&["translate"])));
    let grant = store.find_key(&hash_of(&open)).await.unwrap().unwrap();
    assert_eq!(grant.models, None);
    assert!(grant.lists_model("anything"));

    // A key whose list has nothing in common with its app's may call nothing.
    store
        .update_key(
            &admin(),
            &t.org.id,
            &narrow.record.id,
            KeyPatch {
                apis: Some(Some(strings(&["summarise"]))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let grant = store.find_key(&hash_of(&narrow)).await.unwrap().unwrap();
    assert_eq!(grant.apis, Some(Vec::new()));
}

async fn grants_follow_the_app(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let other_app = store
        .create_app(
            &admin(),
            &t.org.id,
            &t.team.id,
            NewApp {
                name: "batch".to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key = store.create_key(&admin(), app_key(&t, "ci")).await.unwrap();
    // Subscriptions of another app (same org) and of another org's app never show.
    store
        .request_subscription(
            &admin(),
            &t.org.id,
            &other_app.id,
            SubscriptionKind::Model,
            "gpt",
        )
        .await
        .unwrap();
    let b = tenant(store, "globex", None).await;
    store
        .request_subscription(
            &admin(),
            &b.org.id,
            &b.app.id,
            SubscriptionKind::Model,
            "gpt",
        )
        .await
        .unwrap();
    let mine = store
        .request_subscription(
            &admin(),
            &t.org.id,
            &t.app.id,
            SubscriptionKind::Model,
            "claude",
        )
        .await
        .unwrap();
    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(grant.subscriptions.len(), 1);
    assert!(grant
        .subscription(SubscriptionKind::Model, "claude")
        .is_some());
    assert!(grant.subscription(SubscriptionKind::Model, "gpt").is_none());
    assert_eq!(grant.org_id, t.org.id);
    assert_eq!(grant.team_id.as_deref(), Some(t.team.id.as_str()));
    assert_eq!(grant.app_id.as_deref(), Some(t.app.id.as_str()));
    assert_eq!(grant.user_id, None);
    store
        .approve_subscription(&admin(), &t.org.id, &mine.id)
        .await
        .unwrap();

    // Deleting the app deletes its keys: the key no longer authenticates.
    store
        .delete_app(&admin(), &t.org.id, &t.team.id, "web")
        .await
        .unwrap();
    assert_eq!(store.find_key(&hash_of(&key)).await.unwrap(), None);
}

async fn expired_keys_are_returned_with_their_deadline(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let mut soon = app_key(&t, "soon");
    let deadline = now_ms() + 1_000;
    soon.expires_at = Some(deadline);
    let key = store.create_key(&admin(), soon).await.unwrap();
    // Expiry is the caller's check (a cached grant must expire on time without a lookup), so
    // the store hands out the deadline rather than hiding the key.
    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(grant.expires_at_ms, Some(deadline));
    let rotated = store
        .rotate_key(&admin(), &t.org.id, &key.record.id, 0)
        .await
        .unwrap();
    let old = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert!(old.expires_at_ms.unwrap() <= now_ms());
    let new = store.find_key(&hash_of(&rotated)).await.unwrap().unwrap();
    assert_eq!(new.expires_at_ms, Some(deadline));
}

async fn user_keys_need_a_membership_and_carry_the_user(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", Some(&["gpt"])).await;
    let b = tenant(store, "globex", None).await;
    let user = store
        .upsert_user(
            &admin(),
            NewUser {
                subject: "alice".to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let user_key = |org_id: &str, team_id: Option<&str>| NewKey {
        org_id: org_id.to_owned(),
        team_id: team_id.map(str::to_owned),
        user_id: Some(user.id.clone()),
        name: "laptop".to_owned(),
        models: Some(strings(&["claude"])),
        ..Default::default()
    };
    // Not a member of acme yet.
    assert!(matches!(
        store.create_key(&admin(), user_key(&t.org.id, None)).await,
        Err(StoreError::Invalid(_))
    ));
    store
        .add_membership(&admin(), &user.id, &t.org.id, None, Role::Developer)
        .await
        .unwrap();
    // Member of acme, not of globex; and a team must be of the key's org.
    assert!(matches!(
        store.create_key(&admin(), user_key(&b.org.id, None)).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .create_key(&admin(), user_key(&t.org.id, Some(&b.team.id)))
            .await,
        Err(StoreError::NotFound { kind: "team", .. })
    ));

    let whole_org = store
        .create_key(&admin(), user_key(&t.org.id, None))
        .await
        .unwrap();
    let grant = store.find_key(&hash_of(&whole_org)).await.unwrap().unwrap();
    assert_eq!(grant.user_id.as_deref(), Some(user.id.as_str()));
    assert_eq!(grant.app_id, None);
    assert_eq!(grant.app, None);
    assert_eq!(grant.team, None);
    assert!(grant.subscriptions.is_empty());
    // No app to narrow it: the key's own list.
    assert_eq!(grant.models, Some(strings(&["claude"])));

    let in_team = store
        .create_key(&admin(), user_key(&t.org.id, Some(&t.team.id)))
        .await
        .unwrap();
    let grant = store.find_key(&hash_of(&in_team)).await.unwrap().unwrap();
    assert_eq!(grant.team.as_deref(), Some("core"));
    assert_eq!(grant.team_id.as_deref(), Some(t.team.id.as_str()));
}
