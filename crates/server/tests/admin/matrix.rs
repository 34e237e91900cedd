//! The role × endpoint matrix: for each kind of caller (the platform admin, each role held on
//! the organisation, roles held on one team, someone from another organisation, a virtual key,
//! nobody) and a representative endpoint of each action, the expected status. Roles come from
//! the tokens' claims here; stored memberships are covered in `lifecycle::personal_keys`.

use super::kit::{both, Db, Env, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};

both!(role_endpoint_matrix);

/// The callers, in the order of the expectation columns.
const CALLERS: [&str; 10] = [
    "platform",
    "owner",
    "admin",
    "developer",
    "viewer",
    "red-admin",
    "red-dev",
    "outsider",
    "key",
    "none",
];

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    /// The body for the n-th call (unique names where the endpoint creates something).
    body: fn(usize) -> Option<Value>,
    expect: [u16; 10],
}

fn none(_: usize) -> Option<Value> {
    None
}

fn cases(sub_id: &str) -> Vec<Case> {
    use Method as M;
    vec![
        Case {
            what: "read the org",
            method: M::GET,
            path: "/orgs/acme".into(),
            body: none,
            expect: [200, 200, 200, 200, 200, 200, 200, 404, 403, 401],
        },
        Case {
            what: "list keys (team roles see their team's)",
            method: M::GET,
            path: "/orgs/acme/keys".into(),
            body: none,
            expect: [200, 200, 200, 200, 200, 200, 200, 404, 403, 401],
        },
        Case {
            what: "read another team's apps",
            method: M::GET,
            path: "/orgs/acme/teams/blue/apps".into(),
            body: none,
            expect: [200, 200, 200, 200, 200, 403, 403, 404, 403, 401],
        },
        Case {
            what: "create a key for the red app",
            method: M::POST,
            path: "/orgs/acme/keys".into(),
            body: |_| Some(json!({"team": "red", "app": "red-app", "name": "k"})),
            expect: [201, 201, 201, 201, 403, 201, 201, 404, 403, 401],
        },
        Case {
            what: "create a key for the blue app",
            method: M::POST,
            path: "/orgs/acme/keys".into(),
            body: |_| Some(json!({"team": "blue", "app": "blue-app", "name": "k"})),
            expect: [201, 201, 201, 201, 403, 403, 403, 404, 403, 401],
        },
        Case {
            what: "request a subscription for the red app",
            method: M::POST,
            path: "/orgs/acme/subscriptions".into(),
            body: |_| Some(json!({"team": "red", "app": "red-app", "model": "gated"})),
            expect: [201, 201, 201, 201, 403, 201, 201, 404, 403, 401],
        },
        Case {
            what: "create an app in red",
            method: M::POST,
            path: "/orgs/acme/teams/red/apps".into(),
            body: |n| Some(json!({"name": format!("app-{n}")})),
            expect: [201, 201, 201, 403, 403, 201, 403, 404, 403, 401],
        },
        Case {
            what: "create a team",
            method: M::POST,
            path: "/orgs/acme/teams".into(),
            body: |n| Some(json!({"name": format!("team-{n}")})),
            expect: [201, 201, 201, 403, 403, 403, 403, 404, 403, 401],
        },
        Case {
            what: "make someone a viewer of red",
            method: M::POST,
            path: "/orgs/acme/members".into(),
            body: |n| Some(json!({"subject": format!("v-{n}"), "team": "red", "role": "viewer"})),
            expect: [201, 201, 201, 403, 403, 201, 403, 404, 403, 401],
        },
        Case {
            what: "make someone an org admin",
            method: M::POST,
            path: "/orgs/acme/members".into(),
            body: |n| Some(json!({"subject": format!("a-{n}"), "role": "admin"})),
            expect: [201, 201, 403, 403, 403, 403, 403, 404, 403, 401],
        },
        Case {
            what: "reject a subscription",
            method: M::POST,
            path: format!("/orgs/acme/subscriptions/{sub_id}/reject"),
            body: |_| Some(json!({"reason": "no"})),
            expect: [200, 200, 200, 403, 403, 403, 403, 404, 403, 401],
        },
        Case {
            what: "read the org's audit log",
            method: M::GET,
            path: "/orgs/acme/audit".into(),
            body: none,
            expect: [200, 200, 200, 403, 403, 403, 403, 404, 403, 401],
        },
        Case {
            what: "update the org",
            method: M::PATCH,
            path: "/orgs/acme".into(),
            body: |n| Some(json!({"display_name": format!("Acme {n}")})),
            expect: [200, 200, 403, 403, 403, 403, 403, 404, 403, 401],
        },
        Case {
            what: "create an org",
            method: M::POST,
            path: "/orgs".into(),
            body: |n| Some(json!({"name": format!("org-{n}")})),
            expect: [201, 403, 403, 403, 403, 403, 403, 403, 403, 401],
        },
        Case {
            what: "list users",
            method: M::GET,
            path: "/users".into(),
            body: none,
            expect: [200, 403, 403, 403, 403, 403, 403, 403, 403, 401],
        },
        Case {
            what: "read the whole audit log",
            method: M::GET,
            path: "/audit".into(),
            body: none,
            expect: [200, 403, 403, 403, 403, 403, 403, 403, 403, 401],
        },
        Case {
            what: "store a model",
            method: M::PUT,
            path: "/models/stored-1".into(),
            body: |_| Some(json!({"targets": [{"provider": "mock", "model": "echo"}]})),
            expect: [201, 403, 403, 403, 403, 403, 403, 403, 403, 401],
        },
        Case {
            what: "list stored models",
            method: M::GET,
            path: "/models".into(),
            body: none,
            expect: [200, 200, 200, 200, 200, 200, 200, 200, 403, 401],
        },
        Case {
            what: "list orgs",
            method: M::GET,
            path: "/orgs".into(),
            body: none,
            expect: [200, 200, 200, 200, 200, 200, 200, 200, 403, 401],
        },
    ]
}

