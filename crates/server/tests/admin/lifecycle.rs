//! Virtual keys through the admin API and the data plane: a new key works at once, a revoked
//! one fails on the very next request, a rotated one keeps working through its grace period
//! beside its successor, an expired one answers `expired_api_key`, and edits take effect.

use super::kit::{both, Db, Env};
use reqwest::Method;
use serde_json::json;

both!(
    create_revoke_rotate_expire,
    key_edits_and_listing,
    personal_keys
);

async fn create_revoke_rotate_expire(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], None).await;

    // Create: the secret is in the answer only; the key works at once.
    let created = env
        .admin_ok(
            Method::POST,
            "/orgs/acme/keys",
            json!({"team": "red", "app": "red-app", "name": "ci", "metadata": {"owner": "ci"}}),
            201,
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["active"], true);
    assert_eq!(created["metadata"]["owner"], "ci");
    assert_eq!(env.chat(&secret, "open").await.status, 200);
    let read = env
        .admin_ok(
            Method::GET,
            &format!("/orgs/acme/keys/{id}"),
            json!(null),
            200,
        )
        .await;
    assert!(read.get("secret").is_none(), "{read}");
    assert!(!read.to_string().contains(&secret));

    // Revoke: the very next request fails.
    let revoked = env
        .admin_ok(
            Method::POST,
            &format!("/orgs/acme/keys/{id}/revoke"),
            json!(null),
            200,
        )
        .await;
    assert!(revoked["revoked_at"].as_i64().is_some());
    assert_eq!(revoked["active"], false);
    let reply = env.chat(&secret, "open").await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    // A revoked key cannot be rotated.
    let reply = env
        .admin(Method::POST, &format!("/orgs/acme/keys/{id}/rotate"), None)
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);

    // Rotate with the default grace (the config's): both keys work, the old one has an expiry.
    let (old_id, old) = env.app_key("acme", "red").await;
    let rotated = env
        .admin_ok(
            Method::POST,
            &format!("/orgs/acme/keys/{old_id}/rotate"),
            json!(null),
            201,
        )
        .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(env.chat(&old, "open").await.status, 200);
    assert_eq!(env.chat(&new, "open").await.status, 200);
    let old_rec = env
        .admin_ok(
            Method::GET,
            &format!("/orgs/acme/keys/{old_id}"),
            json!(null),
            200,
        )
        .await;
    assert_eq!(old_rec["rotated_to"], rotated["id"]);
    let expires = old_rec["expires_at"]
        .as_i64()
        .expect("old key has an expiry");
    let now = now_ms();
    // The default grace is 24 h unless configured; the deadline is in the future.
    assert!(expires > now, "{old_rec}");

    // Rotate with a short grace: the old key expires and says so.
    let rotated2 = env
        .admin_ok(
            Method::POST,
            &format!("/orgs/acme/keys/{}/rotate", rotated["id"].as_str().unwrap()),
            json!({"grace_ms": 1500}),
            201,
        )
        .await;
    let newest = rotated2["secret"].as_str().unwrap().to_owned();
    assert_eq!(env.chat(&new, "open").await.status, 200, "within the grace");
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let reply = env.chat(&new, "open").await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.code(), "expired_api_key");
    assert_eq!(env.chat(&newest, "open").await.status, 200);

    // DELETE revokes too.
    let id = rotated2["id"].as_str().unwrap();
    let reply = env
        .admin(Method::DELETE, &format!("/orgs/acme/keys/{id}"), None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(env.chat(&newest, "open").await.status, 401);
    env.stop().await;
}

