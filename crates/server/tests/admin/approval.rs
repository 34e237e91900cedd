//! Subscription approval end to end: a `requires_approval` model is refused to an app's key
//! until its subscription is approved, pending and rejected requests say so (with the reason),
//! and every decision reaches the approval webhook.

use super::kit::{both, Db, Env};
use reqwest::Method;
use serde_json::json;

both!(approval_flow_end_to_end, subscription_requests_are_checked);

async fn approval_flow_end_to_end(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], None).await;
    let (_, key) = env.app_key("acme", "red").await;

    // Open models work at once; the gated one needs a subscription.
    assert_eq!(env.chat(&key, "open").await.status, 200);
    let reply = env.chat(&key, "gated").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.code(), "approval_required");

    // A developer of the team requests it.
    let dev = env.side.token(
        "dev-1",
        json!({"org": "acme", "team": "red", "role": "developer"}),
    );
    let req = json!({"team": "red", "app": "red-app", "model": "gated"});
    let reply = env
        .call(
            Some(&dev),
            Method::POST,
            "/orgs/acme/subscriptions",
            Some(req.clone()),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let sub = reply.json();
    assert_eq!(sub["status"], "pending");
    assert_eq!(sub["requested_by"], "user:dev-1");
    let id = sub["id"].as_str().unwrap().to_owned();

    let reply = env.chat(&key, "gated").await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.code(), "subscription_pending");
    assert!(reply.message().contains("pending"), "{}", reply.text);

    // The developer cannot approve their own request; an org admin can.
    let reply = env
        .call(
            Some(&dev),
            Method::POST,
            &format!("/orgs/acme/subscriptions/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert!(reply.message().contains("`admin`"), "{}", reply.text);
    let admin = env
        .side
        .token("boss", json!({"org": "acme", "role": "admin"}));
    let reply = env
        .call(
            Some(&admin),
            Method::POST,
            &format!("/orgs/acme/subscriptions/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "approved");
    assert_eq!(reply.json()["decided_by"], "user:boss");

    let reply = env.chat(&key, "gated").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(env.model_ids(&key).await.contains(&"gated".to_owned()));

    let hooks = env.side.wait_hooks(1).await;
    assert_eq!(hooks[0]["event"], "subscription.approved");
    assert_eq!(hooks[0]["org"], "acme");
    assert_eq!(hooks[0]["app"], "red-app");
    assert_eq!(hooks[0]["subscription"]["id"], id.as_str());
    assert_eq!(hooks[0]["subscription"]["target"], "gated");
    assert!(hooks[0]["at"].as_i64().unwrap() > 0);

    // Withdrawn with a reason: callers see it.
    let reply = env
        .call(
            Some(&admin),
            Method::POST,
            &format!("/orgs/acme/subscriptions/{id}/reject"),
            Some(json!({"reason": "budget exhausted for Q3"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "rejected");
    let reply = env.chat(&key, "gated").await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.code(), "subscription_rejected");
    assert!(
        reply.message().contains("budget exhausted for Q3"),
        "{}",
        reply.text
    );

    let hooks = env.side.wait_hooks(2).await;
    assert_eq!(hooks[1]["event"], "subscription.rejected");
    assert_eq!(hooks[1]["reason"], "budget exhausted for Q3");

    // Deciding twice is a conflict; a new request makes it pending again.
    let reply = env
        .admin(
            Method::POST,
            &format!("/orgs/acme/subscriptions/{id}/reject"),
            None,
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    let reply = env
        .call(
            Some(&dev),
            Method::POST,
            "/orgs/acme/subscriptions",
            Some(req),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["status"], "pending");
    assert_eq!(env.chat(&key, "gated").await.code(), "subscription_pending");

    // Listing and filtering.
    let list = env
        .admin(Method::GET, "/orgs/acme/subscriptions?status=pending", None)
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.data().len(), 1);
    let list = env
        .admin(
            Method::GET,
            "/orgs/acme/subscriptions?status=approved",
            None,
        )
        .await;
    assert_eq!(list.data().len(), 0);
    let one = env
        .call(
            Some(&dev),
            Method::GET,
            &format!("/orgs/acme/subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    env.stop().await;
}

async fn subscription_requests_are_checked(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red", "blue"], None).await;
    let path = "/orgs/acme/subscriptions";
    for (body, status, param) in [
        (
            json!({"team": "red", "app": "red-app", "model": "nope"}),
            404,
            "model",
        ),
        (json!({"team": "red", "app": "red-app"}), 400, "model"),
        (
            json!({"team": "red", "app": "red-app", "model": "gated", "api": "x"}),
            400,
            "model",
        ),
        (
            json!({"team": "red", "app": "blue-app", "model": "gated"}),
            404,
            "",
        ),
        (
            json!({"team": "nope", "app": "red-app", "model": "gated"}),
            404,
            "",
        ),
        (json!({"app": "red-app", "model": "gated"}), 400, "team"),
    ] {
        let reply = env.admin(Method::POST, path, Some(body.clone())).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        if !param.is_empty() {
            assert_eq!(
                reply.json()["error"]["param"],
                param,
                "{body}: {}",
                reply.text
            );
        }
    }
    // A developer of another team may not ask for this team's app.
    let blue_dev = env.side.token(
        "blue-dev",
        json!({"org": "acme", "team": "blue", "role": "developer"}),
    );
    let reply = env
        .call(
            Some(&blue_dev),
            Method::POST,
            path,
            Some(json!({"team": "red", "app": "red-app", "model": "gated"})),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let reply = env
        .admin(Method::GET, "/orgs/acme/subscriptions?status=maybe", None)
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["error"]["param"], "status");
    env.stop().await;
}
