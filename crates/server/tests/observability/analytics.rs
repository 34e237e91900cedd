//! Analytics through real HTTP: a series and a top list over calls sent through the gateway
//! add up to the calls (the writer fills the rollups), org-scoped callers see their own
//! organisation only, and bad parameters answer 400.

use super::admin_kit::{both, Db, ADMIN};
use super::analytics_kit::{chat, get, now_ms, owner, start, two_orgs, wait_written};
use serde_json::Value;

both!(analytics_add_up_and_isolate);

fn sum(report: &Value, field: &str) -> i64 {
    report["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_i64().unwrap())
        .sum()
}

async fn analytics_add_up_and_isolate(db: Db) {
    let env = start(db, "").await;
    let (acme, globex) = two_orgs(&env).await;
    for i in 0..6 {
        assert_eq!(
            chat(&env, &acme, "open", &format!("a-{i}"), Some("env=prod")).await,
            200
        );
    }
    for i in 0..2 {
        assert_ne!(
            chat(&env, &acme, "broken", &format!("b-{i}"), None).await,
            200
        );
    }
    for i in 0..3 {
        assert_eq!(
            chat(&env, &globex, "open", &format!("g-{i}"), None).await,
            200
        );
    }
    wait_written(&env, 11).await;
    let from = now_ms() - 3_600_000;
    let to = now_ms() + 60_000;
    let range = format!("from={from}&to={to}");

    // Grouped by alias, per minute: sums equal the calls.
    let (status, series) = get(
        &env,
        ADMIN,
        &format!("/analytics/timeseries?org=acme&interval=minute&group_by=alias&{range}"),
    )
    .await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(sum(&series, "requests"), 8);
    assert_eq!(sum(&series, "errors"), 2);
    let raw = env
        .server
        .runtime
        .store
        .usage_totals(
            &switchboard_store::UsageFilter {
                org: Some("acme".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(sum(&series, "cost_micros"), raw[0].cost_micros);
    assert_eq!(sum(&series, "input_tokens"), raw[0].input_tokens);
    let point = series["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["group"] == "open")
        .unwrap();
    assert!(point["p95_ms"].as_f64().is_some(), "{point}");
    // Ungrouped, hourly, whole platform.
    let (_, all) = get(&env, ADMIN, &format!("/analytics/timeseries?{range}")).await;
    assert_eq!(sum(&all, "requests"), 11);
    // One filter: the tag.
    let (_, tagged) = get(
        &env,
        ADMIN,
        &format!("/analytics/timeseries?org=acme&tag=env%3Dprod&{range}"),
    )
    .await;
    assert_eq!(sum(&tagged, "requests"), 6);

    // Top aliases by errors, then by requests.
    let (status, top) = get(
        &env,
        ADMIN,
        &format!("/analytics/top?org=acme&group_by=alias&order_by=errors&{range}"),
    )
    .await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["data"][0]["group"], "broken");
    let (_, top) = get(
        &env,
        ADMIN,
        &format!("/analytics/top?group_by=team&limit=1&{range}"),
    )
    .await;
    assert_eq!(top["data"].as_array().unwrap().len(), 1);
    assert_eq!(top["data"][0]["group"], "acme/red");
    assert_eq!(top["data"][0]["requests"], 8);

    // An org-scoped caller sees its organisation only; another's name is not found.
    let g = owner(&env, "globex");
    let (status, own) = get(&env, &g, &format!("/analytics/timeseries?{range}")).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["org"], "globex");
    assert_eq!(sum(&own, "requests"), 3);
    let (_, own_top) = get(&env, &g, &format!("/analytics/top?group_by=alias&{range}")).await;
    assert_eq!(own_top["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&env, &g, &format!("/analytics/timeseries?org=acme&{range}"))
            .await
            .0,
        404
    );
    assert_eq!(
        get(&env, &g, "/analytics/top?org=acme&group_by=alias")
            .await
            .0,
        404
    );

    // A viewer of one team reads that team's totals; grouping them by another dimension is
    // refused (the rollups hold one dimension per row).
    let red = env.side.token(
        "red-viewer",
        serde_json::json!({"org": "acme", "team": "red", "role": "viewer"}),
    );
    let (status, team) = get(&env, &red, &format!("/analytics/timeseries?{range}")).await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["filter"]["value"], "acme/red");
    assert_eq!(sum(&team, "requests"), 8);
    let (status, _) = get(
        &env,
        &red,
        &format!("/analytics/timeseries?group_by=alias&{range}"),
    )
    .await;
    assert_eq!(status, 400);

    for (path, param) in [
        ("/analytics/timeseries?interval=week", "interval"),
        ("/analytics/timeseries?group_by=colour", "group_by"),
        ("/analytics/timeseries?from=10&to=5", "to"),
        (
            "/analytics/timeseries?interval=minute&from=0&to=999999999999",
            "interval",
        ),
        (
            "/analytics/timeseries?org=acme&alias=open&group_by=team",
            "alias",
        ),
        (
            "/analytics/timeseries?alias=open&target=mock/echo",
            "target",
        ),
        ("/analytics/timeseries?order_by=cost", "order_by"),
        ("/analytics/timeseries?tag=x", "tag"),
        ("/analytics/top", "group_by"),
        ("/analytics/top?group_by=alias&limit=0", "limit"),
        ("/analytics/top?group_by=alias&order_by=vibes", "order_by"),
        ("/analytics/top?group_by=alias&interval=hour", "interval"),
    ] {
        let (status, body) = get(&env, ADMIN, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let named = body["error"]["param"] == param
            || body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(param);
        assert!(named, "{path}: {body}");
    }
    env.server.shutdown().await;
}
