//! The audit log: one row per change with before/after, a hash chain that verifies, tamper
//! detection (an edited or a removed row), append-only enforcement, paging by `seq`, and no
//! duplicate `seq` under concurrent writers.

use crate::common::{admin, TestDb};
use switchboard_store::{
    Backend, NewOrg, NewTeam, OrgPatch, PageRequest, StoreError, GENESIS_HASH,
};

fn all() -> PageRequest {
    PageRequest {
        limit: Some(500),
        cursor: None,
    }
}

fn org(name: &str) -> NewOrg {
    NewOrg {
        name: name.to_owned(),
        ..NewOrg::default()
    }
}

/// Five changes across two orgs.
async fn some_changes(db: &TestDb) -> (String, String) {
    let store = &db.store;
    let a = store.create_org(&admin(), org("a")).await.unwrap();
    let b = store.create_org(&admin(), org("b")).await.unwrap();
    let team = NewTeam {
        name: "t".into(),
        managed_by: None,
    };
    store.create_team(&admin(), &a.id, team).await.unwrap();
    let patch = OrgPatch {
        display_name: Some(Some("A".into())),
        managed_by: None,
    };
    store.update_org(&admin(), "a", patch).await.unwrap();
    store.delete_org(&admin(), "b").await.unwrap();
    (a.id, b.id)
}

async fn chain_records_every_change_and_verifies(db: &TestDb) {
    let (a, b) = some_changes(db).await;
    let entries = db.store.list_audit(None, &all()).await.unwrap().items;
    let actions: Vec<_> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "org.create",
            "org.create",
            "team.create",
            "org.update",
            "org.delete"
        ]
    );
    let seqs: Vec<_> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(entries[0].prev_hash, GENESIS_HASH);
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let update = &entries[3];
    assert_eq!(update.actor, "admin_key");
    assert_eq!(
        update.before.as_ref().unwrap()["display_name"],
        serde_json::Value::Null
    );
    assert_eq!(update.after.as_ref().unwrap()["display_name"], "A");
    assert!(entries[0].before.is_none() && entries[4].after.is_none());

    let of_a = db.store.list_audit(Some(&a), &all()).await.unwrap().items;
    assert_eq!(of_a.len(), 3);
    assert!(of_a.iter().all(|e| e.org_id.as_deref() == Some(a.as_str())));
    assert_eq!(
        db.store
            .list_audit(Some(&b), &all())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // Paging by seq.
    let first = db
        .store
        .list_audit(
            None,
            &PageRequest {
                limit: Some(2),
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.next_cursor.as_deref(), Some("2"));
    let next = db
        .store
        .list_audit(
            None,
            &PageRequest {
                limit: Some(2),
                cursor: first.next_cursor,
            },
        )
        .await
        .unwrap();
    assert_eq!(next.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    let bad = PageRequest {
        limit: None,
        cursor: Some("abc".into()),
    };
    assert!(matches!(
        db.store.list_audit(None, &bad).await,
        Err(StoreError::Invalid(_))
    ));

    let report = db.store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 5);
}

/// The statements that lift the append-only protection (tests only).
fn lift_protection(db: &TestDb) -> [&'static str; 2] {
    match db.backend {
        Backend::Sqlite => [
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
        Backend::Postgres => [
            "DROP RULE audit_log_no_update ON audit_log",
            "DROP RULE audit_log_no_delete ON audit_log",
        ],
    }
}

async fn audit_rows_are_append_only(db: &TestDb) {
    some_changes(db).await;
    // SQLite refuses; Postgres turns the statements into no-ops. Either way nothing changes.
    let update = db
        .try_execute_raw("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        .await;
    let delete = db
        .try_execute_raw("DELETE FROM audit_log WHERE seq = 3")
        .await;
    if db.backend == Backend::Sqlite {
        assert!(update.unwrap_err().contains("append-only"));
        assert!(delete.is_err());
    }
    let report = db.store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 5);
}

async fn edited_row_is_reported(db: &TestDb) {
    some_changes(db).await;
    for sql in lift_protection(db) {
        db.execute_raw(sql).await;
    }
    db.execute_raw("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
        .await;
    let report = db.store.verify_audit().await.unwrap();
    assert_eq!(report.first_bad, Some(3), "{report:?}");
    assert_eq!(report.checked, 3);
    assert!(report.reason.unwrap().contains("hash"));
}

async fn edited_json_is_reported(db: &TestDb) {
    some_changes(db).await;
    for sql in lift_protection(db) {
        db.execute_raw(sql).await;
    }
    db.execute_raw(
        "UPDATE audit_log SET after_json = REPLACE(after_json, '\"A\"', '\"B\"') WHERE seq = 4",
    )
    .await;
    let report = db.store.verify_audit().await.unwrap();
    assert_eq!(report.first_bad, Some(4), "{report:?}");
}

async fn removed_row_is_reported(db: &TestDb) {
    some_changes(db).await;
    for sql in lift_protection(db) {
        db.execute_raw(sql).await;
    }
    db.execute_raw("DELETE FROM audit_log WHERE seq = 2").await;
    let report = db.store.verify_audit().await.unwrap();
    assert_eq!(report.first_bad, Some(3), "{report:?}");
    assert!(report.reason.unwrap().contains("missing"));
}

async fn forged_hash_is_reported(db: &TestDb) {
    // A row whose hash was replaced (here by its prev_hash) no longer matches its content.
    some_changes(db).await;
    for sql in lift_protection(db) {
        db.execute_raw(sql).await;
    }
    db.execute_raw("UPDATE audit_log SET hash = prev_hash WHERE seq = 2")
        .await;
    let report = db.store.verify_audit().await.unwrap();
    assert_eq!(report.first_bad, Some(2), "{report:?}");
}

async fn concurrent_writers_get_distinct_seqs(db: &TestDb) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store.create_org(&admin(), org(&format!("org-{i}"))).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // A second store (another instance) writing at the same time.
    let other = db.open().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (one, two) = (db.store.clone(), other.clone());
        tasks.push(tokio::spawn(async move {
            one.create_org(&admin(), org(&format!("x-{i}"))).await
        }));
        tasks.push(tokio::spawn(async move {
            two.create_org(&admin(), org(&format!("y-{i}"))).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Updates read before they write: the case where a deferred SQLite transaction would fail
    // to upgrade to a write lock.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = if i % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let patch = OrgPatch {
                display_name: Some(Some(format!("Org {i}"))),
                managed_by: None,
            };
            store.update_org(&admin(), &format!("org-{i}"), patch).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let entries = db.store.list_audit(None, &all()).await.unwrap().items;
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=48).collect::<Vec<_>>());
    let report = db.store.verify_audit().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checked, 48);
}

async fn failed_changes_leave_no_audit_row(db: &TestDb) {
    db.store.create_org(&admin(), org("a")).await.unwrap();
    assert!(db.store.create_org(&admin(), org("a")).await.is_err());
    assert_eq!(
        db.store.list_audit(None, &all()).await.unwrap().items.len(),
        1
    );
}

both!(
    chain_records_every_change_and_verifies,
    audit_rows_are_append_only,
    edited_row_is_reported,
    edited_json_is_reported,
    removed_row_is_reported,
    forged_hash_is_reported,
    concurrent_writers_get_distinct_seqs,
    failed_changes_leave_no_audit_row,
);
