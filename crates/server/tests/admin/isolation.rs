//! Tenant isolation: the owner of organisation B gets 404 on every list, get and update path of
//! organisation A (never 403, which would confirm that A exists); A's object ids under B's URL
//! are not found even for the platform admin; B's lists and audit log hold nothing of A; B's key
//! neither lists nor calls the models only A's app may use.

use super::kit::{both, Db, Env};
use reqwest::Method;
use serde_json::{json, Value};

both!(other_orgs_are_invisible);

async fn other_orgs_are_invisible(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], Some(json!(["open", "gated"])))
        .await;
    env.seed_org("globex", &["green"], Some(json!(["other"])))
        .await;
    let (a_key_id, _) = env.app_key("acme", "red").await;
    let (_, b_key) = env.app_key("globex", "green").await;
    let a_sub = env
        .admin_ok(
            Method::POST,
            "/orgs/acme/subscriptions",
            json!({"team": "red", "app": "red-app", "model": "gated"}),
            201,
        )
        .await;
    let a_sub = a_sub["id"].as_str().unwrap().to_owned();
    let a_member = env
        .admin_ok(
            Method::POST,
            "/orgs/acme/members",
            json!({"subject": "alice", "role": "developer"}),
            201,
        )
        .await;
    let a_member = a_member["id"].as_str().unwrap().to_owned();

    let b_owner = env
        .side
        .token("bob", json!({"org": "globex", "role": "owner"}));
    let key_body = json!({"team": "red", "app": "red-app", "name": "x"});
    let sub_body = json!({"team": "red", "app": "red-app", "model": "gated"});
    let paths: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/orgs/acme".into(), None),
        (
            Method::PATCH,
            "/orgs/acme".into(),
            Some(json!({"display_name": "x"})),
        ),
        (Method::DELETE, "/orgs/acme".into(), None),
        (Method::GET, "/orgs/acme/teams".into(), None),
        (
            Method::POST,
            "/orgs/acme/teams".into(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, "/orgs/acme/teams/red".into(), None),
        (Method::DELETE, "/orgs/acme/teams/red".into(), None),
        (Method::GET, "/orgs/acme/teams/red/apps".into(), None),
        (
            Method::POST,
            "/orgs/acme/teams/red/apps".into(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::GET,
            "/orgs/acme/teams/red/apps/red-app".into(),
            None,
        ),
        (
            Method::PATCH,
            "/orgs/acme/teams/red/apps/red-app".into(),
            Some(json!({"models": null})),
        ),
        (
            Method::DELETE,
            "/orgs/acme/teams/red/apps/red-app".into(),
            None,
        ),
        (Method::GET, "/orgs/acme/members".into(), None),
        (
            Method::POST,
            "/orgs/acme/members".into(),
            Some(json!({"subject": "x", "role": "viewer"})),
        ),
        (
            Method::PATCH,
            format!("/orgs/acme/members/{a_member}"),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::DELETE,
            format!("/orgs/acme/members/{a_member}"),
            None,
        ),
        (Method::GET, "/orgs/acme/keys".into(), None),
        (Method::POST, "/orgs/acme/keys".into(), Some(key_body)),
        (Method::GET, format!("/orgs/acme/keys/{a_key_id}"), None),
        (
            Method::PATCH,
            format!("/orgs/acme/keys/{a_key_id}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/orgs/acme/keys/{a_key_id}"), None),
        (
            Method::POST,
            format!("/orgs/acme/keys/{a_key_id}/revoke"),
            None,
        ),
        (
            Method::POST,
            format!("/orgs/acme/keys/{a_key_id}/rotate"),
            None,
        ),
        (Method::GET, "/orgs/acme/subscriptions".into(), None),
        (
            Method::POST,
            "/orgs/acme/subscriptions".into(),
            Some(sub_body),
        ),
        (
            Method::GET,
            format!("/orgs/acme/subscriptions/{a_sub}"),
            None,
        ),
        (
            Method::POST,
            format!("/orgs/acme/subscriptions/{a_sub}/approve"),
            None,
        ),
        (
            Method::POST,
            format!("/orgs/acme/subscriptions/{a_sub}/reject"),
            None,
        ),
        (Method::GET, "/orgs/acme/audit".into(), None),
    ];
    for (method, path, body) in &paths {
        let reply = env
            .call(Some(&b_owner), method.clone(), path, body.clone())
            .await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
        assert!(
            reply.message().contains("`acme` not found"),
            "{}",
            reply.text
        );
        // The same answer as for an organisation that does not exist.
        let ghost = path.replacen("/orgs/acme", "/orgs/nope", 1);
        let reply = env
            .call(Some(&b_owner), method.clone(), &ghost, body.clone())
            .await;
        assert_eq!(reply.status, 404, "{method} {ghost}: {}", reply.text);
    }

    // A's ids under B's URL: not found, for B's owner and for the platform admin alike.
    let cross: Vec<(Method, String)> = vec![
        (Method::GET, format!("/orgs/globex/keys/{a_key_id}")),
        (Method::PATCH, format!("/orgs/globex/keys/{a_key_id}")),
        (Method::POST, format!("/orgs/globex/keys/{a_key_id}/revoke")),
        (Method::POST, format!("/orgs/globex/keys/{a_key_id}/rotate")),
        (Method::GET, format!("/orgs/globex/subscriptions/{a_sub}")),
        (
            Method::POST,
            format!("/orgs/globex/subscriptions/{a_sub}/approve"),
        ),
        (
            Method::POST,
            format!("/orgs/globex/subscriptions/{a_sub}/reject"),
        ),
        (Method::PATCH, format!("/orgs/globex/members/{a_member}")),
        (Method::DELETE, format!("/orgs/globex/members/{a_member}")),
        (Method::GET, "/orgs/globex/teams/red".into()),
        (Method::GET, "/orgs/globex/teams/red/apps/red-app".into()),
    ];
    for (method, path) in &cross {
        let body = match *method {
            Method::PATCH if path.contains("/members/") => Some(json!({"role": "viewer"})),
            Method::PATCH => Some(json!({"name": "x"})),
            _ => None,
        };
        for cred in [b_owner.as_str(), super::kit::ADMIN] {
            let reply = env
                .call(Some(cred), method.clone(), path, body.clone())
                .await;
            assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
        }
    }
    // A's key still works: nothing above changed it.
    let a_key = env
        .admin_ok(
            Method::GET,
            &format!("/orgs/acme/keys/{a_key_id}"),
            json!(null),
            200,
        )
        .await;
    assert_eq!(a_key["active"], true);
    assert!(a_key["rotated_to"].is_null());

    // B's own lists hold nothing of A.
    let orgs = env.call(Some(&b_owner), Method::GET, "/orgs", None).await;
    let names: Vec<String> = orgs
        .data()
        .iter()
        .filter_map(|o| o["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["globex".to_owned()]);
    for list in ["keys", "members", "subscriptions", "teams", "audit"] {
        let reply = env
            .call(
                Some(&b_owner),
                Method::GET,
                &format!("/orgs/globex/{list}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{list}: {}", reply.text);
        assert!(!reply.text.contains("acme"), "{list}: {}", reply.text);
        assert!(!reply.text.contains(&a_key_id), "{list}: {}", reply.text);
    }

    // B's key neither lists nor calls A's models.
    assert_eq!(env.model_ids(&b_key).await, vec!["other".to_owned()]);
    let reply = env.chat(&b_key, "open").await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(env.chat(&b_key, "other").await.status, 200);
    env.stop().await;
}
