//! Prompt APIs end to end: `POST /apis/{name}[@version]` against gateways on port 0 with the
//! built-in mock provider (answers `echo: <last user message>`) and, for output schemas, the
//! testkit's scripted OpenAI mock. Lifecycle headers, access, limits, A/B splits with the
//! `prompt` tag in the usage records, SSE, and the OpenAPI documents.

use super::kit::{Db, Gw, Key, Reply, ADMIN};
use serde_json::{json, Value};
use switchboard_testkit::{MockKind, MockProvider, MockUsage, Reply as MockReply};

const SCHEMA: &str = "{ type: object, properties: { label: { type: string, enum: [pos, neg] } }, required: [label] }";

/// Models `m-echo` (built-in mock) and `m-up` (the scripted OpenAI mock), the prompts `greet`
/// and `classify`, and the APIs of these tests; then `extra` (limits).
fn config(up: &MockProvider, extra: &str) -> String {
    format!(
        r#"providers:
  mock: {{ type: mock }}
  up: {{ type: openai, base_url: "{base}", api_key: sk-up }}
models:
  m-echo: {{ targets: [ {{ provider: mock, model: echo }} ] }}
  m-up: {{ targets: [ {{ provider: up, model: gpt-4o }} ] }}
prompts:
  greet:
    variables:
      type: object
      properties:
        name: {{ type: string, minLength: 1 }}
      required: [name]
    versions:
      - {{ version: 1, system: "Be brief.", user: "Hello {{{{ name }}}}" }}
      - {{ version: 2, user: "Hi {{{{ name }}}}!" }}
    labels:
      production: 1
      staging: 2
      ab: {{ split: [ {{ version: 1, weight: 50 }}, {{ version: 2, weight: 50 }} ] }}
  classify:
    variables: {{ type: object, properties: {{ text: {{ type: string }} }}, required: [text] }}
    versions:
      - {{ version: 1, user: "Classify: {{{{ text }}}}" }}
    labels: {{ production: 1 }}
apis:
  greet:
    description: Greets someone.
    prompt: greet
    model: m-echo
    versions:
      v1: {{ status: deprecated, deprecated_at: "2026-01-01", sunset: "2027-01-01", successor: "greet@v2" }}
      v2: {{ status: published, label: staging }}
      v3: {{ status: draft, label: production }}
  old:
    prompt: greet
    model: m-echo
    versions:
      v1: {{ status: retired, successor: greet }}
  split: {{ prompt: greet, label: ab, model: m-echo, status: published }}
  gated: {{ prompt: greet, model: m-echo, status: published, requires_approval: true }}
  classify: {{ prompt: classify, model: m-up, status: published, output_schema: {SCHEMA} }}
{extra}"#,
        base = up.base_url()
    )
}

struct Env {
    gw: Gw,
    up: MockProvider,
    key: Key,
    _db: Db,
}

async fn env(extra: &str) -> Env {
    let db = Db::sqlite();
    let up = MockProvider::start(MockKind::OpenAi).await;
    let gw = Gw::start(&db, &config(&up, extra)).await;
    gw.seed_team("acme", "research", false).await;
    let key = gw.key("acme", "research").await;
    Env {
        gw,
        up,
        key,
        _db: db,
    }
}

