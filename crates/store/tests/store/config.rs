//! Stored providers and models: API keys encrypted at rest and never handed out or audited,
//! idempotent puts, paging, managed objects, change events, and the errors without (or with
//! the wrong) `SWITCHBOARD_SECRET_KEY`.

use crate::common::{admin, TestDb};
use serde_json::json;
use switchboard_store::{Actor, Change, PageRequest, SecretCipher, StoreError, APPLY};

const SECRET: &str = "sk-live-very-secret-123";

fn all() -> PageRequest {
    PageRequest {
        limit: Some(500),
        cursor: None,
    }
}

async fn audit_text(db: &TestDb) -> String {
    let entries = db.store.list_audit(None, &all()).await.unwrap().items;
    serde_json::to_string(&entries).unwrap()
}

async fn providers_keep_keys_encrypted(db: &TestDb) {
    let store = &db.store;
    let settings =
        json!({"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": SECRET});
    let stored = store
        .put_provider(&admin(), "openai", settings, None)
        .await
        .unwrap();
    assert!(stored.has_api_key);
    assert_eq!(
        stored.settings,
        json!({"kind": "openai", "base_url": "https://api.openai.com/v1"})
    );
    assert_eq!(store.get_provider("openai").await.unwrap(), stored);

    // The key is neither in reads nor in the audit log, but the gateway gets it back.
    assert!(
        !serde_json::to_string(&store.list_providers(&all()).await.unwrap().items)
            .unwrap()
            .contains(SECRET)
    );
    assert!(!audit_text(db).await.contains(SECRET));
    let decrypted = store.stored_providers_decrypted().await.unwrap();
    assert_eq!(decrypted.len(), 1);
    assert_eq!(decrypted[0].0, "openai");
    assert_eq!(decrypted[0].1["api_key"], SECRET);
    assert_eq!(decrypted[0].1["kind"], "openai");

    // The same put again changes nothing: no audit row.
    let rows = store.list_audit(None, &all()).await.unwrap().items.len();
    let again =
        json!({"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": SECRET});
    assert_eq!(
        store
            .put_provider(&admin(), "openai", again, None)
            .await
            .unwrap(),
        stored
    );
    assert_eq!(
        store.list_audit(None, &all()).await.unwrap().items.len(),
        rows
    );

    // Without `api_key` the stored key is kept; `null` removes it.
    let kept = store
        .put_provider(&admin(), "openai", json!({"kind": "openai"}), None)
        .await
        .unwrap();
    assert!(kept.has_api_key);
    assert_eq!(
        store.stored_providers_decrypted().await.unwrap()[0].1["api_key"],
        SECRET
    );
    let removed = store
        .put_provider(
            &admin(),
            "openai",
            json!({"kind": "openai", "api_key": null}),
            None,
        )
        .await
        .unwrap();
    assert!(!removed.has_api_key);
    assert_eq!(
        store.stored_providers_decrypted().await.unwrap()[0].1,
        json!({"kind": "openai"})
    );
    assert!(matches!(
        store
            .put_provider(&admin(), "openai", json!({"api_key": 5}), None)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .put_provider(&admin(), "x", json!(["not", "a", "map"]), None)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .put_provider(&admin(), "bad name", json!({}), None)
            .await,
        Err(StoreError::Invalid(_))
    ));
}

async fn provider_keys_need_the_right_secret_key(db: &TestDb) {
    let settings = json!({"kind": "anthropic", "api_key": SECRET});
    db.store
        .put_provider(&admin(), "anthropic", settings.clone(), None)
        .await
        .unwrap();

    // No cipher: storing a key is refused with a message naming the variable.
    let plain = db.open_with(None).await;
    let err = plain
        .put_provider(&admin(), "other", settings, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Crypto(_)), "{err:?}");
    assert!(err.to_string().contains("SWITCHBOARD_SECRET_KEY"), "{err}");
    // Providers without a key are fine without it.
    plain
        .put_provider(&admin(), "local", json!({"kind": "ollama"}), None)
        .await
        .unwrap();
    assert!(matches!(
        plain.stored_providers_decrypted().await,
        Err(StoreError::Crypto(_))
    ));

    // The wrong key: a clear error, not garbage, and never the key itself.
    let wrong = db.open_with(Some(SecretCipher::from_key(&[7; 32]))).await;
    let err = wrong.stored_providers_decrypted().await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Crypto(_)), "{err:?}");
    assert!(
        message.contains("anthropic") && message.contains("SWITCHBOARD_SECRET_KEY"),
        "{message}"
    );
    assert!(!message.contains(SECRET));
}