async fn key_edits_and_listing(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red", "blue"], None).await;
    let (id, secret) = env.app_key("acme", "red").await;
    env.app_key("acme", "blue").await;

    // Narrow the key to one model: others are refused and not listed.
    let updated = env
        .admin_ok(
            Method::PATCH,
            &format!("/orgs/acme/keys/{id}"),
            json!({"models": ["open"], "name": "narrow"}),
            200,
        )
        .await;
    assert_eq!(updated["name"], "narrow");
    assert_eq!(env.chat(&secret, "open").await.status, 200);
    let reply = env.chat(&secret, "other").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(env.model_ids(&secret).await, vec!["open".to_owned()]);
    // null = back to whatever the app may call.
    env.admin_ok(
        Method::PATCH,
        &format!("/orgs/acme/keys/{id}"),
        json!({"models": null}),
        200,
    )
    .await;
    assert_eq!(env.chat(&secret, "other").await.status, 200);

    // An expiry in the near future: works, then expires.
    let soon = now_ms() + 1500;
    env.admin_ok(
        Method::PATCH,
        &format!("/orgs/acme/keys/{id}"),
        json!({"expires_at": soon}),
        200,
    )
    .await;
    assert_eq!(env.chat(&secret, "open").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    assert_eq!(env.chat(&secret, "open").await.code(), "expired_api_key");

    // Filters and paging.
    let all = env.admin(Method::GET, "/orgs/acme/keys", None).await;
    assert_eq!(all.data().len(), 2, "{}", all.text);
    let red = env
        .admin(Method::GET, "/orgs/acme/keys?team=red&app=red-app", None)
        .await;
    assert_eq!(red.data().len(), 1, "{}", red.text);
    let page = env
        .admin(Method::GET, "/orgs/acme/keys?limit=1", None)
        .await;
    assert_eq!(page.data().len(), 1);
    let cursor = page.json()["next_cursor"].as_str().unwrap().to_owned();
    let next = env
        .admin(
            Method::GET,
            &format!("/orgs/acme/keys?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(next.data().len(), 1);
    assert_ne!(next.data()[0]["id"], page.data()[0]["id"]);
    assert!(next.json()["next_cursor"].is_null(), "{}", next.text);
    env.admin_ok(
        Method::POST,
        &format!("/orgs/acme/keys/{id}/revoke"),
        json!(null),
        200,
    )
    .await;
    let listed = env.admin(Method::GET, "/orgs/acme/keys", None).await;
    assert_eq!(listed.data().len(), 1);
    let listed = env
        .admin(Method::GET, "/orgs/acme/keys?include_revoked=true", None)
        .await;
    assert_eq!(listed.data().len(), 2);
    env.stop().await;
}

async fn personal_keys(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], None).await;
    // A developer known by a stored membership (no roles in the token).
    let member = env
        .admin_ok(
            Method::POST,
            "/orgs/acme/members",
            json!({"subject": "pat", "team": "red", "role": "developer"}),
            201,
        )
        .await;
    let user_id = member["user_id"].as_str().unwrap().to_owned();
    let pat = env.side.token("pat", json!({}));
    let me = env.call(Some(&pat), Method::GET, "/me", None).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["user_id"], user_id.as_str());
    assert_eq!(me.json()["roles"][0]["role"], "developer");

    // Their own personal key.
    let reply = env
        .call(
            Some(&pat),
            Method::POST,
            "/orgs/acme/keys",
            Some(json!({"user_id": user_id, "name": "laptop"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let key = reply.json();
    let secret = key["secret"].as_str().unwrap();
    assert_eq!(env.chat(secret, "open").await.status, 200);
    let id = key["id"].as_str().unwrap();
    let reply = env
        .call(
            Some(&pat),
            Method::POST,
            &format!("/orgs/acme/keys/{id}/revoke"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // Someone else's personal key needs an admin.
    let other = env
        .admin_ok(
            Method::POST,
            "/orgs/acme/members",
            json!({"subject": "sam", "role": "viewer"}),
            201,
        )
        .await;
    let reply = env
        .call(
            Some(&pat),
            Method::POST,
            "/orgs/acme/keys",
            Some(json!({"user_id": other["user_id"], "name": "not mine"})),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    env.stop().await;
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