/// A key of `research-app` limited to `apis`.
async fn key_with_apis(gw: &Gw, apis: &[&str]) -> Key {
    let body = json!({"team": "research", "app": "research-app", "name": "apis", "apis": apis});
    let created = gw.admin("/orgs/acme/keys", body, 201).await;
    Key {
        id: created["id"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap().to_owned(),
    }
}

async fn post(gw: &Gw, cred: &str, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let mut req = gw.client.post(gw.url(path)).bearer_auth(cred).json(&body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    Reply::read(req.send().await.unwrap()).await
}

async fn get(gw: &Gw, cred: Option<&str>, path: &str) -> Reply {
    let mut req = gw.client.get(gw.url(path));
    if let Some(cred) = cred {
        req = req.header("x-api-key", cred);
    }
    Reply::read(req.send().await.unwrap()).await
}

fn text(text: &str) -> MockReply {
    MockReply::Text {
        text: text.to_owned(),
        usage: MockUsage {
            input: 10,
            output: 5,
            ..MockUsage::default()
        },
    }
}

#[tokio::test]
async fn a_published_api_answers_output_usage_and_version() {
    let Env { gw, key, .. } = env("").await;
    let reply = post(
        &gw,
        &key.secret,
        "/apis/greet",
        json!({"name": "Ada"}),
        &[
            ("x-request-id", "req-greet-1"),
            ("x-switchboard-tags", "prompt=forged,team=ml"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["output"], "echo: Hi Ada!");
    assert_eq!(body["version"], "greet@2");
    assert_eq!(body["api_version"], "v2");
    let usage = &body["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(reply.header("x-request-id"), Some("req-greet-1"));
    assert_eq!(reply.header("x-switchboard-model"), Some("m-echo"));
    assert_eq!(reply.header("x-switchboard-target"), Some("mock/echo"));
    assert_eq!(reply.header("x-switchboard-attempts"), Some("1"));
    assert_eq!(
        reply.header("x-switchboard-prompt-version"),
        Some("greet@2")
    );
    assert!(reply.header("deprecation").is_none());

    // The version served is in the usage record, as tags.
    gw.wait_records(1).await;
    let record = gw.record("req-greet-1").await;
    assert!(
        record.tags.contains(&("prompt".into(), "greet@2".into())),
        "{:?}",
        record.tags
    );
    assert!(
        record.tags.contains(&("api".into(), "greet@v2".into())),
        "{:?}",
        record.tags
    );
    // The client's own tags stay; its value of a tag the gateway sets does not.
    assert!(record.tags.contains(&("team".into(), "ml".into())));
    assert!(!record.tags.contains(&("prompt".into(), "forged".into())));
    assert_eq!(record.alias, "m-echo");
    assert_eq!(record.caller.key_id.as_deref(), Some(key.id.as_str()));
}

#[tokio::test]
async fn a_bad_variable_is_a_400_naming_it() {
    let Env { gw, key, .. } = env("").await;
    let reply = post(&gw, &key.secret, "/apis/greet", json!({"name": ""}), &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_variables");
    assert_eq!(reply.json()["error"]["param"], "name");
    assert!(reply.message().contains("name"), "{}", reply.message());

    let reply = post(&gw, &key.secret, "/apis/greet", json!({}), &[]).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["param"], "name");

    let reply = post(
        &gw,
        &key.secret,
        "/apis/greet",
        json!(["not", "an", "object"]),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);

    let resp = gw
        .client
        .post(gw.url("/apis/greet"))
        .bearer_auth(&key.secret)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(Reply::read(resp).await.status, 400);
}

#[tokio::test]
async fn unknown_apis_and_drafts_are_404_except_drafts_for_the_admin() {
    let Env { gw, key, .. } = env("").await;
    for path in ["/apis/nope", "/apis/greet@v9", "/apis/greet@v3"] {
        let reply = post(&gw, &key.secret, path, json!({"name": "Ada"}), &[]).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert_eq!(reply.code(), "api_not_found");
    }
    let reply = post(&gw, ADMIN, "/apis/greet@v3", json!({"name": "Ada"}), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["version"], "greet@1");
    assert_eq!(reply.json()["api_version"], "v3");
    // Without a key: 401 before anything else.
    let resp = gw
        .client
        .post(gw.url("/apis/greet"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(Reply::read(resp).await.status, 401);
}

#[tokio::test]
async fn deprecated_versions_carry_deprecation_sunset_and_successor_link() {
    let Env { gw, key, .. } = env("").await;
    let reply = post(
        &gw,
        &key.secret,
        "/apis/greet@v1",
        json!({"name": "Ada"}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.json()["version"],
        "greet@1",
        "v1 serves label production"
    );
    assert_eq!(reply.json()["api_version"], "v1");
    // 2026-01-01T00:00:00Z and 2027-01-01T00:00:00Z.
    assert_eq!(reply.header("deprecation"), Some("@1767225600"));
    assert_eq!(
        reply.header("sunset"),
        Some("Fri, 01 Jan 2027 00:00:00 GMT")
    );
    assert_eq!(
        reply.header("link"),
        Some("</apis/greet@v2>; rel=\"successor-version\"")
    );
}

#[tokio::test]
async fn retired_versions_are_410_naming_the_successor() {
    let Env { gw, key, .. } = env("").await;
    for path in ["/apis/old", "/apis/old@v1"] {
        let reply = post(&gw, &key.secret, path, json!({"name": "Ada"}), &[]).await;
        assert_eq!(reply.status, 410, "{path}: {}", reply.text);
        assert_eq!(reply.code(), "api_retired");
        assert!(reply.message().contains("`greet`"), "{}", reply.message());
    }
}

#[tokio::test]
async fn a_named_version_is_served_by_name() {
    let Env { gw, key, .. } = env("").await;
    let reply = post(
        &gw,
        &key.secret,
        "/apis/greet@v2",
        json!({"name": "Bo"}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["output"], "echo: Hi Bo!");
    assert_eq!(reply.json()["api_version"], "v2");
}

#[tokio::test]
async fn an_output_schema_answer_is_parsed_json() {
    let Env { gw, up, key, .. } = env("").await;
    up.enqueue(text("{\"label\": \"pos\"}"));
    let reply = post(
        &gw,
        &key.secret,
        "/apis/classify",
        json!({"text": "great"}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["output"], json!({"label": "pos"}));
    assert_eq!(reply.json()["usage"]["total_tokens"], 15);
    // The schema went upstream as response_format json_schema.
    let sent = &up.requests()[0].body;
    assert_eq!(sent["response_format"]["type"], "json_schema", "{sent}");
    assert_eq!(
        sent["response_format"]["json_schema"]["schema"]["required"],
        json!(["label"])
    );

    // `stream: true`: the same answer as events, sent once the output is checked.
    up.enqueue(text("{\"label\": \"neg\"}"));
    let reply = post(
        &gw,
        &key.secret,
        "/apis/classify",
        json!({"text": "bad", "stream": true}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let data: Vec<&str> = reply
        .text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(
        data.len(),
        3,
        "one delta, the answer, [DONE]: {}",
        reply.text
    );
    let delta: Value = serde_json::from_str(data[0]).unwrap();
    assert_eq!(delta["delta"], "{\"label\":\"neg\"}");
    let last: Value = serde_json::from_str(data[1]).unwrap();
    assert_eq!(last["output"], json!({"label": "neg"}));
    assert_eq!(data[2], "[DONE]");
}

#[tokio::test]
async fn an_invalid_output_is_repaired_once() {
    let Env { gw, up, key, .. } = env("").await;
    up.enqueue(text("{\"label\": \"maybe\"}"));
    up.enqueue(text("{\"label\": \"neg\"}"));
    let reply = post(
        &gw,
        &key.secret,
        "/apis/classify",
        json!({"text": "meh"}),
        &[("x-request-id", "req-repair-1")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["output"], json!({"label": "neg"}));
    assert_eq!(
        reply.json()["usage"]["total_tokens"],
        30,
        "both calls are counted"
    );
    let requests = up.requests();
    assert_eq!(requests.len(), 2);
    let turns = requests[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(turns.len(), 3, "{turns:?}");
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(turns[1]["content"], "{\"label\": \"maybe\"}");
    assert_eq!(turns[2]["role"], "user");
    assert!(
        turns[2]["content"].as_str().unwrap().contains("/label"),
        "{turns:?}"
    );
    gw.wait_records(2).await;
    assert_eq!(gw.records_of("req-repair-1").await.len(), 1);
    assert_eq!(gw.records_of("req-repair-1.repair").await.len(), 1);
}

#[tokio::test]
async fn an_output_invalid_twice_is_a_502() {
    let Env { gw, up, key, .. } = env("").await;
    up.enqueue(text("not json at all"));
    up.enqueue(text("{\"label\": 3}"));
    let reply = post(
        &gw,
        &key.secret,
        "/apis/classify",
        json!({"text": "x"}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.code(), "invalid_output");
    assert_eq!(up.request_count(), 2, "exactly one repair");
}

#[tokio::test]
async fn stream_true_answers_server_sent_events() {
    let Env { gw, key, .. } = env("").await;
    let reply = post(
        &gw,
        &key.secret,
        "/apis/greet",
        json!({"name": "Ada", "stream": true}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(
        reply.header("x-switchboard-prompt-version"),
        Some("greet@2")
    );
    let data: Vec<&str> = reply
        .text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{}", reply.text);
    let events: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let (last, deltas) = events.split_last().unwrap();
    assert!(deltas.len() > 1, "several deltas: {}", reply.text);
    let joined: String = deltas
        .iter()
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(joined, "echo: Hi Ada!");
    assert_eq!(last["output"], "echo: Hi Ada!");
    assert_eq!(last["version"], "greet@2");
    assert_eq!(last["api_version"], "v2");
    assert!(last["usage"]["total_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn openapi_documents_describe_the_served_apis() {
    let Env { gw, key, .. } = env("").await;
    assert_eq!(get(&gw, None, "/apis/greet/openapi.json").await.status, 401);
    let reply = get(&gw, Some(&key.secret), "/apis/greet/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let doc = reply.json();
    let spec = oas3::from_json(&reply.text).expect("a valid OpenAPI 3.1 document");
    assert_eq!(spec.validate_version().unwrap().minor, 1);
    assert_eq!(spec.paths.as_ref().map(|p| p.len()), Some(3));
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["/apis/greet", "/apis/greet@v1", "/apis/greet@v2"],
        "no draft for a key"
    );
    assert_eq!(doc["paths"]["/apis/greet@v1"]["post"]["deprecated"], true);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["name"], "x-api-key");
    let post = &doc["paths"]["/apis/greet"]["post"];
    for status in ["200", "400", "401", "403", "404", "410", "429", "502"] {
        assert!(post["responses"][status].is_object(), "{status}");
    }
    assert!(post["responses"]["200"]["content"]["text/event-stream"].is_object());
    // The request schema validates bodies as the gateway does.
    let reference = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let name = reference.rsplit('/').next().unwrap();
    let schema = &doc["components"]["schemas"][name];
    let validator = jsonschema::validator_for(schema).unwrap();
    assert!(validator.is_valid(&json!({"name": "Ada"})));
    assert!(validator.is_valid(&json!({"name": "Ada", "stream": true})));
    assert!(!validator.is_valid(&json!({"name": ""})));
    assert!(!validator.is_valid(&json!({})));
    // The response schema: output, usage, version.
    let response_ref = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let response = &doc["components"]["schemas"][response_ref.rsplit('/').next().unwrap()];
    assert_eq!(
        response["required"],
        json!(["output", "usage", "version", "api_version"])
    );

    // The output schema of an output-schema API; its stream is sent whole.
    let doc = get(&gw, Some(&key.secret), "/apis/classify/openapi.json")
        .await
        .json();
    assert_eq!(
        doc["components"]["schemas"]["classify_v1_response"]["properties"]["output"]["required"],
        json!(["label"])
    );
    let stream =
        &doc["paths"]["/apis/classify"]["post"]["responses"]["200"]["content"]["text/event-stream"];
    assert!(
        stream["description"]
            .as_str()
            .unwrap()
            .contains("checked whole"),
        "{stream}"
    );

    // All APIs together: the retired one is not served, drafts only for the admin.
    let all = get(&gw, Some(&key.secret), "/apis/openapi.json").await;
    assert_eq!(all.status, 200, "{}", all.text);
    oas3::from_json(&all.text).expect("a valid OpenAPI 3.1 document");
    let all = all.json();
    let paths = all["paths"].as_object().unwrap();
    for path in [
        "/apis/greet",
        "/apis/split",
        "/apis/gated",
        "/apis/classify@v1",
    ] {
        assert!(paths.contains_key(path), "{path}: {:?}", paths.keys());
    }
    assert!(!paths.contains_key("/apis/old"));
    assert!(!paths.contains_key("/apis/greet@v3"));
    let admin = get(&gw, Some(ADMIN), "/apis/openapi.json").await.json();
    assert!(admin["paths"]["/apis/greet@v3"].is_object());
    assert_eq!(
        get(&gw, Some(&key.secret), "/apis/nope/openapi.json")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn keys_need_the_api_in_their_allow_list_and_gated_apis_a_subscription() {
    let Env { gw, key, .. } = env("").await;
    let only_classify = key_with_apis(&gw, &["classify"]).await;
    let reply = post(
        &gw,
        &only_classify.secret,
        "/apis/greet",
        json!({"name": "Ada"}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.code(), "api_not_allowed");
    let reply = get(&gw, Some(&only_classify.secret), "/apis/greet/openapi.json").await;
    assert_eq!(reply.status, 403);
    let all = get(&gw, Some(&only_classify.secret), "/apis/openapi.json")
        .await
        .json();
    assert!(all["paths"]["/apis/greet"].is_null());

    let reply = post(&gw, &key.secret, "/apis/gated", json!({"name": "Ada"}), &[]).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.code(), "approval_required");
    // The admin may call anything.
    let reply = post(&gw, ADMIN, "/apis/gated", json!({"name": "Ada"}), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // The app asks for an API subscription; pending, then approved, the key may call it.
    let request = json!({"team": "research", "app": "research-app", "api": "gated"});
    let sub = gw.admin("/orgs/acme/subscriptions", request, 201).await;
    let reply = post(&gw, &key.secret, "/apis/gated", json!({"name": "Ada"}), &[]).await;
    assert_eq!(reply.code(), "subscription_pending", "{}", reply.text);
    let id = sub["id"].as_str().unwrap();
    gw.admin(
        &format!("/orgs/acme/subscriptions/{id}/approve"),
        json!({}),
        200,
    )
    .await;
    let reply = post(&gw, &key.secret, "/apis/gated", json!({"name": "Ada"}), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn limits_apply_to_api_calls_as_to_models() {
    let rules = "rate_limits:\n  - { name: rpm-key, scope: key, requests_per_minute: 1 }\n";
    let Env { gw, key, .. } = env(rules).await;
    super::kit::clear_of_minute_boundary().await;
    let first = post(&gw, &key.secret, "/apis/greet", json!({"name": "Ada"}), &[]).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("x-ratelimit-limit-requests"), Some("1"));
    let second = post(&gw, &key.secret, "/apis/greet", json!({"name": "Ada"}), &[]).await;
    assert_eq!(second.status, 429, "{}", second.text);
    assert_eq!(second.code(), "rate_limit_exceeded");
}

#[tokio::test]
async fn budgets_apply_to_api_calls_as_to_models() {
    // $0.01 a day for the team: a call to the priced alias (gpt-4o from the catalog) reserves
    // its worst case (input plus 4096 output tokens at $10/M, about $0.04) and is refused; the
    // API on the unpriced mock alias costs nothing and passes.
    let rules = "budgets:\n  - { name: tiny, scope: team, match: { org: acme, team: research }, period: day, usd: 0.01 }\n";
    let Env { gw, key, .. } = env(rules).await;
    let refused = post(
        &gw,
        &key.secret,
        "/apis/classify",
        json!({"text": "x"}),
        &[],
    )
    .await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.code(), "budget_exceeded");
    assert!(refused.message().contains("tiny"), "{}", refused.text);
    let free = post(&gw, &key.secret, "/apis/greet", json!({"name": "Ada"}), &[]).await;
    assert_eq!(free.status, 200, "{}", free.text);
}

#[tokio::test]
async fn ab_splits_are_proportional_and_sticky_and_recorded() {
    let Env { gw, key, .. } = env("").await;
    let mut twos = 0;
    let calls = 80;
    for i in 0..calls {
        let ab = format!("user-{i}");
        let rid = format!("req-ab-{i}");
        let reply = post(
            &gw,
            &key.secret,
            "/apis/split",
            json!({"name": "Ada"}),
            &[("x-switchboard-ab-key", &ab), ("x-request-id", &rid)],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let version = reply.json()["version"].as_str().unwrap().to_owned();
        if version == "greet@2" {
            twos += 1;
        }
        // Sticky: the same caller gets the same version again.
        let again = post(
            &gw,
            &key.secret,
            "/apis/split",
            json!({"name": "Ada"}),
            &[("x-switchboard-ab-key", &ab)],
        )
        .await;
        assert_eq!(again.json()["version"], version.as_str());
        if i < 3 {
            gw.wait_records(u64::try_from(2 * i + 1).unwrap()).await;
            let record = gw.record(&rid).await;
            assert!(
                record.tags.contains(&("prompt".into(), version.clone())),
                "{:?}",
                record.tags
            );
        }
    }
    // 50/50 over 80 callers: far outside [20, 60] only with negligible probability.
    assert!((20..=60).contains(&twos), "{twos} of {calls} got version 2");
    // Without the header the key id is the sticky key: every call of one key gets one version.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let reply = post(&gw, &key.secret, "/apis/split", json!({"name": "Ada"}), &[]).await;
        seen.insert(reply.json()["version"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[tokio::test]
async fn logged_bodies_are_the_apis_request_and_answer() {
    let db = Db::sqlite();
    let up = MockProvider::start(MockKind::OpenAi).await;
    let extra = "logging:\n  bodies: { aliases: [m-echo] }\n";
    let first = Gw::start(&db, &config(&up, extra)).await;
    let headers = [("x-request-id", "req-bodies")];
    let reply = post(
        &first,
        ADMIN,
        "/apis/greet",
        json!({"name": "Ada"}),
        &headers,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    first.wait_records(1).await;
    // Shutting down drains the body writer; a second gateway on the database answers.
    first.server.shutdown().await;
    let second = Gw::start(&db, &config(&up, extra)).await;
    let resp = second
        .client
        .get(second.url("/admin/v1/logs/req-bodies"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let log = Reply::read(resp).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let call = &log.json()["data"][0];
    let request = call["request_body"].as_str().unwrap_or_default();
    assert!(request.contains("\"name\""), "{call}");
    let response = call["response_body"].as_str().unwrap_or_default();
    assert!(response.contains("echo: Hi Ada!"), "{call}");
}
