//! Subscriptions: request, approve, reject with a reason, request again, how each state shows
//! in a key's grant, listing, bad input, and tenant isolation.

use crate::common::{admin, TestDb};
use crate::keys::{app_key, hash_of, tenant};
use switchboard_core::auth::grant::{KeyLookup, SubscriptionState};
use switchboard_store::{
    Actor, Change, PageRequest, StoreError, SubscriptionFilter, SubscriptionKind,
    SubscriptionStatus,
};

both!(
    approval_flow,
    subscriptions_of_another_org_are_not_found,
    listing_and_bad_input,
);

async fn approval_flow(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let key = store.create_key(&admin(), app_key(&t, "ci")).await.unwrap();
    let developer = Actor::new("user:dev");
    let owner = Actor::new("user:boss");
    let mut changes = store.subscribe();
    let state = |grant: &switchboard_core::auth::grant::KeyGrant| {
        grant
            .subscription(SubscriptionKind::Model, "gpt-5")
            .cloned()
    };

    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(state(&grant), None);

    let asked = store
        .request_subscription(
            &developer,
            &t.org.id,
            &t.app.id,
            SubscriptionKind::Model,
            "gpt-5",
        )
        .await
        .unwrap();
    assert_eq!(changes.try_recv().unwrap(), Change::Access);
    assert_eq!(asked.status, SubscriptionStatus::Pending);
    assert_eq!(asked.team_id, t.team.id);
    assert_eq!(asked.requested_by, "user:dev");
    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(state(&grant), Some(SubscriptionState::Pending));
    // Asking again while pending is the same request.
    let again = store
        .request_subscription(
            &developer,
            &t.org.id,
            &t.app.id,
            SubscriptionKind::Model,
            "gpt-5",
        )
        .await
        .unwrap();
    assert_eq!(again, asked);

    let approved = store
        .approve_subscription(&owner, &t.org.id, &asked.id)
        .await
        .unwrap();
    assert_eq!(changes.try_recv().unwrap(), Change::Access);
    assert_eq!(approved.status, SubscriptionStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("user:boss"));
    assert!(approved.decided_at.is_some());
    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(state(&grant), Some(SubscriptionState::Approved));
    assert!(matches!(
        store
            .approve_subscription(&owner, &t.org.id, &asked.id)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .request_subscription(
                &developer,
                &t.org.id,
                &t.app.id,
                SubscriptionKind::Model,
                "gpt-5"
            )
            .await,
        Err(StoreError::Conflict(_))
    ));

    let rejected = store
        .reject_subscription(&owner, &t.org.id, &asked.id, Some("too costly".to_owned()))
        .await
        .unwrap();
    assert_eq!(rejected.status, SubscriptionStatus::Rejected);
    assert_eq!(rejected.reason.as_deref(), Some("too costly"));
    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(
        state(&grant),
        Some(SubscriptionState::Rejected {
            reason: Some("too costly".to_owned())
        })
    );
    assert!(matches!(
        store
            .reject_subscription(&owner, &t.org.id, &asked.id, None)
            .await,
        Err(StoreError::Conflict(_))
    ));

    // Asking again after a rejection: the same subscription, pending again, reason cleared.
    let renewed = store
        .request_subscription(
            &developer,
            &t.org.id,
            &t.app.id,
            SubscriptionKind::Model,
            "gpt-5",
        )
        .await
        .unwrap();
    assert_eq!(renewed.id, asked.id);
    assert_eq!(renewed.status, SubscriptionStatus::Pending);
    assert_eq!(renewed.reason, None);
    assert_eq!(renewed.decided_by, None);
    assert_eq!(
        store.get_subscription(&t.org.id, &asked.id).await.unwrap(),
        renewed
    );

    // An API subscription is separate from the model one.
    store
        .request_subscription(
            &developer,
            &t.org.id,
            &t.app.id,
            SubscriptionKind::Api,
            "gpt-5",
        )
        .await
        .unwrap();
    let grant = store.find_key(&hash_of(&key)).await.unwrap().unwrap();
    assert_eq!(grant.subscriptions.len(), 2);
    assert_eq!(
        grant.subscription(SubscriptionKind::Api, "gpt-5"),
        Some(&SubscriptionState::Pending)
    );

    let audit = store
        .list_audit(Some(&t.org.id), &PageRequest::default())
        .await
        .unwrap();
    let actions: Vec<&str> = audit
        .items
        .iter()
        .filter(|e| e.object_kind == "subscription")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "subscription.request",
            "subscription.approve",
            "subscription.reject",
            "subscription.request",
            "subscription.request"
        ]
    );
    assert!(store.verify_audit().await.unwrap().is_ok());
}

