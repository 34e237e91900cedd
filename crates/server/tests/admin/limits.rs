//! Rate limits, budgets and usage through the admin API, config as code and the CLI, on SQLite
//! and Postgres: CRUD with the config file's validation, 409 for rules owned by `apply` or by
//! the server's file, tenant isolation and the role matrix, a stored rule taking effect on the
//! data plane, usage totals equal to what was sent, and `switchboard usage` / `limits status`.

use super::kit::{both, run_cli, Db, Env, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};

both!(
    rules_are_validated_like_the_file,
    tenants_and_roles,
    a_stored_rule_limits_the_data_plane,
    usage_totals_are_what_was_sent,
    apply_and_export_rules,
);

fn rpm(org: &str, team: &str, n: u64) -> Value {
    json!({"scope": "team", "match": {"org": org, "team": team}, "requests_per_minute": n})
}

async fn rules_are_validated_like_the_file(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], None).await;
    let created = env
        .admin_ok(
            Method::PUT,
            "/rate-limits/red-rpm",
            rpm("acme", "red", 600),
            201,
        )
        .await;
    assert_eq!(created["name"], "red-rpm");
    assert_eq!(created["rule"]["name"], "red-rpm");
    assert_eq!(created["rule"]["requests_per_minute"], 600);
    assert_eq!(created["managed_by"], Value::Null);
    // The same name in the body is fine; a replace answers 200.
    let mut body = rpm("acme", "red", 700);
    body["name"] = json!("red-rpm");
    env.admin_ok(Method::PUT, "/rate-limits/red-rpm", body, 200)
        .await;
    let got = env
        .admin_ok(Method::GET, "/rate-limits/red-rpm", Value::Null, 200)
        .await;
    assert_eq!(got["rule"]["requests_per_minute"], 700);
    let list = env.admin(Method::GET, "/rate-limits", None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.data().len(), 1);
    assert_eq!(list.json()["next_cursor"], Value::Null);

    // Problems as the config loader words them, 400, nothing stored.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "none",
            json!({"scope": "team", "match": {"org": "acme", "team": "red"}}),
            "sets no limit",
        ),
        (
            "zero",
            json!({"scope": "key", "requests_per_second": 0}),
            "at least 1",
        ),
        (
            "alias",
            json!({"scope": "key", "match": {"alias": "nope"}, "requests_per_second": 1}),
            "unknown model alias `nope`",
        ),
        (
            "team-only",
            json!({"scope": "team", "match": {"team": "red"}, "requests_per_second": 1}),
            "add `org`",
        ),
        (
            "typed",
            json!({"scope": "key", "requests_per_second": "x"}),
            "requests_per_second",
        ),
        (
            "unknown",
            json!({"scope": "key", "requests_per_second": 1, "bogus": 1}),
            "bogus",
        ),
        (
            "mismatch",
            json!({"name": "other", "scope": "key", "requests_per_second": 1}),
            "the one in the URL",
        ),
        (
            "Bad_Name",
            json!({"scope": "key", "requests_per_second": 1}),
            "not a valid name",
        ),
    ];
    for (name, body, expected) in cases {
        let reply = env
            .admin(Method::PUT, &format!("/rate-limits/{name}"), Some(body))
            .await;
        assert_eq!(reply.status, 400, "{name}: {}", reply.text);
        assert_eq!(reply.code(), "invalid_request", "{name}");
        assert!(reply.message().contains(expected), "{name}: {}", reply.text);
        let gone = env
            .admin(Method::GET, &format!("/rate-limits/{name}"), None)
            .await;
        assert_eq!(gone.status, 404, "{name}");
    }
    let not_object = env
        .admin(Method::PUT, "/rate-limits/x", Some(json!([1])))
        .await;
    assert_eq!(not_object.status, 400);

    // Budgets: dollars exact, fractions as written.
    let budget = json!({"scope": "org", "match": {"org": "acme"}, "period": "month",
        "usd": "12.50", "alert_at": [0.5, 0.8, 1.0]});
    let created = env
        .admin_ok(Method::PUT, "/budgets/acme-month", budget, 201)
        .await;
    assert_eq!(created["rule"]["usd"], json!(12.5));
    assert_eq!(created["rule"]["alert_at"], json!([0.5, 0.8, 1.0]));
    let bad = env
        .admin(
            Method::PUT,
            "/budgets/down",
            Some(
                json!({"scope": "org", "match": {"org": "acme"}, "period": "day", "usd": 1,
                "action": "downgrade"}),
            ),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.message().contains("downgrade_to"), "{}", bad.text);
    let negative = env
        .admin(
            Method::PUT,
            "/budgets/neg",
            Some(json!({"scope": "org", "period": "day", "usd": -1})),
        )
        .await;
    assert_eq!(negative.status, 400, "{}", negative.text);
    let budgets = env.admin(Method::GET, "/budgets?limit=1", None).await;
    assert_eq!(budgets.data().len(), 1);

    // Deletes, with an audit trail.
    let audit_before = env.audit_count().await;
    env.admin_ok(Method::DELETE, "/rate-limits/red-rpm", Value::Null, 204)
        .await;
    env.admin_ok(Method::DELETE, "/budgets/acme-month", Value::Null, 204)
        .await;
    assert_eq!(env.audit_count().await, audit_before + 2);
    let reply = env.admin(Method::GET, "/rate-limits/red-rpm", None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.code(), "not_found");
    let reply = env.admin(Method::DELETE, "/budgets/acme-month", None).await;
    assert_eq!(reply.status, 404);
    env.stop().await;
}

