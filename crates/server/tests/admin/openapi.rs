//! The OpenAPI document at `/admin/v1/openapi.json`: served without credentials, valid JSON
//! of OpenAPI 3, and lists every admin route with its method, parameters and responses.

use super::kit::{Db, Env};
use serde_json::Value;

/// Every admin route (below `/admin/v1`) and its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/me", &["get"]),
    ("/rate-limits", &["get"]),
    ("/rate-limits/{name}", &["get", "put", "delete"]),
    ("/budgets", &["get"]),
    ("/budgets/{name}", &["get", "put", "delete"]),
    ("/usage", &["get"]),
    ("/limits/status", &["get"]),
    ("/logs", &["get"]),
    ("/logs/export", &["get"]),
    ("/logs/{request_id}", &["get"]),
    ("/analytics/timeseries", &["get"]),
    ("/analytics/top", &["get"]),
    ("/alerts", &["get"]),
    ("/orgs", &["get", "post"]),
    ("/orgs/{org}", &["get", "patch", "delete"]),
    ("/orgs/{org}/teams", &["get", "post"]),
    ("/orgs/{org}/teams/{team}", &["get", "delete"]),
    ("/orgs/{org}/teams/{team}/apps", &["get", "post"]),
    (
        "/orgs/{org}/teams/{team}/apps/{app}",
        &["get", "patch", "delete"],
    ),
    ("/orgs/{org}/members", &["get", "post"]),
    ("/orgs/{org}/members/{id}", &["patch", "delete"]),
    ("/users", &["get", "post"]),
    ("/orgs/{org}/keys", &["get", "post"]),
    ("/orgs/{org}/keys/{id}", &["get", "patch", "delete"]),
    ("/orgs/{org}/keys/{id}/revoke", &["post"]),
    ("/orgs/{org}/keys/{id}/rotate", &["post"]),
    ("/orgs/{org}/subscriptions", &["get", "post"]),
    ("/orgs/{org}/subscriptions/{id}", &["get"]),
    ("/orgs/{org}/subscriptions/{id}/approve", &["post"]),
    ("/orgs/{org}/subscriptions/{id}/reject", &["post"]),
    ("/providers", &["get"]),
    ("/providers/{name}", &["get", "put", "delete"]),
    ("/models", &["get"]),
    ("/models/{name}", &["get", "put", "delete"]),
    ("/prompts", &["get"]),
    ("/prompts/{name}", &["get", "put", "delete"]),
    ("/prompts/{name}/versions", &["post"]),
    ("/prompts/{name}/labels/{label}", &["put", "delete"]),
    ("/prompts/{name}/render", &["post"]),
    ("/apis", &["get"]),
    ("/apis/{name}", &["get", "put", "delete"]),
    ("/apis/{name}/versions/{version}/status", &["put"]),
    ("/audit", &["get"]),
    ("/orgs/{org}/audit", &["get"]),
    ("/config/apply", &["post"]),
    ("/config/export", &["get"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route() {
    let db = Db::sqlite();
    let env = Env::start(db.clone()).await;
    let reply = env
        .send(env.client.get(env.url("/admin/v1/openapi.json")))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let doc = reply.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert_eq!(doc["servers"][0]["url"], "/admin/v1");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        for method in *methods {
            let op = &item[*method];
            assert!(op.is_object(), "{method} {path} is not documented");
            assert!(op["responses"]["401"].is_object(), "{method} {path}");
            assert!(
                !op["tags"].as_array().unwrap().is_empty(),
                "{method} {path}"
            );
            // Every `{param}` of the path is declared.
            for part in path.split('/').filter(|p| p.starts_with('{')) {
                let name = part.trim_matches(|c| c == '{' || c == '}');
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {path}: path parameter {name}");
            }
        }
    }
    // And nothing undocumented-but-listed or listed-but-unknown.
    let documented: usize = paths
        .values()
        .map(|item| {
            item.as_object()
                .map_or(0, |m| m.keys().filter(|k| is_method(k)).count())
        })
        .sum();
    let expected: usize = ROUTES.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        documented,
        expected,
        "{}",
        serde_json::to_string_pretty(&doc["paths"]).unwrap()
    );
    // Schemas the responses refer to exist.
    for name in [
        "Org",
        "Key",
        "CreatedKey",
        "Subscription",
        "Member",
        "AuditEntry",
        "Prompt",
        "PromptVersion",
        "Rendered",
        "Api",
        "StatusReply",
    ] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "schema {name}"
        );
    }
    env.stop().await;
    db.drop().await;
}

fn is_method(key: &str) -> bool {
    matches!(key, "get" | "post" | "put" | "patch" | "delete")
}

#[test]
fn the_document_is_built_from_the_code() {
    let doc: Value = serde_json::to_value(switchboard::admin::openapi_document()).unwrap();
    assert!(doc["paths"]["/orgs/{org}/keys/{id}/rotate"]["post"].is_object());
}
