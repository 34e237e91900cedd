//! Bad input to every kind of admin endpoint gets a 4xx in the error shape with a message that
//! says what is wrong (and `param` naming the field where there is one): malformed JSON,
//! missing and mistyped fields, unknown fields, bad slugs, unknown roles, bad query parameters,
//! wrong methods and unknown routes. Also: config the server's file defines is read-only, and
//! stored config is validated before it is stored.

use super::kit::{both, Db, Env, ADMIN};
use reqwest::Method;
use serde_json::json;

both!(bad_input_is_refused_clearly, stored_config_is_validated);

async fn bad_input_is_refused_clearly(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], None).await;
    let (key_id, _) = env.app_key("acme", "red").await;
    let sub = env
        .admin_ok(
            Method::POST,
            "/orgs/acme/subscriptions",
            json!({"team": "red", "app": "red-app", "model": "gated"}),
            201,
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    // Every endpoint that takes a body: invalid JSON, and not an object.
    let with_body: Vec<(Method, String)> = vec![
        (Method::POST, "/orgs".into()),
        (Method::PATCH, "/orgs/acme".into()),
        (Method::POST, "/orgs/acme/teams".into()),
        (Method::POST, "/orgs/acme/teams/red/apps".into()),
        (Method::PATCH, "/orgs/acme/teams/red/apps/red-app".into()),
        (Method::POST, "/orgs/acme/members".into()),
        (Method::POST, "/users".into()),
        (Method::POST, "/orgs/acme/keys".into()),
        (Method::PATCH, format!("/orgs/acme/keys/{key_id}")),
        (Method::POST, format!("/orgs/acme/keys/{key_id}/rotate")),
        (Method::POST, "/orgs/acme/subscriptions".into()),
        (
            Method::POST,
            format!("/orgs/acme/subscriptions/{sub_id}/reject"),
        ),
        (Method::PUT, "/providers/p1".into()),
        (Method::PUT, "/models/m1".into()),
    ];
    for (method, path) in &with_body {
        let reply = env.call_raw(ADMIN, method.clone(), path, "{oops").await;
        assert_eq!(reply.status, 400, "{method} {path}: {}", reply.text);
        assert_eq!(
            reply.code(),
            "invalid_json",
            "{method} {path}: {}",
            reply.text
        );
        assert!(reply.message().contains("not valid JSON"), "{}", reply.text);
        let reply = env.call_raw(ADMIN, method.clone(), path, "[1, 2]").await;
        assert_eq!(reply.status, 400, "{method} {path}: {}", reply.text);
        assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    }

    // Missing, mistyped and unknown fields, bad slugs and roles: the field is named.
    let cases: Vec<(Method, &str, serde_json::Value, &str, &str)> = vec![
        (
            Method::POST,
            "/orgs",
            json!({}),
            "name",
            "`name` is required",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": 7}),
            "name",
            "invalid type",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": "Bad Slug!"}),
            "",
            "invalid organisation name",
        ),
        (
            Method::POST,
            "/orgs",
            json!({"name": "ok", "colour": 1}),
            "",
            "unknown field `colour`",
        ),
        (
            Method::POST,
            "/orgs/acme/teams",
            json!({"name": "-x"}),
            "",
            "invalid team name",
        ),
        (
            Method::POST,
            "/orgs/acme/teams/red/apps",
            json!({"name": "a", "models": "gpt"}),
            "models",
            "invalid type",
        ),
        (
            Method::POST,
            "/orgs/acme/members",
            json!({"subject": "s", "role": "superuser"}),
            "role",
            "unknown variant `superuser`",
        ),
        (
            Method::POST,
            "/orgs/acme/members",
            json!({"subject": "s"}),
            "role",
            "`role` is required",
        ),
        (
            Method::POST,
            "/orgs/acme/members",
            json!({"role": "viewer"}),
            "user_id",
            "exactly one",
        ),
        (
            Method::POST,
            "/users",
            json!({"email": "a@b"}),
            "subject",
            "`subject` is required",
        ),
        (
            Method::POST,
            "/orgs/acme/keys",
            json!({"team": "red", "app": "red-app"}),
            "name",
            "`name` is required",
        ),
        (
            Method::POST,
            "/orgs/acme/keys",
            json!({"name": "k"}),
            "app",
            "give `team` and `app`",
        ),
        (
            Method::POST,
            "/orgs/acme/keys",
            json!({"app": "red-app", "name": "k"}),
            "team",
            "`team` is required",
        ),
        (
            Method::POST,
            "/orgs/acme/keys",
            json!({"team": "red", "app": "red-app", "name": "k", "expires_at": 1}),
            "",
            "in the future",
        ),
        (
            Method::POST,
            "/orgs/acme/keys",
            json!({"team": "red", "app": "red-app", "name": "k", "expires_at": "soon"}),
            "expires_at",
            "invalid type",
        ),
        (
            Method::PATCH,
            "/orgs/acme/keys/KEY",
            json!({"metadata": [1]}),
            "metadata",
            "invalid type",
        ),
        (
            Method::POST,
            "/orgs/acme/keys/KEY/rotate",
            json!({"grace_ms": -5}),
            "",
            "negative",
        ),
        (
            Method::POST,
            "/orgs/acme/subscriptions",
            json!({"team": "red", "app": "red-app", "model": ["gated"]}),
            "model",
            "invalid type",
        ),
        (
            Method::PUT,
            "/models/m1",
            json!({"targets": [{"provider": "nope", "model": "x"}]}),
            "m1",
            "nope",
        ),
        (
            Method::PUT,
            "/providers/p1",
            json!({"type": "warp-drive"}),
            "p1",
            "warp-drive",
        ),
    ];
    for (method, path, body, param, needle) in cases {
        let path = path.replace("KEY", &key_id);
        let reply = env.admin(method.clone(), &path, Some(body.clone())).await;
        assert_eq!(reply.status, 400, "{method} {path} {body}: {}", reply.text);
        assert!(
            reply.message().contains(needle),
            "{method} {path} {body}: {}",
            reply.text
        );
        if !param.is_empty() {
            assert_eq!(
                reply.json()["error"]["param"],
                param,
                "{path} {body}: {}",
                reply.text
            );
        }
    }

    // Empty bodies where one is needed.
    let reply = env.call_raw(ADMIN, Method::POST, "/orgs", "").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.message().contains("needs a JSON body"),
        "{}",
        reply.text
    );

    // Query parameters.
    for path in [
        "/orgs?limit=lots",
        "/orgs/acme/keys?include_revoked=perhaps",
        "/orgs/acme/keys?app=red-app",
        "/audit?cursor=abc",
    ] {
        let reply = env.admin(Method::GET, path, None).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert!(!reply.message().is_empty());
    }

    // Unknown objects, routes and methods.
    for path in [
        "/orgs/nope",
        "/orgs/acme/teams/nope",
        "/orgs/acme/teams/red/apps/nope",
        "/orgs/acme/keys/key_nope",
        "/orgs/acme/subscriptions/sub_nope",
        "/models/nope",
        "/providers/nope",
        "/no/such/route",
    ] {
        let reply = env.admin(Method::GET, path, None).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert!(
            reply.message().contains("not found") || reply.message().contains("no admin route")
        );
    }
    let reply = env.admin(Method::PUT, "/orgs", Some(json!({}))).await;
    assert_eq!(reply.status, 405, "{}", reply.text);
    assert_eq!(reply.code(), "method_not_allowed");

    // Credentials.
    let reply = env.call(None, Method::GET, "/orgs", None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.code(), "missing_api_key");
    let reply = env
        .call(Some("sk-sb-not-a-real-key"), Method::GET, "/orgs", None)
        .await;
    assert_eq!(reply.status, 401);
    let forged = env.side.token("x", json!({"org": "acme", "role": "owner"})) + "x";
    let reply = env.call(Some(&forged), Method::GET, "/orgs", None).await;
    assert_eq!(reply.status, 401, "{}", reply.text);
    let reply = env
        .send(
            env.client
                .get(env.url("/admin/v1/orgs"))
                .header("x-api-key", ADMIN),
        )
        .await;
    assert_eq!(reply.status, 200, "x-api-key works too: {}", reply.text);

    // Conflicts.
    let reply = env
        .admin(Method::POST, "/orgs", Some(json!({"name": "acme"})))
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert!(reply.message().contains("already exists"), "{}", reply.text);
    env.stop().await;
}

