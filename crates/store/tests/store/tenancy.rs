//! Orgs, teams and apps: create/read/update/delete, paging, conflicts, not-found, objects
//! managed by `apply`, and tenant isolation (another org's ids are "not found").

use crate::common::{admin, TestDb};
use switchboard_store::{
    Actor, AppPatch, NewApp, NewOrg, NewTeam, Org, OrgPatch, PageRequest, StoreError, TeamPatch,
    APPLY,
};

fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest {
        limit: Some(limit),
        cursor,
    }
}

fn new_org(name: &str) -> NewOrg {
    NewOrg {
        name: name.to_owned(),
        ..NewOrg::default()
    }
}

fn new_team(name: &str) -> NewTeam {
    NewTeam {
        name: name.to_owned(),
        managed_by: None,
    }
}

fn new_app(name: &str, models: Option<&[&str]>) -> NewApp {
    NewApp {
        name: name.to_owned(),
        models: models.map(|m| m.iter().map(|s| (*s).to_owned()).collect()),
        apis: None,
        managed_by: None,
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "expected NotFound, got {result:?}"
    );
}

fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Conflict(message)) => assert!(message.contains(needle), "{message}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn is_managed<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Managed { .. }))
}

async fn orgs_crud_and_paging(db: &TestDb) {
    let store = &db.store;
    let acme = store
        .create_org(
            &admin(),
            NewOrg {
                name: "acme".into(),
                display_name: Some("Acme Inc".into()),
                managed_by: None,
            },
        )
        .await
        .unwrap();
    assert!(acme.id.starts_with("org_"));
    assert_eq!(store.get_org("acme").await.unwrap(), acme);
    assert_eq!(store.get_org_by_id(&acme.id).await.unwrap(), acme);
    assert_conflict(store.create_org(&admin(), new_org("acme")).await, "acme");
    assert!(matches!(
        store.create_org(&admin(), new_org("Bad Name")).await,
        Err(StoreError::Invalid(_))
    ));

    let updated = store
        .update_org(
            &admin(),
            "acme",
            OrgPatch {
                display_name: Some(None),
                managed_by: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.display_name, None);
    assert!(updated.updated_at >= acme.updated_at);
    assert_eq!(store.get_org("acme").await.unwrap(), updated);

    let mut all = vec![updated.clone()];
    for i in 0..4 {
        all.push(
            store
                .create_org(&admin(), new_org(&format!("org-{i}")))
                .await
                .unwrap(),
        );
    }
    let mut seen: Vec<Org> = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let p = store.list_orgs(&page(2, cursor), None).await.unwrap();
        pages += 1;
        assert!(p.items.len() <= 2);
        seen.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen, all,
        "paging returns every org once, in creation order"
    );

    let only = vec![
        all[1].id.clone(),
        all[3].id.clone(),
        "org_missing".to_owned(),
    ];
    let p = store.list_orgs(&page(50, None), Some(&only)).await.unwrap();
    assert_eq!(p.items, vec![all[1].clone(), all[3].clone()]);
    assert!(store
        .list_orgs(&page(50, None), Some(&[]))
        .await
        .unwrap()
        .items
        .is_empty());

    store.delete_org(&admin(), "org-0").await.unwrap();
    assert_not_found(store.get_org("org-0").await);
    assert_not_found(store.delete_org(&admin(), "org-0").await);
    assert_not_found(
        store
            .update_org(&admin(), "nope", OrgPatch::default())
            .await,
    );
    assert_not_found(store.get_org_by_id("org_nope").await);
}