async fn role_endpoint_matrix(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red", "blue"], None).await;
    env.seed_org("globex", &["green"], None).await;
    let (_, key) = env.app_key("acme", "red").await;
    let sub = env
        .admin_ok(
            Method::POST,
            "/orgs/acme/subscriptions",
            json!({"team": "red", "app": "red-app", "model": "gated"}),
            201,
        )
        .await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();

    let side = &env.side;
    let creds: [Option<String>; 10] = [
        Some(ADMIN.to_owned()),
        Some(side.token("owner", json!({"org": "acme", "role": "owner"}))),
        Some(side.token("admin", json!({"org": "acme", "role": "admin"}))),
        Some(side.token("dev", json!({"org": "acme", "role": "developer"}))),
        Some(side.token("viewer", json!({"org": "acme", "role": "viewer"}))),
        Some(side.token(
            "red-admin",
            json!({"org": "acme", "team": "red", "role": "admin"}),
        )),
        Some(side.token(
            "red-dev",
            json!({"org": "acme", "team": "red", "role": "developer"}),
        )),
        Some(side.token("outsider", json!({"org": "globex", "role": "owner"}))),
        Some(key),
        None,
    ];

    let mut wrong = Vec::new();
    let mut n = 0;
    for case in cases(&sub_id) {
        for (i, cred) in creds.iter().enumerate() {
            n += 1;
            if case.path.ends_with("/reject") {
                // Pending again before each try, so that a permitted rejection succeeds.
                let re = json!({"team": "red", "app": "red-app", "model": "gated"});
                env.admin_ok(Method::POST, "/orgs/acme/subscriptions", re, 201)
                    .await;
            }
            let reply = env
                .call(
                    cred.as_deref(),
                    case.method.clone(),
                    &case.path,
                    (case.body)(n),
                )
                .await;
            if reply.status != case.expect[i] {
                wrong.push(format!(
                    "{:<40} {:<10} expected {} got {}: {}",
                    case.what, CALLERS[i], case.expect[i], reply.status, reply.text
                ));
            }
            // Every refusal is in the error shape and says why.
            if reply.status >= 400 {
                assert!(!reply.message().is_empty(), "{}: {}", case.what, reply.text);
            }
        }
    }
    assert!(wrong.is_empty(), "matrix mismatches:\n{}", wrong.join("\n"));
    env.stop().await;
}