async fn subscriptions_of_another_org_are_not_found(db: &TestDb) {
    let store = &db.store;
    let a = tenant(store, "acme", None).await;
    let b = tenant(store, "globex", None).await;
    let theirs = store
        .request_subscription(
            &admin(),
            &b.org.id,
            &b.app.id,
            SubscriptionKind::Model,
            "gpt-5",
        )
        .await
        .unwrap();
    let not_found = |r: Result<_, StoreError>| matches!(r, Err(StoreError::NotFound { .. }));
    assert!(not_found(
        store.get_subscription(&a.org.id, &theirs.id).await
    ));
    assert!(not_found(
        store
            .approve_subscription(&admin(), &a.org.id, &theirs.id)
            .await
    ));
    assert!(not_found(
        store
            .reject_subscription(&admin(), &a.org.id, &theirs.id, None)
            .await
    ));
    // Nor can org A ask on behalf of B's app.
    assert!(not_found(
        store
            .request_subscription(&admin(), &a.org.id, &b.app.id, SubscriptionKind::Model, "x")
            .await
    ));
    let listed = store
        .list_subscriptions(
            &a.org.id,
            &SubscriptionFilter::default(),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let untouched = store.get_subscription(&b.org.id, &theirs.id).await.unwrap();
    assert_eq!(untouched, theirs);
}

async fn listing_and_bad_input(db: &TestDb) {
    let store = &db.store;
    let t = tenant(store, "acme", None).await;
    let mut ids = Vec::new();
    for target in ["a", "b", "c"] {
        let s = store
            .request_subscription(
                &admin(),
                &t.org.id,
                &t.app.id,
                SubscriptionKind::Model,
                target,
            )
            .await
            .unwrap();
        ids.push(s.id);
    }
    store
        .approve_subscription(&admin(), &t.org.id, &ids[1])
        .await
        .unwrap();

    let first = store
        .list_subscriptions(
            &t.org.id,
            &SubscriptionFilter::default(),
            &PageRequest {
                limit: Some(2),
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.items[0].id, ids[0]);
    let rest = store
        .list_subscriptions(
            &t.org.id,
            &SubscriptionFilter::default(),
            &PageRequest {
                limit: Some(2),
                cursor: first.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, ids[2]);
    assert_eq!(rest.next_cursor, None);

    let pending = store
        .list_subscriptions(
            &t.org.id,
            &SubscriptionFilter {
                status: Some(SubscriptionStatus::Pending),
                app_id: Some(t.app.id.clone()),
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        pending.items.iter().map(|s| &s.id).collect::<Vec<_>>(),
        [&ids[0], &ids[2]]
    );
    let approved = store
        .list_subscriptions(
            &t.org.id,
            &SubscriptionFilter {
                status: Some(SubscriptionStatus::Approved),
                app_id: None,
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(approved.items.len(), 1);
    assert_eq!(approved.items[0].target, "b");

    assert!(matches!(
        store
            .request_subscription(&admin(), &t.org.id, &t.app.id, SubscriptionKind::Model, " ")
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .reject_subscription(&admin(), &t.org.id, &ids[0], Some("x".repeat(5000)))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .approve_subscription(&admin(), &t.org.id, "sub_missing")
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        "maybe".parse::<SubscriptionStatus>(),
        Err(StoreError::Invalid(_))
    ));
}