async fn providers_paging_delete_and_managed(db: &TestDb) {
    let store = &db.store;
    for name in ["c", "a", "b"] {
        store
            .put_provider(&admin(), name, json!({"kind": "openai"}), None)
            .await
            .unwrap();
    }
    let first = store
        .list_providers(&PageRequest {
            limit: Some(2),
            cursor: None,
        })
        .await
        .unwrap();
    let names: Vec<_> = first.items.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let rest = store
        .list_providers(&PageRequest {
            limit: Some(2),
            cursor: first.next_cursor,
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next_cursor, None);
    store.delete_provider(&admin(), "c").await.unwrap();
    assert!(matches!(
        store.get_provider("c").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_provider(&admin(), "c").await,
        Err(StoreError::NotFound { .. })
    ));

    let apply = Actor::apply();
    let managed = Some(APPLY.to_owned());
    assert!(store
        .put_provider(&admin(), "m", json!({}), managed.clone())
        .await
        .is_err());
    store
        .put_provider(&apply, "m", json!({"kind": "openai"}), managed.clone())
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_provider(&admin(), "m", json!({"kind": "x"}), None)
            .await,
        Err(StoreError::Managed { .. })
    ));
    assert!(matches!(
        store.delete_provider(&admin(), "m").await,
        Err(StoreError::Managed { .. })
    ));
    store.delete_provider(&apply, "m").await.unwrap();
}

async fn models_crud_idempotence_and_changes(db: &TestDb) {
    let store = &db.store;
    let mut changes = store.subscribe();
    let settings =
        json!({"targets": [{"provider": "openai", "model": "gpt-4o"}], "requires_approval": true});
    let model = store
        .put_model(&admin(), "smart", settings.clone(), None)
        .await
        .unwrap();
    assert_eq!(model.settings, settings);
    assert_eq!(store.get_model("smart").await.unwrap(), model);
    let change = tokio::time::timeout(std::time::Duration::from_secs(2), changes.recv())
        .await
        .expect("a change event")
        .unwrap();
    assert_eq!(change, Change::Config);

    let rows = store.list_audit(None, &all()).await.unwrap().items.len();
    assert_eq!(
        store
            .put_model(&admin(), "smart", settings, None)
            .await
            .unwrap(),
        model
    );
    assert_eq!(
        store.list_audit(None, &all()).await.unwrap().items.len(),
        rows
    );
    let changed = store
        .put_model(&admin(), "smart", json!({"targets": []}), None)
        .await
        .unwrap();
    assert_eq!(changed.created_at, model.created_at);
    assert_eq!(
        store.list_audit(None, &all()).await.unwrap().items.len(),
        rows + 1
    );

    store
        .put_model(&admin(), "fast", json!({}), None)
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_models(&all())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["fast", "smart"]);
    assert_eq!(store.stored_models().await.unwrap().len(), 2);
    assert!(matches!(
        store.put_model(&admin(), "x", json!("text"), None).await,
        Err(StoreError::Invalid(_))
    ));

    let apply = Actor::apply();
    store
        .put_model(&apply, "owned", json!({}), Some(APPLY.to_owned()))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_model(&admin(), "owned").await,
        Err(StoreError::Managed { .. })
    ));
    assert!(matches!(
        store
            .put_model(&admin(), "owned", json!({"a": 1}), None)
            .await,
        Err(StoreError::Managed { .. })
    ));
    store.delete_model(&apply, "owned").await.unwrap();
    store.delete_model(&admin(), "fast").await.unwrap();
    assert!(matches!(
        store.get_model("fast").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_model(&admin(), "fast").await,
        Err(StoreError::NotFound { .. })
    ));
}

both!(
    providers_keep_keys_encrypted,
    provider_keys_need_the_right_secret_key,
    providers_paging_delete_and_managed,
    models_crud_idempotence_and_changes,
);
