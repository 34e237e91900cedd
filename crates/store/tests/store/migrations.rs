//! Migrations: running them again changes nothing; a fresh store answers pings and has an
//! empty, valid audit log.

use crate::common::TestDb;

async fn migrate_twice_is_a_no_op(db: &TestDb) {
    db.store.migrate().await.unwrap();
    db.store.migrate().await.unwrap();
    db.store.ping().await.unwrap();
    let report = db.store.verify_audit().await.unwrap();
    assert!(report.is_ok());
    assert_eq!(report.checked, 0);
}

both!(migrate_twice_is_a_no_op);

/// The call log's per-organisation, team and key indexes leave out the rows without one
/// (0006) and are still the ones the log's filters use.
async fn caller_indexes_skip_calls_without_a_caller(db: &TestDb) {
    use sqlx::Row;
    let partial = [
        ("usage_records_team", "team"),
        ("usage_records_key", "key_id"),
        ("usage_records_org_time", "org"),
    ];
    match db.backend {
        switchboard_store::Backend::Sqlite => {
            for (index, column) in partial {
                let sql = format!("SELECT sql FROM sqlite_master WHERE name = '{index}'");
                let rows = db.query_raw(&sql).await;
                let definition: String = rows[0].try_get("sql").unwrap();
                assert!(
                    definition.ends_with(&format!("WHERE {column} IS NOT NULL")),
                    "{definition}"
                );
            }
            let plans = [
                ("org = 'acme' AND team = 'core'", "usage_records_team"),
                ("key_id = 'k1'", "usage_records_key"),
                ("org = 'acme'", "usage_records_org_time"),
            ];
            for (filter, index) in plans {
                let sql = format!(
                    "EXPLAIN QUERY PLAN SELECT id FROM usage_records WHERE {filter} \
                     ORDER BY started_at_ms DESC, id DESC LIMIT 50"
                );
                let details: Vec<String> = db
                    .query_raw(&sql)
                    .await
                    .iter()
                    .map(|row| row.try_get("detail").unwrap())
                    .collect();
                assert!(
                    details.iter().any(|d| d.contains(index)),
                    "{filter}: {details:?}"
                );
            }
        }
        switchboard_store::Backend::Postgres => {
            for (index, column) in partial {
                let sql = format!(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = '{index}' \
                     AND schemaname = current_schema()"
                );
                let rows = db.query_raw(&sql).await;
                let definition: String = rows[0].try_get("indexdef").unwrap();
                assert!(
                    definition.ends_with(&format!("WHERE ({column} IS NOT NULL)")),
                    "{definition}"
                );
            }
        }
    }
}

both!(caller_indexes_skip_calls_without_a_caller);