async fn tenants_and_roles(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red", "blue"], None).await;
    env.seed_org("globex", &["green"], None).await;
    for (path, body) in [
        ("/rate-limits/acme-red", rpm("acme", "red", 10)),
        ("/rate-limits/globex-green", rpm("globex", "green", 10)),
        (
            "/rate-limits/every-key",
            json!({"scope": "key", "requests_per_second": 50}),
        ),
    ] {
        env.admin_ok(Method::PUT, path, body, 201).await;
    }
    let token = |sub: &str, claims: Value| env.side.token(sub, claims);
    let owner = token("o", json!({"org": "acme", "role": "owner"}));
    let admin = token("a", json!({"org": "acme", "role": "admin"}));
    let dev = token("d", json!({"org": "acme", "role": "developer"}));
    let viewer = token("v", json!({"org": "acme", "role": "viewer"}));
    let red_admin = token("r", json!({"org": "acme", "team": "red", "role": "admin"}));
    let red_viewer = token(
        "rv",
        json!({"org": "acme", "team": "red", "role": "viewer"}),
    );
    let globex = token("g", json!({"org": "globex", "role": "owner"}));

    // Reading: members see their org's rules only; others' and global ones are 404.
    let list = env
        .call(Some(&viewer), Method::GET, "/rate-limits", None)
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let names: Vec<String> = list
        .data()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["acme-red"]);
    for path in ["/rate-limits/globex-green", "/rate-limits/every-key"] {
        for cred in [&owner, &viewer] {
            let reply = env.call(Some(cred), Method::GET, path, None).await;
            assert_eq!(reply.status, 404, "{path}: {}", reply.text);
            let reply = env.call(Some(cred), Method::DELETE, path, None).await;
            assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        }
    }
    let reply = env
        .call(Some(&globex), Method::GET, "/rate-limits/acme-red", None)
        .await;
    assert_eq!(reply.status, 404);

    // Writing: org owners and admins, for rules naming their org.
    for (cred, status) in [
        (&owner, 200),
        (&admin, 200),
        (&dev, 403),
        (&viewer, 403),
        (&red_admin, 403),
        (&globex, 404),
    ] {
        let reply = env
            .call(
                Some(cred),
                Method::PUT,
                "/rate-limits/acme-red",
                Some(rpm("acme", "red", 20)),
            )
            .await;
        assert_eq!(reply.status, status, "{}", reply.text);
    }
    let reply = env
        .call(
            Some(&admin),
            Method::PUT,
            "/budgets/acme-day",
            Some(json!({"scope": "org", "match": {"org": "acme"}, "period": "day", "usd": 3})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let reply = env
        .call(
            Some(&dev),
            Method::PUT,
            "/rate-limits/x",
            Some(rpm("acme", "red", 1)),
        )
        .await;
    assert!(reply.message().contains("`admin`"), "{}", reply.text);
    // Another org's, or no org: refused.
    let reply = env
        .call(
            Some(&owner),
            Method::PUT,
            "/rate-limits/sneaky",
            Some(rpm("globex", "green", 1)),
        )
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
    let reply = env
        .call(
            Some(&owner),
            Method::PUT,
            "/rate-limits/everyone",
            Some(json!({"scope": "key", "requests_per_second": 1})),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    // A name another tenant uses is taken.
    let reply = env
        .call(
            Some(&owner),
            Method::PUT,
            "/rate-limits/globex-green",
            Some(rpm("acme", "red", 1)),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    let reply = env
        .call(Some(&admin), Method::DELETE, "/rate-limits/acme-red", None)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);

    // Usage and limit status: forced to the caller's org (and team for a team role).
    let reply = env.call(Some(&viewer), Method::GET, "/usage", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["filter"]["org"], "acme");
    let reply = env
        .call(Some(&red_viewer), Method::GET, "/usage?group_by=team", None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["filter"]["team"], "red");
    let reply = env
        .call(
            Some(&red_viewer),
            Method::GET,
            "/usage?org=acme&team=blue",
            None,
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    for path in ["/usage?org=globex", "/limits/status?org=globex"] {
        let reply = env.call(Some(&viewer), Method::GET, path, None).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
    }
    let reply = env
        .call(Some(&viewer), Method::GET, "/usage?group_by=colour", None)
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let reply = env
        .call(Some(&viewer), Method::GET, "/limits/status", None)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let rules: Vec<String> = reply.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rules, ["acme-day"], "{}", reply.text);
    let reply = env.call(None, Method::GET, "/usage", None).await;
    assert_eq!(reply.status, 401);
    env.stop().await;
}

async fn a_stored_rule_limits_the_data_plane(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red"], None).await;
    let (key_id, key) = env.app_key("acme", "red").await;
    let rule = json!({"scope": "key", "match": {"org": "acme", "key": key_id},
        "requests_per_minute": 2});
    env.admin_ok(Method::PUT, "/rate-limits/two-a-minute", rule, 201)
        .await;
    for _ in 0..2 {
        let reply = env.chat(&key, "open").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let body = json!({"model": "open", "messages": [{"role": "user", "content": "hi"}]});
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let json: Value = resp.json().await.unwrap();
    assert_eq!(json["error"]["code"], "rate_limit_exceeded", "{json}");

    // The status report shows the counter spent.
    let status = env
        .admin_ok(
            Method::GET,
            &format!("/limits/status?org=acme&key_id={key_id}"),
            Value::Null,
            200,
        )
        .await;
    assert_eq!(status["team"], "red");
    assert_eq!(status["app"], "red-app");
    let row = &status["data"][0];
    assert_eq!(row["rule"], "two-a-minute", "{status}");
    assert_eq!(row["limit_kind"], "requests_per_minute");
    assert_eq!(row["limit"], 2);
    assert_eq!(row["remaining"], 0, "{status}");

    // `switchboard limits status` shows the same.
    let run = run_cli(
        Some(&env),
        &["limits", "status", "--org", "acme", "--key", &key_id],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("two-a-minute"), "{}", run.stdout);
    assert!(run.stdout.contains("requests_per_minute"), "{}", run.stdout);
    let run = run_cli(
        Some(&env),
        &["limits", "status", "--org", "acme", "--json"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["org"], "acme");

    // Deleting the rule lifts the limit at once.
    env.admin_ok(
        Method::DELETE,
        "/rate-limits/two-a-minute",
        Value::Null,
        204,
    )
    .await;
    assert_eq!(env.chat(&key, "open").await.status, 200);
    env.stop().await;
}

async fn usage_totals_are_what_was_sent(db: Db) {
    let env = Env::start(db).await;
    env.seed_org("acme", &["red", "blue"], None).await;
    let (red_id, red) = env.app_key("acme", "red").await;
    let (blue_id, blue) = env.app_key("acme", "blue").await;
    let (mut input, mut output) = (0, 0);
    for key in [&red, &red, &blue] {
        let reply = env.chat(key, "open").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let usage = &reply.json()["usage"];
        input += usage["prompt_tokens"].as_i64().unwrap();
        output += usage["completion_tokens"].as_i64().unwrap();
    }
    // The admin key's own call is no org's usage.
    assert_eq!(env.chat(ADMIN, "open").await.status, 200);
    env.server.runtime.usage_writer.wait_written(4).await;

    let report = env
        .admin_ok(Method::GET, "/usage?org=acme", Value::Null, 200)
        .await;
    let total = &report["total"];
    assert_eq!(total["requests"], 3, "{report}");
    assert_eq!(total["errors"], 0);
    assert_eq!(total["input_tokens"], input);
    assert_eq!(total["output_tokens"], output);
    assert_eq!(total["total_tokens"], input + output);
    assert_eq!(report["data"].as_array().unwrap().len(), 1);
    let micros = total["cost_micros"].as_i64().unwrap();
    let usd = total["cost_usd"].as_str().unwrap();
    assert_eq!(
        (usd.parse::<f64>().unwrap() * 1e6).round() as i64,
        micros,
        "{report}"
    );

    let by_key = env
        .admin_ok(
            Method::GET,
            "/usage?org=acme&group_by=key",
            Value::Null,
            200,
        )
        .await;
    let rows: Vec<(String, i64)> = by_key["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap().to_owned(),
                r["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut expected = vec![(red_id.clone(), 2), (blue_id.clone(), 1)];
    expected.sort();
    assert_eq!(rows, expected);
    let by_team = env
        .admin_ok(Method::GET, "/usage?group_by=team", Value::Null, 200)
        .await;
    assert_eq!(by_team["total"]["requests"], 4, "{by_team}");
    let red_only = env
        .admin_ok(
            Method::GET,
            "/usage?org=acme&team=red&app=red-app",
            Value::Null,
            200,
        )
        .await;
    assert_eq!(red_only["total"]["requests"], 2);
    let later = env
        .admin_ok(
            Method::GET,
            "/usage?org=acme&from=9999999999999",
            Value::Null,
            200,
        )
        .await;
    assert_eq!(later["total"]["requests"], 0);
    let reply = env.admin(Method::GET, "/usage?from=10&to=5", None).await;
    assert_eq!(reply.status, 400);

    // `switchboard usage`: a table with a total, or the JSON.
    let run = run_cli(
        Some(&env),
        &["usage", "--org", "acme", "--group-by", "key"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("KEY"), "{}", run.stdout);
    assert!(run.stdout.contains(&red_id), "{}", run.stdout);
    let last = run.stdout.lines().last().unwrap().to_owned();
    let cells: Vec<&str> = last.split_whitespace().collect();
    assert_eq!(cells[..2], ["total", "3"], "{}", run.stdout);
    let run = run_cli(
        Some(&env),
        &["usage", "--org", "acme", "--from", "1d", "--json"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["total"]["requests"], 3);
    let run = run_cli(Some(&env), &["usage", "--from", "someday"], &[]).await;
    assert_ne!(run.code, 0);
    env.stop().await;
}

async fn apply_and_export_rules(db: Db) {
    let file_rules = "rate_limits:\n  - { name: filed, scope: key, requests_per_second: 100 }\n  \
                      - { scope: org, requests_per_minute: 1000 }\n";
    let env = Env::config(db, file_rules).await;
    let doc = "\
models:
  cheap: { targets: [ { provider: base, model: echo } ] }
rate_limits:
  - { name: acme-rpm, scope: org, match: { org: acme }, requests_per_minute: 600, concurrent: 20 }
  - name: per-key
    scope: key
    requests_per_second: 5
budgets:
  - { name: acme-month, scope: org, match: { org: acme }, period: month, usd: 500.25, action: downgrade, downgrade_to: cheap, alert_at: [0.5, 0.8, 1.0] }
";
    assert_eq!(
        env.apply_ok(doc).await,
        [
            "+ model cheap",
            "+ rate_limit acme-rpm",
            "+ rate_limit per-key",
            "+ budget acme-month"
        ]
    );
    assert_eq!(env.apply_ok(doc).await, Vec::<String>::new());
    let got = env
        .admin_ok(Method::GET, "/budgets/acme-month", Value::Null, 200)
        .await;
    assert_eq!(got["managed_by"], "apply");
    assert_eq!(got["rule"]["usd"], json!(500.25));

    // Export, then apply the export: nothing to do, and the same export again.
    let exported = env.export().await;
    assert!(exported.contains("acme-rpm"), "{exported}");
    assert!(exported.contains("acme-month"), "{exported}");
    assert!(!exported.contains("filed"), "{exported}");
    assert_eq!(env.apply_ok(&exported).await, Vec::<String>::new());
    assert_eq!(env.export().await, exported);

    // Managed rules are read-only in the admin API; the file's names are refused.
    for (method, body) in [
        (Method::PUT, Some(rpm("acme", "red", 1))),
        (Method::DELETE, None),
    ] {
        let reply = env.admin(method, "/rate-limits/acme-rpm", body).await;
        assert_eq!(reply.status, 409, "{}", reply.text);
        assert_eq!(reply.code(), "managed_by_apply");
    }
    let reply = env
        .admin(
            Method::PUT,
            "/rate-limits/filed",
            Some(json!({"scope": "key", "requests_per_second": 1})),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.code(), "defined_in_config_file");

    // Changes and deletions.
    let changed = doc
        .replace("requests_per_minute: 600", "requests_per_minute: 700")
        .replace(
            "  - name: per-key\n    scope: key\n    requests_per_second: 5\n",
            "",
        );
    assert_eq!(
        env.apply_ok(&changed).await,
        [
            "~ rate_limit acme-rpm (requests_per_minute)",
            "- rate_limit per-key"
        ]
    );

    // Documents: a rule needs a name, may not use the file's, nor leave a reference dangling.
    let cases = [
        (
            "rate_limits:\n  - { scope: key, requests_per_second: 5 }\n",
            "needs a `name`",
            Some(2),
        ),
        (
            "rate_limits:\n  - { name: filed, scope: key, requests_per_second: 5 }\n",
            "defined in the server's config file",
            Some(2),
        ),
        (
            "rate_limits:\n  - { name: z, scope: key }\n",
            "sets no limit",
            Some(2),
        ),
        ("models: {}\n", "cheap", None),
    ];
    for (doc, expected, line) in cases {
        let reply = env.apply(doc).await;
        assert_eq!(reply.status, 400, "{doc}: {}", reply.text);
        assert!(reply.text.contains(expected), "{doc}: {}", reply.text);
        if let Some(line) = line {
            assert_eq!(
                reply.json()["error"]["problems"][0]["line"],
                line,
                "{doc}: {}",
                reply.text
            );
        }
    }

    // Empty lists delete what apply stored.
    assert_eq!(
        env.apply_ok("rate_limits: []\nbudgets: []\n").await,
        ["- rate_limit acme-rpm", "- budget acme-month"]
    );
    let list = env.admin(Method::GET, "/rate-limits", None).await;
    assert!(list.data().is_empty(), "{}", list.text);
    env.stop().await;
}