async fn stored_config_is_validated(db: Db) {
    let env = Env::start(db).await;
    // Names the server's file defines are read-only.
    let model = json!({"targets": [{"provider": "mock", "model": "echo"}]});
    for path in ["/models/open", "/providers/mock"] {
        let reply = env.admin(Method::PUT, path, Some(model.clone())).await;
        assert_eq!(reply.status, 409, "{path}: {}", reply.text);
        assert_eq!(reply.code(), "defined_in_config_file");
        let reply = env.admin(Method::DELETE, path, None).await;
        assert_eq!(reply.status, 409, "{path}: {}", reply.text);
    }

    // A stored provider and a model on it: live at once, the API key never shown.
    let keyed = json!({"type": "openai", "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-upstream-secret"});
    let reply = env
        .admin(Method::PUT, "/providers/keyed", Some(keyed))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json()["has_api_key"], true);
    assert!(!reply.text.contains("sk-upstream-secret"));
    let got = env
        .admin_ok(Method::GET, "/providers/keyed", json!(null), 200)
        .await;
    assert!(!got.to_string().contains("sk-upstream-secret"), "{got}");
    // Without `api_key` the stored key is kept.
    let reply = env
        .admin(
            Method::PUT,
            "/providers/keyed",
            Some(json!({"type": "openai", "base_url": "http://127.0.0.1:9/v2"})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["has_api_key"], true);
    env.admin_ok(
        Method::PUT,
        "/providers/stored-p",
        json!({"type": "mock"}),
        201,
    )
    .await;
    let m = json!({"targets": [{"provider": "stored-p", "model": "echo"}]});
    env.admin_ok(Method::PUT, "/models/stored-m", m.clone(), 201)
        .await;
    env.admin_ok(Method::PUT, "/models/stored-m", m, 200).await;
    assert_eq!(env.chat(ADMIN, "stored-m").await.status, 200);
    let list = env.admin(Method::GET, "/models", None).await;
    assert_eq!(list.data().len(), 1, "{}", list.text);

    // The provider is in use: it cannot go before the model.
    let reply = env.admin(Method::DELETE, "/providers/stored-p", None).await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert!(reply.message().contains("stored-p"), "{}", reply.text);
    env.admin_ok(Method::DELETE, "/models/stored-m", json!(null), 204)
        .await;
    assert_eq!(env.chat(ADMIN, "stored-m").await.status, 404);
    env.admin_ok(Method::DELETE, "/providers/stored-p", json!(null), 204)
        .await;

    // Every change is in the audit log, with the actor.
    let audit = env.admin(Method::GET, "/audit?limit=500", None).await;
    let actions: Vec<String> = audit
        .data()
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect();
    for action in [
        "provider.create",
        "model.create",
        "model.delete",
        "provider.delete",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }
    assert!(!audit.text.contains("sk-upstream-secret"));
    env.stop().await;
}
