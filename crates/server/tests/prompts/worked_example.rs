//! docs/prompts-and-apis.md's worked example, step by step, against the offline demo's config
//! (the built-in mock provider behind the alias `demo`): `examples/sentiment-analysis.yaml`
//! applied, `/apis/sentiment-analysis` called, a new version tried in the playground, the label
//! split. If this test fails, the document is wrong.

use super::admin_kit::{both, Db, Env, Side, ADMIN};
use reqwest::Method;
use serde_json::{json, Value};

both!(the_documented_sentiment_analysis_example_runs);

const EXAMPLE: &str = include_str!("../../../../examples/sentiment-analysis.yaml");

async fn call_api(gw: &Env, body: &str) -> (u16, Value) {
    let resp = gw
        .client
        .post(gw.url("/apis/sentiment-analysis"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn the_documented_sentiment_analysis_example_runs(db: Db) {
    // The demo's own providers and models (switchboard_core::config::demo_yaml).
    let yaml = format!(
        "listen: 127.0.0.1:0\nadmin_key: {ADMIN}\ndatabase: \"{}\"\n\
         providers:\n  demo: {{ type: mock }}\n\
         models:\n  demo:\n    targets: [ {{ provider: demo, model: echo }} ]\n",
        db.url
    );
    let gw = Env::launch(db, Side::start().await, yaml).await;
    assert_eq!(
        gw.apply_ok(EXAMPLE).await,
        ["+ prompt sentiment", "+ api sentiment-analysis"]
    );

    let (status, answer) = call_api(&gw, r#"{"text": "I love this product"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["output"], json!({"sentiment": "positive"}));
    assert_eq!(answer["version"], "sentiment@1");
    assert_eq!(answer["api_version"], "v1");
    assert!(answer["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // The optional variable is tested in the template, not required.
    let (status, answer) = call_api(&gw, r#"{"text": "Super", "language": "fr"}"#).await;
    assert_eq!(status, 200, "{answer}");

    let (status, answer) = call_api(&gw, r#"{"text": ""}"#).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "invalid_variables");
    assert_eq!(answer["error"]["param"], "text");

    let doc = gw
        .client
        .get(gw.url("/apis/sentiment-analysis/openapi.json"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(doc.status(), 200);

    // Iterate as code: version 2 added to the file (the label stays on 1), tried in the
    // playground, then the label split between both versions.
    let with_v2 = EXAMPLE.replace(
        "    labels:\n      production: 1\n",
        "      - version: 2\n        system: 'Classify the sentiment. Answer JSON {\"sentiment\": ...}.'\n        user: \"Text: {{ text }}\"\n    labels:\n      production: 1\n",
    );
    assert_ne!(
        with_v2, EXAMPLE,
        "the example's labels moved: update this test and the doc"
    );
    assert_eq!(
        gw.apply_ok(&with_v2).await,
        ["~ prompt sentiment (versions)"]
    );
    let rendered = gw
        .admin_ok(
            Method::POST,
            "/prompts/sentiment/render",
            json!({"version": 2, "variables": {"text": "meh"}}),
            200,
        )
        .await;
    assert_eq!(rendered["user"], "Text: meh");
    let (_, answer) = call_api(&gw, r#"{"text": "fine"}"#).await;
    assert_eq!(answer["version"], "sentiment@1");
    let split = with_v2.replace(
        "    labels:\n      production: 1\n",
        "    labels:\n      production: { split: [ { version: 1, weight: 50 }, { version: 2, weight: 50 } ] }\n",
    );
    assert_eq!(gw.apply_ok(&split).await, ["~ prompt sentiment (labels)"]);
    // The admin key has no key id: each call draws an arm, so both versions show up.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (status, answer) = call_api(&gw, r#"{"text": "fine"}"#).await;
        assert_eq!(status, 200, "{answer}");
        seen.insert(answer["version"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["sentiment@1", "sentiment@2"]
    );

    // Analytics compare the versions: one row per `prompt=` tag.
    let now = switchboard_types::calendar::now_ms();
    let path = format!(
        "/analytics/top?group_by=tag&from={}&to={}",
        now - 3_600_000,
        now + 60_000
    );
    let mut groups = Vec::new();
    for _ in 0..100 {
        let top = gw.admin_ok(Method::GET, &path, Value::Null, 200).await;
        groups = top["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|row| row["group"].as_str())
            .filter(|group| group.starts_with("prompt="))
            .map(str::to_owned)
            .collect::<Vec<_>>();
        groups.sort();
        if groups.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(groups, ["prompt=sentiment@1", "prompt=sentiment@2"]);
}
