//! The call log API through real HTTP: filters, paging without repeats or gaps, one request
//! with its details, JSONL export, tenant isolation (another organisation's rows and requests
//! are invisible, and its name answers 404), bad parameters answer 400 naming the field.

use super::admin_kit::{both, Db, ADMIN};
use super::analytics_kit::{chat, get, owner, start, two_orgs, wait_written};
use serde_json::Value;
use std::collections::BTreeSet;

both!(log_api_lists_pages_filters_and_isolates);

async fn log_api_lists_pages_filters_and_isolates(db: Db) {
    let env = start(db, "").await;
    let (acme, globex) = two_orgs(&env).await;
    for i in 0..9 {
        let tags = if i % 3 == 0 { Some("env=prod") } else { None };
        assert_eq!(
            chat(&env, &acme, "open", &format!("a-{i}"), tags).await,
            200
        );
    }
    assert_ne!(chat(&env, &acme, "broken", "a-broken", None).await, 200);
    for i in 0..4 {
        assert_eq!(
            chat(&env, &globex, "open", &format!("g-{i}"), None).await,
            200
        );
    }
    wait_written(&env, 14).await;

    // Paging: every acme row once, newest first.
    let mut seen = Vec::new();
    let mut path = "/logs?org=acme&limit=3".to_owned();
    loop {
        let (status, page) = get(&env, ADMIN, &path).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 3);
        seen.extend(data.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/logs?org=acme&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<&str> = seen
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 10, "{ids:?}");
    assert_eq!(unique.len(), 10, "no row twice: {ids:?}");
    assert!(seen.iter().all(|e| e["org"] == "acme"));
    for pair in seen.windows(2) {
        assert!(pair[0]["started_at_ms"].as_i64() >= pair[1]["started_at_ms"].as_i64());
    }

    // Filters.
    let count = |v: &Value| v["data"].as_array().unwrap().len();
    let (_, tagged) = get(&env, ADMIN, "/logs?org=acme&tag=env%3Dprod").await;
    assert_eq!(count(&tagged), 3);
    let (_, errors) = get(&env, ADMIN, "/logs?outcome=error").await;
    assert_eq!(count(&errors), 1);
    let failed = &errors["data"][0];
    assert_eq!(failed["request_id"], "a-broken");
    assert!(failed["error_code"].is_string(), "{failed}");
    let (_, by_target) = get(&env, ADMIN, "/logs?target=mock/echo").await;
    assert_eq!(count(&by_target), 13);
    let (_, by_alias) = get(&env, ADMIN, "/logs?alias=broken").await;
    assert_eq!(count(&by_alias), 1);
    let (_, by_team) = get(&env, ADMIN, "/logs?org=globex&team=green").await;
    assert_eq!(count(&by_team), 4);
    let (_, by_status) = get(&env, ADMIN, "/logs?status=200&org=globex").await;
    assert_eq!(count(&by_status), 4);
    let (_, none) = get(&env, ADMIN, "/logs?from=1&to=2").await;
    assert_eq!(count(&none), 0);

    // One request, with the call log's details.
    let (status, one) = get(&env, ADMIN, "/logs/a-1").await;
    assert_eq!(status, 200, "{one}");
    let call = &one["data"][0];
    assert_eq!(call["alias"], "open");
    assert_eq!(call["team"], "red");
    assert_eq!(call["status"], 200);
    assert_eq!(call["route"], "/v1/chat/completions");
    assert_eq!(call["user_agent"], "obs-test/1");
    assert_eq!(call["client_ip"], "127.0.0.1");
    for field in ["attempt_log", "trace_id", "cache", "guardrail"] {
        assert!(call.get(field).is_some(), "{field} in {call}");
    }

    // Export: every matching row, one JSON object per line.
    let resp = env
        .client
        .get(env.url("/admin/v1/logs/export?org=acme"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let text = resp.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines, seen);

    // Tenant isolation: globex's owner sees globex only.
    let g = owner(&env, "globex");
    let (status, own) = get(&env, &g, "/logs").await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(count(&own), 4);
    assert!(own["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["org"] == "globex"));
    assert_eq!(get(&env, &g, "/logs?org=acme").await.0, 404);
    assert_eq!(get(&env, &g, "/logs/a-1").await.0, 404);
    assert_eq!(get(&env, &g, "/logs/g-1").await.0, 200);
    assert_eq!(get(&env, &g, "/logs/export?org=acme").await.0, 404);
    assert_eq!(get(&env, ADMIN, "/logs/no-such-request").await.0, 404);
    // A viewer of one team sees that team's rows only, and not another team's.
    let red = env.side.token(
        "red-viewer",
        serde_json::json!({"org": "acme", "team": "red", "role": "viewer"}),
    );
    let (status, team_rows) = get(&env, &red, "/logs").await;
    assert_eq!(status, 200, "{team_rows}");
    assert_eq!(count(&team_rows), 10);
    assert!(team_rows["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["team"] == "red"));
    assert_ne!(get(&env, &red, "/logs?team=blue").await.0, 200);
    assert_eq!(get(&env, &red, "/logs/g-1").await.0, 404);
    // Without credentials.
    let anon = env
        .client
        .get(env.url("/admin/v1/logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);

    // Bad parameters name their field.
    for (path, param) in [
        ("/logs?limit=0", "limit"),
        ("/logs?limit=5000", "limit"),
        ("/logs?cursor=garbage", "cursor"),
        ("/logs?outcome=maybe", "outcome"),
        ("/logs?status=9999", "status"),
        ("/logs?tag=novalue", "tag"),
        ("/logs?from=10&to=5", "to"),
        ("/logs?org=acme&app=x", "team"),
        ("/logs?from=yesterday", "from"),
        ("/logs/export?cursor=x", "cursor"),
    ] {
        let (status, body) = get(&env, ADMIN, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]["param"] == param
                || body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains(param),
            "{path}: {body}"
        );
    }
    env.server.shutdown().await;
}

both!(log_api_filters_by_key_app_and_error_code);

/// `key_id`, `app` and `error_code` each select exactly their rows: two keys of one app, a
/// key of another app of the same team, and two error codes (an unreachable upstream, a spent
/// budget of team `blue`).
async fn log_api_filters_by_key_app_and_error_code(db: Db) {
    let budget =
        "budgets:\n  - { name: blue-broke, scope: team, match: { org: acme, team: blue }, \
                  period: day, usd: \"0.000001\" }\n";
    let env = start(db, budget).await;
    env.seed_org("acme", &["red", "blue"], None).await;
    let (first_id, first) = env.app_key("acme", "red").await;
    let (second_id, second) = env.app_key("acme", "red").await;
    env.admin_ok(
        reqwest::Method::POST,
        "/orgs/acme/teams/red/apps",
        serde_json::json!({"name": "red-tools"}),
        201,
    )
    .await;
    let tools = env
        .admin_ok(
            reqwest::Method::POST,
            "/orgs/acme/keys",
            serde_json::json!({"team": "red", "app": "red-tools", "name": "tools key"}),
            201,
        )
        .await;
    let (tools_id, tools) = (
        tools["id"].as_str().unwrap().to_owned(),
        tools["secret"].as_str().unwrap().to_owned(),
    );
    let (_, blue) = env.app_key("acme", "blue").await;
    for i in 0..3 {
        assert_eq!(
            chat(&env, &first, "open", &format!("first-{i}"), None).await,
            200
        );
    }
    assert_ne!(
        chat(&env, &first, "broken", "first-broken", None).await,
        200
    );
    for i in 0..2 {
        assert_eq!(
            chat(&env, &second, "open", &format!("second-{i}"), None).await,
            200
        );
    }
    for i in 0..2 {
        assert_eq!(
            chat(&env, &tools, "open", &format!("tools-{i}"), None).await,
            200
        );
    }
    for i in 0..2 {
        assert_eq!(
            chat(&env, &blue, "open", &format!("blue-{i}"), None).await,
            429
        );
    }
    wait_written(&env, 10).await;

    let ids = |page: &Value| -> BTreeSet<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| (*n).to_owned()).collect() };
    let list = |query: String| {
        let env = &env;
        async move {
            let (status, page) = get(env, ADMIN, &format!("/logs?{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            page
        }
    };
    let page = list(format!("key_id={first_id}")).await;
    assert_eq!(
        ids(&page),
        set(&["first-0", "first-1", "first-2", "first-broken"])
    );
    assert!(page["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["key_id"] == first_id.as_str()));
    let page = list(format!("key_id={second_id}")).await;
    assert_eq!(ids(&page), set(&["second-0", "second-1"]));
    let page = list(format!("key_id={tools_id}")).await;
    assert_eq!(ids(&page), set(&["tools-0", "tools-1"]));

    let page = list("org=acme&team=red&app=red-tools".to_owned()).await;
    assert_eq!(ids(&page), set(&["tools-0", "tools-1"]));
    let page = list("org=acme&team=red&app=red-app".to_owned()).await;
    assert_eq!(
        ids(&page),
        set(&[
            "first-0",
            "first-1",
            "first-2",
            "first-broken",
            "second-0",
            "second-1"
        ])
    );

    let page = list("error_code=budget_exceeded".to_owned()).await;
    assert_eq!(ids(&page), set(&["blue-0", "blue-1"]));
    assert!(page["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["status"] == 429 && e["team"] == "blue"));
    let (_, broken) = get(&env, ADMIN, "/logs/first-broken").await;
    let code = broken["data"][0]["error_code"].as_str().unwrap().to_owned();
    assert_ne!(code, "budget_exceeded");
    let page = list(format!("error_code={code}")).await;
    assert_eq!(ids(&page), set(&["first-broken"]));
    let page = list("error_code=no_such_code".to_owned()).await;
    assert_eq!(ids(&page), BTreeSet::new());
    env.server.shutdown().await;
}

both!(a_request_shows_its_stored_bodies);

/// Bodies logged for an alias come with the request from `GET /logs/{request_id}` (the first
/// gateway's shutdown drains its body writer; a second one on the same database answers).
async fn a_request_shows_its_stored_bodies(db: Db) {
    let extra = "logging:\n  bodies: { aliases: [open] }\n";
    let first = start(db.clone(), extra).await;
    let (acme, _) = two_orgs(&first).await;
    assert_eq!(chat(&first, &acme, "open", "with-bodies", None).await, 200);
    assert_ne!(
        chat(&first, &acme, "broken", "without-bodies", None).await,
        200
    );
    wait_written(&first, 2).await;
    first.server.shutdown().await;
    let second = start(db, extra).await;
    let (status, one) = get(&second, ADMIN, "/logs/with-bodies").await;
    assert_eq!(status, 200, "{one}");
    let call = &one["data"][0];
    assert!(
        call["request_body"]
            .as_str()
            .is_some_and(|b| b.contains("hello there")),
        "{call}"
    );
    assert!(call["response_body"].is_string(), "{call}");
    assert_eq!(call["bodies_truncated"], false);
    let (_, other) = get(&second, ADMIN, "/logs/without-bodies").await;
    assert!(other["data"][0].get("request_body").is_none(), "{other}");
    // The list leaves bodies out.
    let (_, list) = get(&second, ADMIN, "/logs?request_id=with-bodies").await;
    assert!(list["data"][0].get("request_body").is_none(), "{list}");
    second.server.shutdown().await;
}
