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
