//! The data plane seen by each kind of credential: people signed in with a JWT call the models
//! that need no approval when they hold a developer role or above; viewers call none; and when
//! the key store cannot be reached a virtual key gets `503 auth_unavailable`, never a silent
//! accept.

use super::kit::{both, Db, Env};
use serde_json::json;

both!(people_with_jwts_call_ungated_models);

async fn people_with_jwts_call_ungated_models(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], None).await;
    let developer = env
        .side
        .token("dev-1", json!({"org": "acme", "role": "developer"}));
    let viewer = env
        .side
        .token("view-1", json!({"org": "acme", "role": "viewer"}));

    assert_eq!(env.chat(&developer, "open").await.status, 200);
    let mut listed = env.model_ids(&developer).await;
    listed.sort();
    assert_eq!(listed, ["open", "other"], "gated models are for apps only");
    let reply = env.chat(&developer, "gated").await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "approval_required".into())
    );

    let reply = env.chat(&viewer, "open").await;
    assert_eq!(
        (reply.status, reply.code()),
        (403, "model_not_allowed".into())
    );
    assert!(env.model_ids(&viewer).await.is_empty());

    // A token signed by someone else is an invalid credential.
    let forged = format!("{}x", &developer[..developer.len() - 1]);
    let reply = env.chat(&forged, "open").await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "invalid_api_key".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_key_store_answers_503_not_a_guess() {
    let Some(db) = Db::postgres().await else {
        return;
    };
    let env = Env::start(db.clone()).await;
    env.seed_org("acme", &["red"], None).await;
    let (_, cached) = env.app_key("acme", "red").await;
    let (_, uncached) = env.app_key("acme", "red").await;
    // Each key creation also comes back through Postgres NOTIFY (a few ms later) and drops
    // every cached grant; no state of the gateway shows when that echo has arrived, so give it
    // time before caching `cached`, or the echo may evict it after the first call.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(env.chat(&cached, "open").await.status, 200);

    // Take the key table away under the running gateway: lookups now fail.
    let (base, schema) = db.postgres_parts().unwrap();
    db.execute(
        &format!("ALTER TABLE {schema}.virtual_keys RENAME TO gone"),
        base,
    )
    .await;
    let reply = env.chat(&uncached, "open").await;
    assert_eq!(
        (reply.status, reply.code()),
        (503, "auth_unavailable".into()),
        "{}",
        reply.text
    );
    assert!(
        !reply.text.contains("virtual_keys"),
        "no SQL in answers: {}",
        reply.text
    );
    // A grant already cached keeps working while storage is down.
    assert_eq!(env.chat(&cached, "open").await.status, 200);
    env.stop().await;
    db.drop().await;
}
