//! Stored prompts and APIs: CRUD with audit rows and change events, immutable prompt versions
//! (a changed or missing version is refused, labels move freely), managed entries, and the
//! stored layer the config loader merges.

use crate::common::{admin, TestDb};
use serde_json::json;
use switchboard_core::config::immutable::VersionConflict;
use switchboard_store::{Actor, Change, PageRequest, StoreError, APPLY};

fn all() -> PageRequest {
    PageRequest {
        limit: Some(500),
        cursor: None,
    }
}

async fn audit_actions(db: &TestDb) -> Vec<String> {
    let entries = db.store.list_audit(None, &all()).await.unwrap().items;
    entries.into_iter().map(|e| e.action).collect()
}

async fn prompt_versions_are_immutable(db: &TestDb) {
    let store = &db.store;
    let mut changes = store.subscribe();
    let v1 = json!({"version": 1, "user": "Hi {{ name }}"});
    let first = json!({"versions": [v1], "labels": {"production": 1}});
    let stored = store
        .put_prompt(&admin(), "greet", first.clone(), None)
        .await
        .unwrap();
    assert_eq!(stored.settings, first);
    assert_eq!(store.get_prompt("greet").await.unwrap(), stored);
    let change = tokio::time::timeout(std::time::Duration::from_secs(2), changes.recv())
        .await
        .expect("a change event")
        .unwrap();
    assert_eq!(change, Change::Config);

    // Appending a version and moving the label is an update.
    let v2 = json!({"version": 2, "user": "Hello {{ name }}", "note": "warmer"});
    let second = json!({"versions": [v1, v2], "labels": {"production": 2, "staging": {"split": [{"version": 1, "weight": 1}, {"version": 2, "weight": 1}]}}});
    let updated = store
        .put_prompt(&admin(), "greet", second.clone(), None)
        .await
        .unwrap();
    assert_eq!(updated.created_at, stored.created_at);

    // Changing version 2's content, or leaving version 1 out, is refused and changes nothing.
    let changed = json!({"versions": [v1, {"version": 2, "user": "Yo {{ name }}", "note": "warmer"}], "labels": {"production": 2}});
    let err = store
        .put_prompt(&admin(), "greet", changed, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Immutable(VersionConflict::Changed {
                version: 2,
                next: 3,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "prompt `greet` version 2 changed: versions are immutable; add version 3"
    );
    let dropped = json!({"versions": [v2], "labels": {"production": 2}});
    assert!(matches!(
        store.put_prompt(&admin(), "greet", dropped, None).await,
        Err(StoreError::Immutable(VersionConflict::Missing {
            version: 1,
            ..
        }))
    ));
    assert_eq!(store.get_prompt("greet").await.unwrap().settings, second);

    let actions = audit_actions(db).await;
    assert_eq!(actions, ["prompt.create", "prompt.update"]);
    let entries = store.list_audit(None, &all()).await.unwrap().items;
    assert_eq!(entries[1].object_kind, "prompt");
    assert_eq!(entries[1].object_id, "greet");
    assert_eq!(entries[1].after.as_ref().unwrap()["settings"], second);

    // The same put again changes nothing.
    store
        .put_prompt(&admin(), "greet", second, None)
        .await
        .unwrap();
    assert_eq!(audit_actions(db).await.len(), 2);

    // The whole prompt may go.
    store.delete_prompt(&admin(), "greet").await.unwrap();
    assert!(matches!(
        store.get_prompt("greet").await,
        Err(StoreError::NotFound { kind: "prompt", .. })
    ));
    assert_eq!(audit_actions(db).await.last().unwrap(), "prompt.delete");
}

async fn apis_crud_managed_and_layer(db: &TestDb) {
    let store = &db.store;
    let prompt = json!({"versions": [{"version": 1, "user": "x"}], "labels": {"production": 1}});
    store
        .put_prompt(&admin(), "p", prompt.clone(), None)
        .await
        .unwrap();
    let api = json!({"prompt": "p", "model": "m", "status": "published"});
    store
        .put_api(&admin(), "summarize", api.clone(), None)
        .await
        .unwrap();
    store
        .put_api(
            &admin(),
            "answer",
            json!({"prompt": "p", "model": "m"}),
            None,
        )
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_apis(&all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["answer", "summarize"]);
    let page = store
        .list_prompts(&PageRequest {
            limit: Some(1),
            cursor: None,
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next_cursor.is_none());

    let layer = store.stored_layer().await.unwrap();
    assert_eq!(layer.prompts, vec![("p".to_owned(), prompt)]);
    assert_eq!(layer.apis.len(), 2);
    assert_eq!(layer.apis[1], ("summarize".to_owned(), api));

    assert!(matches!(
        store.put_api(&admin(), "x", json!([1]), None).await,
        Err(StoreError::Invalid(_))
    ));
    let apply = Actor::apply();
    store
        .put_api(&apply, "owned", json!({}), Some(APPLY.to_owned()))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_api(&admin(), "owned").await,
        Err(StoreError::Managed { .. })
    ));
    store.delete_api(&apply, "owned").await.unwrap();
    store.delete_api(&admin(), "answer").await.unwrap();
    assert!(matches!(
        store.delete_api(&admin(), "answer").await,
        Err(StoreError::NotFound { kind: "api", .. })
    ));
    let actions = audit_actions(db).await;
    assert!(actions.contains(&"api.create".to_owned()));
    assert_eq!(actions.last().unwrap(), "api.delete");
}

both!(prompt_versions_are_immutable, apis_crud_managed_and_layer);
