//! Stored rate-limit rules and budgets: create, replace, idempotent puts, list and delete, the
//! audit rows and change events each write makes, names required and checked, and rules
//! managed by `apply` refused to everyone else.

use crate::common::{admin, TestDb};
use std::time::Duration;
use switchboard_core::limits::{BudgetAction, BudgetRule, Match, Period, RateLimitRule, Scope};
use switchboard_store::{Actor, Change, PageRequest, StoreError, APPLY};
use switchboard_types::MicroUsd;

fn rate_limit(name: &str, rpm: u64) -> RateLimitRule {
    RateLimitRule {
        name: Some(name.to_owned()),
        scope: Scope::Team,
        matches: Match {
            org: Some("acme".to_owned()),
            ..Match::default()
        },
        requests_per_second: None,
        requests_per_minute: Some(rpm),
        tokens_per_minute: Some(100_000),
        concurrent: None,
    }
}

fn budget(name: &str, dollars: i64) -> BudgetRule {
    BudgetRule {
        name: Some(name.to_owned()),
        scope: Scope::Org,
        matches: Match::default(),
        period: Period::Month,
        limit: MicroUsd(dollars * 1_000_000 + 500_000),
        action: BudgetAction::Downgrade,
        alert_at: vec![50, 80],
        downgrade_to: Some("cheap".to_owned()),
    }
}

async fn audit_actions(db: &TestDb) -> Vec<(String, String)> {
    let page = PageRequest {
        limit: Some(500),
        cursor: None,
    };
    db.store
        .list_audit(None, &page)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.action, e.object_id))
        .collect()
}

async fn next_change(changes: &mut tokio::sync::broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(2), changes.recv())
        .await
        .expect("a change event")
        .unwrap()
}

async fn rate_limits_crud_audit_and_changes(db: &TestDb) {
    let store = &db.store;
    let mut changes = store.subscribe();
    assert!(store
        .put_rate_limit(&admin(), rate_limit("team-rpm", 60), None)
        .await
        .unwrap());
    assert_eq!(next_change(&mut changes).await, Change::Config);
    let stored = store.get_rate_limit("team-rpm").await.unwrap();
    assert_eq!(stored.rule, rate_limit("team-rpm", 60));
    assert_eq!(stored.managed_by, None);

    // The same rule again: nothing changes, no audit row.
    assert!(!store
        .put_rate_limit(&admin(), rate_limit("team-rpm", 60), None)
        .await
        .unwrap());
    assert_eq!(audit_actions(db).await.len(), 1);

    // A replacement keeps the creation time.
    assert!(!store
        .put_rate_limit(&admin(), rate_limit("team-rpm", 120), None)
        .await
        .unwrap());
    let replaced = store.get_rate_limit("team-rpm").await.unwrap();
    assert_eq!(replaced.rule.requests_per_minute, Some(120));
    assert_eq!(replaced.created_at, stored.created_at);
    assert!(replaced.updated_at >= stored.updated_at);

    store
        .put_rate_limit(&admin(), rate_limit("a-first", 1), None)
        .await
        .unwrap();
    let names: Vec<_> = store
        .list_rate_limits()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.rule.name.unwrap())
        .collect();
    assert_eq!(names, ["a-first", "team-rpm"]);

    store.delete_rate_limit(&admin(), "team-rpm").await.unwrap();
    assert!(matches!(
        store.get_rate_limit("team-rpm").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_rate_limit(&admin(), "team-rpm").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        audit_actions(db).await,
        [
            ("rate_limit.create", "team-rpm"),
            ("rate_limit.update", "team-rpm"),
            ("rate_limit.create", "a-first"),
            ("rate_limit.delete", "team-rpm"),
        ]
        .map(|(a, o)| (a.to_owned(), o.to_owned()))
    );
    assert!(store.verify_audit().await.unwrap().is_ok());

    // A name is required and must be usable in URLs.
    let mut unnamed = rate_limit("x", 1);
    unnamed.name = None;
    assert!(matches!(
        store.put_rate_limit(&admin(), unnamed, None).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .put_rate_limit(&admin(), rate_limit("bad name", 1), None)
            .await,
        Err(StoreError::Invalid(_))
    ));
}