async fn teams_and_apps_crud(db: &TestDb) {
    let store = &db.store;
    let acme = store.create_org(&admin(), new_org("acme")).await.unwrap();
    let other = store.create_org(&admin(), new_org("other")).await.unwrap();
    let team = store
        .create_team(&admin(), &acme.id, new_team("search"))
        .await
        .unwrap();
    assert_eq!(team.org_id, acme.id);
    assert_conflict(
        store
            .create_team(&admin(), &acme.id, new_team("search"))
            .await,
        "search",
    );
    // The same name in another org is fine.
    store
        .create_team(&admin(), &other.id, new_team("search"))
        .await
        .unwrap();
    assert_not_found(
        store
            .create_team(&admin(), "org_missing", new_team("x"))
            .await,
    );
    assert_eq!(store.get_team(&acme.id, "search").await.unwrap(), team);
    assert_eq!(
        store.get_team_by_id(&acme.id, &team.id).await.unwrap(),
        team
    );
    let ads = store
        .create_team(&admin(), &acme.id, new_team("ads"))
        .await
        .unwrap();
    let teams = store.list_teams(&acme.id, &page(1, None)).await.unwrap();
    assert_eq!(teams.items, vec![team.clone()]);
    let rest = store
        .list_teams(&acme.id, &page(1, teams.next_cursor))
        .await
        .unwrap();
    assert_eq!(rest.items, vec![ads.clone()]);
    assert_eq!(rest.next_cursor, None);

    let app = store
        .create_app(
            &admin(),
            &acme.id,
            &team.id,
            new_app("web", Some(&["gpt-4o"])),
        )
        .await
        .unwrap();
    assert_eq!(app.models, Some(vec!["gpt-4o".to_owned()]));
    assert_eq!(app.apis, None);
    assert_conflict(
        store
            .create_app(&admin(), &acme.id, &team.id, new_app("web", None))
            .await,
        "web",
    );
    // Same name in another team is fine.
    let ads_web = store
        .create_app(&admin(), &acme.id, &ads.id, new_app("web", None))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_app(&admin(), &acme.id, &team.id, new_app("bad", Some(&[""])))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.get_app(&acme.id, &team.id, "web").await.unwrap(), app);
    assert_eq!(store.get_app_by_id(&acme.id, &app.id).await.unwrap(), app);

    let patched = store
        .update_app(
            &admin(),
            &acme.id,
            &team.id,
            "web",
            AppPatch {
                models: Some(None),
                apis: Some(Some(vec!["summarize".into()])),
                managed_by: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.models, None);
    assert_eq!(patched.apis, Some(vec!["summarize".to_owned()]));
    assert_eq!(
        store.get_app_by_id(&acme.id, &app.id).await.unwrap(),
        patched
    );

    let by_team = store
        .list_apps(&acme.id, Some(&team.id), &page(10, None))
        .await
        .unwrap();
    assert_eq!(by_team.items, vec![patched.clone()]);
    let by_org = store
        .list_apps(&acme.id, None, &page(10, None))
        .await
        .unwrap();
    assert_eq!(by_org.items, vec![patched.clone(), ads_web.clone()]);

    store
        .delete_app(&admin(), &acme.id, &team.id, "web")
        .await
        .unwrap();
    assert_not_found(store.get_app_by_id(&acme.id, &app.id).await);
    assert_not_found(store.delete_app(&admin(), &acme.id, &team.id, "web").await);

    // Deleting a team takes its apps; deleting an org takes its teams.
    store.delete_team(&admin(), &acme.id, "ads").await.unwrap();
    assert_not_found(store.get_app_by_id(&acme.id, &ads_web.id).await);
    assert_not_found(store.delete_team(&admin(), &acme.id, "ads").await);
    store.delete_org(&admin(), "acme").await.unwrap();
    assert_not_found(store.get_team_by_id(&acme.id, &team.id).await);
    assert!(store
        .list_teams(&acme.id, &page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn tenant_isolation(db: &TestDb) {
    let store = &db.store;
    let a = store.create_org(&admin(), new_org("org-a")).await.unwrap();
    let b = store.create_org(&admin(), new_org("org-b")).await.unwrap();
    let team_a = store
        .create_team(&admin(), &a.id, new_team("t"))
        .await
        .unwrap();
    let team_b = store
        .create_team(&admin(), &b.id, new_team("t"))
        .await
        .unwrap();
    let app_a = store
        .create_app(&admin(), &a.id, &team_a.id, new_app("app", None))
        .await
        .unwrap();

    // Org B cannot see or touch org A's objects, even knowing their ids.
    assert_not_found(store.get_app_by_id(&b.id, &app_a.id).await);
    assert_not_found(store.get_app(&b.id, &team_a.id, "app").await);
    assert_not_found(store.get_team_by_id(&b.id, &team_a.id).await);
    assert_not_found(
        store
            .create_app(&admin(), &b.id, &team_a.id, new_app("x", None))
            .await,
    );
    assert_not_found(
        store
            .update_app(&admin(), &b.id, &team_a.id, "app", AppPatch::default())
            .await,
    );
    assert_not_found(store.delete_app(&admin(), &b.id, &team_a.id, "app").await);
    // A's team id with B's org (or the reverse) matches nothing.
    assert_not_found(store.get_app(&a.id, &team_b.id, "app").await);
    assert!(store
        .list_apps(&b.id, None, &page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .list_apps(&b.id, Some(&team_a.id), &page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        store
            .list_teams(&b.id, &page(10, None))
            .await
            .unwrap()
            .items,
        vec![team_b.clone()]
    );

    let user = store
        .upsert_user(
            &admin(),
            switchboard_store::NewUser {
                subject: "alice".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let member = store
        .add_membership(
            &admin(),
            &user.id,
            &a.id,
            None,
            switchboard_core::auth::roles::Role::Admin,
        )
        .await
        .unwrap();
    assert!(store
        .list_memberships(&b.id, &page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
    assert_not_found(store.remove_membership(&admin(), &b.id, &member.id).await);
    // A membership on B's team through org A is refused.
    assert_not_found(
        store
            .add_membership(
                &admin(),
                &user.id,
                &a.id,
                Some(&team_b.id),
                switchboard_core::auth::roles::Role::Viewer,
            )
            .await,
    );
    // And the objects are still there for their own org.
    assert_eq!(store.get_app_by_id(&a.id, &app_a.id).await.unwrap(), app_a);
}

async fn managed_objects_are_read_only_except_for_apply(db: &TestDb) {
    let store = &db.store;
    let apply = Actor::apply();
    let managed = Some(APPLY.to_owned());
    // Only apply can create managed objects.
    let refused = store
        .create_org(
            &admin(),
            NewOrg {
                name: "x".into(),
                display_name: None,
                managed_by: managed.clone(),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );

    let org = store
        .create_org(
            &apply,
            NewOrg {
                name: "acme".into(),
                display_name: None,
                managed_by: managed.clone(),
            },
        )
        .await
        .unwrap();
    let team = store
        .create_team(
            &apply,
            &org.id,
            NewTeam {
                name: "t".into(),
                managed_by: managed.clone(),
            },
        )
        .await
        .unwrap();
    store
        .create_app(
            &apply,
            &org.id,
            &team.id,
            NewApp {
                name: "app".into(),
                managed_by: managed.clone(),
                ..NewApp::default()
            },
        )
        .await
        .unwrap();

    let patch = OrgPatch {
        display_name: Some(Some("New".into())),
        managed_by: None,
    };
    assert!(is_managed(
        &store.update_org(&admin(), "acme", patch.clone()).await
    ));
    assert!(is_managed(&store.delete_org(&admin(), "acme").await));
    assert!(is_managed(&store.delete_team(&admin(), &org.id, "t").await));
    assert!(is_managed(
        &store
            .update_app(&admin(), &org.id, &team.id, "app", AppPatch::default())
            .await
    ));
    assert!(is_managed(
        &store.delete_app(&admin(), &org.id, &team.id, "app").await
    ));
    let err = store
        .delete_org(&admin(), "acme")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("switchboard apply"), "{err}");

    // A non-apply actor cannot take or release ownership either.
    let takeover = OrgPatch {
        display_name: None,
        managed_by: Some(None),
    };
    assert!(store
        .update_org(&admin(), "acme", takeover.clone())
        .await
        .is_err());

    // Apply may change and release its objects; then the admin API may change them.
    assert_eq!(
        store
            .update_org(&apply, "acme", patch.clone())
            .await
            .unwrap()
            .display_name,
        Some("New".to_owned())
    );
    store.update_org(&apply, "acme", takeover).await.unwrap();
    store
        .update_team(
            &apply,
            &org.id,
            "t",
            TeamPatch {
                managed_by: Some(None),
            },
        )
        .await
        .unwrap();
    store
        .update_app(
            &apply,
            &org.id,
            &team.id,
            "app",
            AppPatch {
                managed_by: Some(None),
                ..AppPatch::default()
            },
        )
        .await
        .unwrap();
    store
        .delete_app(&admin(), &org.id, &team.id, "app")
        .await
        .unwrap();
    store.delete_team(&admin(), &org.id, "t").await.unwrap();
    store.delete_org(&admin(), "acme").await.unwrap();
}

both!(
    orgs_crud_and_paging,
    teams_and_apps_crud,
    tenant_isolation,
    managed_objects_are_read_only_except_for_apply,
);
