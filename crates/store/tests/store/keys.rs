//! Virtual keys: creation and its checks, revoke, rotation with a grace period, updates,
//! listing, tenant isolation, audit rows and change notifications. Also the shared fixture
//! (an org with a team and an app) the subscription and access tests use.

use crate::common::{admin, TestDb};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_core::auth::grant::KeyLookup;
use switchboard_core::auth::keys::{hash, KeyHash};
use switchboard_store::{
    App, Change, CreatedKey, KeyFilter, KeyPatch, NewApp, NewKey, NewOrg, NewTeam, Org,
    PageRequest, Store, StoreError, Team,
};

both!(
    key_lifecycle,
    rotation_keeps_the_old_key_for_the_grace_period,
    updates_change_the_grant,
    bad_input_is_refused,
    keys_of_another_org_are_not_found,
    listing_filters_and_pages,
    key_changes_are_audited_and_published,
);

/// An org with one team and one app.
pub struct Tenant {
    pub org: Org,
    pub team: Team,
    pub app: App,
}

/// Makes org `name` with team `core` and app `web` (allowed `models`, every API).
pub async fn tenant(store: &Store, name: &str, models: Option<&[&str]>) -> Tenant {
    let org = store
        .create_org(
            &admin(),
            NewOrg {
                name: name.to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let team = store
        .create_team(
            &admin(),
            &org.id,
            NewTeam {
                name: "core".to_owned(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let app = store
        .create_app(
            &admin(),
            &org.id,
            &team.id,
            NewApp {
                name: "web".to_owned(),
                models: models.map(strings),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Tenant { org, team, app }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A key request for the tenant's app.
pub fn app_key(t: &Tenant, name: &str) -> NewKey {
    NewKey {
        org_id: t.org.id.clone(),
        app_id: Some(t.app.id.clone()),
        name: name.to_owned(),
        ..Default::default()
    }
}

pub fn hash_of(key: &CreatedKey) -> KeyHash {
    hash(key.secret.expose())
}

pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

const HOUR: i64 = 3_600_000;

async fn key_lifecycle(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let mut new = app_key(&t, "ci");
    new.metadata = json!({"owner": "ops"}).as_object().unwrap().clone();
    let created = store.create_key(&admin(), new).await.unwrap();
    let record = &created.record;
    assert!(created.secret.expose().starts_with("sk-sb-"));
    assert!(created.secret.expose().starts_with(&record.prefix));
    assert_eq!(record.org_id, t.org.id);
    assert_eq!(record.team_id.as_deref(), Some(t.team.id.as_str()));
    assert_eq!(record.app_id.as_deref(), Some(t.app.id.as_str()));
    assert_eq!(record.created_by, "admin_key");
    assert!(record.is_active(now_ms()));

    let grant = store.find_key(&hash_of(&created)).await.unwrap().unwrap();
    assert_eq!(grant.key_id, record.id);
    assert_eq!(grant.prefix, record.prefix);
    assert_eq!(grant.org, "acme");
    assert_eq!(grant.team.as_deref(), Some("core"));
    assert_eq!(grant.app.as_deref(), Some("web"));
    assert_eq!(grant.models, None);
    assert_eq!(grant.metadata.get("owner"), Some(&json!("ops")));
    assert_eq!(store.get_key(&t.org.id, &record.id).await.unwrap(), *record);

    let revoked = store
        .revoke_key(&admin(), &t.org.id, &record.id)
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.is_active(now_ms()));
    assert_eq!(store.find_key(&hash_of(&created)).await.unwrap(), None);
    // Revoking again changes nothing; a revoked key cannot be rotated or edited.
    let again = store
        .revoke_key(&admin(), &t.org.id, &record.id)
        .await
        .unwrap();
    assert_eq!(again, revoked);
    assert!(matches!(
        store.rotate_key(&admin(), &t.org.id, &record.id, 0).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .update_key(&admin(), &t.org.id, &record.id, rename("x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // An unknown key is no grant.
    assert_eq!(store.find_key(&hash("sk-sb-unknown")).await.unwrap(), None);
}

fn rename(name: &str) -> KeyPatch {
    KeyPatch {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

async fn rotation_keeps_the_old_key_for_the_grace_period(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let mut new = app_key(&t, "ci");
    new.models = Some(strings(&["gpt"]));
    new.expires_at = Some(now_ms() + 24 * HOUR);
    let old = store.create_key(&admin(), new).await.unwrap();

    let before = now_ms();
    let next = store
        .rotate_key(&admin(), &t.org.id, &old.record.id, HOUR)
        .await
        .unwrap();
    let after = now_ms();
    assert_ne!(next.record.id, old.record.id);
    assert_ne!(next.secret.expose(), old.secret.expose());
    assert_eq!(next.record.name, "ci");
    assert_eq!(next.record.models, old.record.models);
    assert_eq!(next.record.app_id, old.record.app_id);
    assert_eq!(next.record.expires_at, old.record.expires_at);

    // Both keys work; the old one until the end of the grace period.
    let old_grant = store.find_key(&hash_of(&old)).await.unwrap().unwrap();
    let new_grant = store.find_key(&hash_of(&next)).await.unwrap().unwrap();
    assert_eq!(new_grant.key_id, next.record.id);
    let deadline = old_grant.expires_at_ms.unwrap();
    assert!(deadline >= before + HOUR && deadline <= after + HOUR);
    let old_record = store.get_key(&t.org.id, &old.record.id).await.unwrap();
    assert_eq!(
        old_record.rotated_to.as_deref(),
        Some(next.record.id.as_str())
    );
    assert_eq!(old_record.expires_at, Some(deadline));

    // A rotated key is not rotated twice; the successor can be.
    assert!(matches!(
        store
            .rotate_key(&admin(), &t.org.id, &old.record.id, HOUR)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // The grace never extends a key: a sooner expiry stays.
    let third = store
        .rotate_key(&admin(), &t.org.id, &next.record.id, 48 * HOUR)
        .await
        .unwrap();
    let kept = store.get_key(&t.org.id, &next.record.id).await.unwrap();
    assert_eq!(kept.expires_at, next.record.expires_at);
    // No grace: the old key stops at once (expired keys are still returned, with the deadline).
    let stopped = store
        .rotate_key(&admin(), &t.org.id, &third.record.id, 0)
        .await
        .unwrap();
    let grant = store.find_key(&hash_of(&third)).await.unwrap().unwrap();
    assert!(grant.expires_at_ms.unwrap() <= now_ms());
    assert!(store.find_key(&hash_of(&stopped)).await.unwrap().is_some());
    assert!(matches!(
        store
            .rotate_key(&admin(), &t.org.id, &stopped.record.id, -1)
            .await,
        Err(StoreError::Invalid(_))
    ));
}

async fn updates_change_the_grant(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let key = store.create_key(&admin(), app_key(&t, "ci")).await.unwrap();
    let expires = now_ms() + HOUR;
    let updated = store
        .update_key(
            &admin(),
            &t.org.id,
            &key.record.id,
            KeyPatch {
                name: Some("deploy".to_owned()),
                models: Some(Some(strings(&["gpt", "claude"]))),
                apis: Some(Some(strings(&["summarise"]))),
                metadata: Some(json!({"ticket": 7}).as_object().unwrap().clone()),
                expires_at: Some(Some(expires)),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "deploy");
    assert_eq!(updated.expires_at, Some(expires));
    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(grant.models, Some(strings(&["gpt", "claude"])));
    assert_eq!(grant.apis, Some(strings(&["summarise"])));
    assert_eq!(grant.expires_at_ms, Some(expires));
    assert_eq!(grant.metadata.get("ticket"), Some(&json!(7)));

    // Clearing the lists and the expiry.
    let cleared = store
        .update_key(
            &admin(),
            &t.org.id,
            &key.record.id,
            KeyPatch {
                models: Some(None),
                expires_at: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.models, None);
    assert_eq!(cleared.expires_at, None);
    assert_eq!(cleared.apis, Some(strings(&["summarise"])));
    assert_eq!(
        store.get_key(&t.org.id, &key.record.id).await.unwrap(),
        cleared
    );

    for bad in [
        rename(" "),
        KeyPatch {
            expires_at: Some(Some(now_ms() - 1)),
            ..Default::default()
        },
        KeyPatch {
            models: Some(Some(strings(&[""]))),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            store
                .update_key(&admin(), &t.org.id, &key.record.id, bad)
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
}

async fn bad_input_is_refused(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let other = tenant(store, "globex", None).await;
    let invalid = |new: NewKey| async move { store.create_key(&admin(), new).await };

    let mut neither = app_key(&t, "k");
    neither.app_id = None;
    assert!(matches!(
        invalid(neither).await,
        Err(StoreError::Invalid(_))
    ));
    let mut both = app_key(&t, "k");
    both.user_id = Some("user_x".to_owned());
    assert!(matches!(invalid(both).await, Err(StoreError::Invalid(_))));
    let mut empty = app_key(&t, "k");
    empty.name = "  ".to_owned();
    assert!(matches!(invalid(empty).await, Err(StoreError::Invalid(_))));
    let mut past = app_key(&t, "k");
    past.expires_at = Some(now_ms() - 1000);
    assert!(matches!(invalid(past).await, Err(StoreError::Invalid(_))));
    let mut wrong_team = app_key(&t, "k");
    wrong_team.team_id = Some(other.team.id.clone());
    assert!(matches!(
        invalid(wrong_team).await,
        Err(StoreError::Invalid(_))
    ));
    // Another org's app is not found from this org.
    let mut foreign = app_key(&t, "k");
    foreign.app_id = Some(other.app.id.clone());
    assert!(matches!(
        invalid(foreign).await,
        Err(StoreError::NotFound { kind: "app", .. })
    ));
    // A user who is not a member of the org gets no key in it.
    let mut stranger = app_key(&t, "k");
    stranger.app_id = None;
    stranger.user_id = Some("user_nobody".to_owned());
    assert!(matches!(
        invalid(stranger).await,
        Err(StoreError::Invalid(_))
    ));
    let page = store
        .list_keys(&t.org.id, &KeyFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert!(page.items.is_empty());
}

async fn keys_of_another_org_are_not_found(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", None).await;
    let b = tenant(store, "globex", None).await;
    let theirs = store.create_key(&admin(), app_key(&b, "b")).await.unwrap();
    let id = &theirs.record.id;
    let not_found = |r: Result<_, StoreError>| matches!(r, Err(StoreError::NotFound { .. }));

    assert!(not_found(store.get_key(&a.org.id, id).await));
    assert!(not_found(store.revoke_key(&admin(), &a.org.id, id).await));
    assert!(not_found(
        store
            .rotate_key(&admin(), &a.org.id, id, HOUR)
            .await
            .map(|k| k.record)
    ));
    assert!(not_found(
        store.update_key(&admin(), &a.org.id, id, rename("x")).await
    ));
    let listed = store
        .list_keys(&a.org.id, &KeyFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    // Untouched and still working in its own org.
    let grant = store.find_key(&hash_of(&theirs)).await.unwrap().unwrap();
    assert_eq!(grant.org, "globex");
    assert_eq!(store.get_key(&b.org.id, id).await.unwrap(), theirs.record);
}

async fn listing_filters_and_pages(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let second = store
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
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(
            store
                .create_key(&admin(), app_key(&t, name))
                .await
                .unwrap()
                .record
                .id,
        );
    }
    let mut other = app_key(&t, "d");
    other.app_id = Some(second.id.clone());
    let other = store.create_key(&admin(), other).await.unwrap();
    ids.push(other.record.id.clone());
    store
        .revoke_key(&admin(), &t.org.id, &ids[1])
        .await
        .unwrap();

    let all = KeyFilter {
        include_revoked: true,
        ..Default::default()
    };
    let first = store
        .list_keys(
            &t.org.id,
            &all,
            &PageRequest {
                limit: Some(3),
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(|k| &k.id).collect::<Vec<_>>(),
        ids[..3].iter().collect::<Vec<_>>()
    );
    let cursor = first.next_cursor.clone().expect("more keys follow");
    let rest = store
        .list_keys(
            &t.org.id,
            &all,
            &PageRequest {
                limit: Some(3),
                cursor: Some(cursor),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, ids[3]);
    assert_eq!(rest.next_cursor, None);

    let active = store
        .list_keys(&t.org.id, &KeyFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(active.items.len(), 3);
    assert!(active.items.iter().all(|k| k.revoked_at.is_none()));
    let of_app = store
        .list_keys(
            &t.org.id,
            &KeyFilter {
                app_id: Some(second.id.clone()),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(of_app.items, vec![other.record]);
    let of_team = store
        .list_keys(
            &t.org.id,
            &KeyFilter {
                team_id: Some(t.team.id.clone()),
                include_revoked: true,
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(of_team.items.len(), 4);
}

async fn key_changes_are_audited_and_published(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let mut changes = store.subscribe();
    let key = store.create_key(&admin(), app_key(&t, "ci")).await.unwrap();
    assert_eq!(changes.try_recv().unwrap(), Change::Access);
    let next = store
        .rotate_key(&admin(), &t.org.id, &key.record.id, HOUR)
        .await
        .unwrap();
    assert_eq!(changes.try_recv().unwrap(), Change::Access);
    store
        .update_key(&admin(), &t.org.id, &next.record.id, rename("renamed"))
        .await
        .unwrap();
    assert_eq!(changes.try_recv().unwrap(), Change::Access);
    store
        .revoke_key(&admin(), &t.org.id, &next.record.id)
        .await
        .unwrap();
    assert_eq!(changes.try_recv().unwrap(), Change::Access);

    let audit = store
        .list_audit(Some(&t.org.id), &PageRequest::default())
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .items
        .iter()
        .filter(|e| e.object_kind == "key")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "key.create",
            "key.rotate",
            "key.create",
            "key.update",
            "key.revoke"
        ]
    );
    // The records are there, never a secret or a hash.
    let text = serde_json::to_string(&audit.items).unwrap();
    for secret in [key.secret.expose(), next.secret.expose()] {
        assert!(!text.contains(secret));
        assert!(!text.contains(&hash(secret).0));
    }
    let revoke = audit
        .items
        .iter()
        .find(|e| e.action == "key.revoke")
        .unwrap();
    assert_eq!(revoke.object_id, next.record.id);
    assert_eq!(revoke.before.as_ref().unwrap()["revoked_at"], json!(null));
    assert!(revoke.after.as_ref().unwrap()["revoked_at"].is_i64());
    assert!(store.verify_audit().await.unwrap().is_ok());
}