async fn budgets_crud_and_audit(db: &TestDb) {
    let store = &db.store;
    assert!(store
        .put_budget(&admin(), budget("acme-monthly", 500), None)
        .await
        .unwrap());
    let stored = store.get_budget("acme-monthly").await.unwrap();
    assert_eq!(stored.rule, budget("acme-monthly", 500));
    assert_eq!(stored.rule.limit, MicroUsd(500_500_000));
    assert!(!store
        .put_budget(&admin(), budget("acme-monthly", 500), None)
        .await
        .unwrap());
    assert!(!store
        .put_budget(&admin(), budget("acme-monthly", 900), None)
        .await
        .unwrap());
    assert_eq!(
        store.get_budget("acme-monthly").await.unwrap().rule.limit,
        MicroUsd(900_500_000)
    );
    assert_eq!(store.list_budgets().await.unwrap().len(), 1);
    // Rate limits and budgets are separate namespaces.
    assert!(store.list_rate_limits().await.unwrap().is_empty());
    store.delete_budget(&admin(), "acme-monthly").await.unwrap();
    assert!(store.list_budgets().await.unwrap().is_empty());

    let entries = store
        .list_audit(
            None,
            &PageRequest {
                limit: Some(10),
                cursor: None,
            },
        )
        .await
        .unwrap()
        .items;
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["budget.create", "budget.update", "budget.delete"]);
    assert!(entries.iter().all(|e| e.object_kind == "budget"));
    // The audit row holds the rule as written (dollars, fractions).
    let after = entries[0].after.as_ref().unwrap();
    assert_eq!(after["rule"]["usd"], serde_json::json!(500.5));
    assert_eq!(after["rule"]["alert_at"], serde_json::json!([0.5, 0.8]));
    assert!(entries[1].before.is_some() && entries[2].after.is_none());
}

async fn managed_rules_are_read_only_to_admins(db: &TestDb) {
    let store = &db.store;
    let apply = Actor::apply();
    let managed = Some(APPLY.to_owned());
    // Only `apply` marks rules as managed.
    assert!(store
        .put_rate_limit(&admin(), rate_limit("owned", 5), managed.clone())
        .await
        .is_err());
    store
        .put_rate_limit(&apply, rate_limit("owned", 5), managed.clone())
        .await
        .unwrap();
    store
        .put_budget(&apply, budget("owned", 5), managed.clone())
        .await
        .unwrap();
    assert_eq!(
        store.get_rate_limit("owned").await.unwrap().managed_by,
        managed
    );
    assert!(matches!(
        store
            .put_rate_limit(&admin(), rate_limit("owned", 6), None)
            .await,
        Err(StoreError::Managed { .. })
    ));
    assert!(matches!(
        store.delete_rate_limit(&admin(), "owned").await,
        Err(StoreError::Managed { .. })
    ));
    assert!(matches!(
        store.put_budget(&admin(), budget("owned", 6), None).await,
        Err(StoreError::Managed { .. })
    ));
    assert!(matches!(
        store.delete_budget(&admin(), "owned").await,
        Err(StoreError::Managed { .. })
    ));
    assert_eq!(
        store.get_budget("owned").await.unwrap().rule,
        budget("owned", 5)
    );
    // `apply` changes and removes them.
    assert!(!store
        .put_rate_limit(&apply, rate_limit("owned", 6), managed.clone())
        .await
        .unwrap());
    store.delete_rate_limit(&apply, "owned").await.unwrap();
    store.delete_budget(&apply, "owned").await.unwrap();
    assert!(store.list_rate_limits().await.unwrap().is_empty());
    assert!(store.list_budgets().await.unwrap().is_empty());
}

async fn budget_thresholds_survive_storage(db: &TestDb) {
    // Whole-dollar percentages are where a serializer trimming zeros can go wrong: 100 % is
    // `1.0`, 10 % is `0.1`.
    let mut rule = budget("thresholds", 1);
    rule.alert_at = vec![5, 10, 50, 99, 100];
    db.store
        .put_budget(&admin(), rule.clone(), None)
        .await
        .unwrap();
    assert_eq!(db.store.get_budget("thresholds").await.unwrap().rule, rule);
}

both!(
    rate_limits_crud_audit_and_changes,
    budget_thresholds_survive_storage,
    budgets_crud_and_audit,
    managed_rules_are_read_only_to_admins,
);
