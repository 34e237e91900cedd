//! Users and memberships: upsert by subject, paging, roles per org and team, conflicts,
//! not-found, and cascades when a user goes.

use crate::common::{admin, TestDb};
use switchboard_core::auth::roles::Role;
use switchboard_store::{NewOrg, NewTeam, NewUser, PageRequest, StoreError};

fn user(subject: &str, email: Option<&str>) -> NewUser {
    NewUser {
        subject: subject.to_owned(),
        email: email.map(str::to_owned),
        name: None,
    }
}

async fn audit_rows(db: &TestDb) -> usize {
    let page = PageRequest {
        limit: Some(500),
        cursor: None,
    };
    db.store.list_audit(None, &page).await.unwrap().items.len()
}

async fn users_upsert_list_and_delete(db: &TestDb) {
    let store = &db.store;
    let alice = store
        .upsert_user(&admin(), user("alice", Some("a@x.io")))
        .await
        .unwrap();
    assert!(alice.id.starts_with("user_"));
    let rows = audit_rows(db).await;
    // The same data again changes nothing, not even the audit log.
    assert_eq!(
        store
            .upsert_user(&admin(), user("alice", Some("a@x.io")))
            .await
            .unwrap(),
        alice
    );
    assert_eq!(audit_rows(db).await, rows);
    let moved = store
        .upsert_user(&admin(), user("alice", Some("a@y.io")))
        .await
        .unwrap();
    assert_eq!(moved.id, alice.id);
    assert_eq!(moved.email.as_deref(), Some("a@y.io"));
    assert_eq!(audit_rows(db).await, rows + 1);
    assert_eq!(store.get_user(&alice.id).await.unwrap(), moved);
    assert_eq!(
        store.find_user_by_subject("alice").await.unwrap(),
        Some(moved.clone())
    );
    assert_eq!(store.find_user_by_subject("nobody").await.unwrap(), None);
    assert!(matches!(
        store.upsert_user(&admin(), user(" ", None)).await,
        Err(StoreError::Invalid(_))
    ));

    let bob = store
        .upsert_user(&admin(), user("bob", None))
        .await
        .unwrap();
    let carol = store
        .upsert_user(&admin(), user("carol", None))
        .await
        .unwrap();
    let first = store
        .list_users(&PageRequest {
            limit: Some(2),
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(first.items, vec![moved.clone(), bob.clone()]);
    let second = store
        .list_users(&PageRequest {
            limit: Some(2),
            cursor: first.next_cursor,
        })
        .await
        .unwrap();
    assert_eq!(second.items, vec![carol]);
    assert_eq!(second.next_cursor, None);

    store.delete_user(&admin(), &bob.id).await.unwrap();
    assert!(matches!(
        store.get_user(&bob.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_user(&admin(), &bob.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn memberships(db: &TestDb) {
    let store = &db.store;
    let org = store
        .create_org(
            &admin(),
            NewOrg {
                name: "acme".into(),
                ..NewOrg::default()
            },
        )
        .await
        .unwrap();
    let team = store
        .create_team(
            &admin(),
            &org.id,
            NewTeam {
                name: "t".into(),
                managed_by: None,
            },
        )
        .await
        .unwrap();
    let alice = store
        .upsert_user(&admin(), user("alice", None))
        .await
        .unwrap();
    let owner = store
        .add_membership(&admin(), &alice.id, &org.id, None, Role::Owner)
        .await
        .unwrap();
    assert_eq!(owner.role, Role::Owner);
    assert_eq!(owner.team_id, None);
    let dev = store
        .add_membership(
            &admin(),
            &alice.id,
            &org.id,
            Some(&team.id),
            Role::Developer,
        )
        .await
        .unwrap();
    // One role per org and per team.
    match store
        .add_membership(&admin(), &alice.id, &org.id, None, Role::Viewer)
        .await
    {
        Err(StoreError::Conflict(message)) => assert!(message.contains("alice"), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(store
        .add_membership(&admin(), &alice.id, &org.id, Some(&team.id), Role::Viewer)
        .await
        .is_err());
    let not_found = |r: Result<_, StoreError>| matches!(r, Err(StoreError::NotFound { .. }));
    assert!(not_found(
        store
            .add_membership(&admin(), "user_missing", &org.id, None, Role::Viewer)
            .await
    ));
    assert!(not_found(
        store
            .add_membership(&admin(), &alice.id, "org_missing", None, Role::Viewer)
            .await
    ));

    assert_eq!(
        store.memberships_of_user(&alice.id).await.unwrap(),
        vec![owner.clone(), dev.clone()]
    );
    let listed = store
        .list_memberships(&org.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, vec![owner.clone(), dev.clone()]);

    let admin_role = store
        .update_membership(&admin(), &org.id, &owner.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(admin_role.role, Role::Admin);
    assert!(matches!(
        store
            .update_membership(&admin(), &org.id, "mem_missing", Role::Admin)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .remove_membership(&admin(), &org.id, &dev.id)
        .await
        .unwrap();
    assert!(matches!(
        store.remove_membership(&admin(), &org.id, &dev.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.memberships_of_user(&alice.id).await.unwrap(),
        vec![admin_role]
    );

    // Deleting the user removes their memberships.
    store.delete_user(&admin(), &alice.id).await.unwrap();
    assert!(store
        .list_memberships(&org.id, &PageRequest::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

both!(users_upsert_list_and_delete, memberships);
