//! Chat requests that reference a stored prompt (`"prompt": {...}` in a
//! `POST /v1/chat/completions` body): what the upstream receives, version and label selection,
//! sticky splits, errors, the `x-switchboard-prompt-version` header and the `prompt` usage tag.

use super::db::Db;
use super::kit::{new_request_id, Gw, Reply, ADMIN};
use serde_json::{json, Value};
use switchboard_testkit::{MockKind, MockProvider};

/// `support` (v1 system only with temperature 0.1; v2 system and user; `production` is v1,
/// `staging` v2, `ab` a 50/50 split) on the alias `chat` (the OpenAI mock's gpt-4o) and
/// `claude` (the Anthropic mock: another protocol, no fast path).
async fn gateway(openai: &MockProvider, anthropic: &MockProvider) -> (Gw, Db) {
    let db = Db::sqlite();
    let body = format!(
        r#"providers:
  up: {{ type: openai, base_url: "{}", api_key: sk-up }}
  claude-up: {{ type: anthropic, base_url: "{}", api_key: sk-up }}
models:
  chat: {{ targets: [ {{ provider: up, model: gpt-4o }} ] }}
  claude: {{ targets: [ {{ provider: claude-up, model: claude-sonnet-4-5 }} ] }}
prompts:
  support:
    variables:
      type: object
      properties: {{ product: {{ type: string }}, tone: {{ type: string, enum: [calm, brisk] }} }}
      required: [product]
    versions:
      - {{ version: 1, system: "You support {{{{ product }}}}.", params: {{ temperature: 0.1 }} }}
      - {{ version: 2, system: "You help with {{{{ product }}}}.", user: "Be {{{{ tone | default('calm') }}}}." }}
    labels:
      production: 1
      staging: 2
      ab: {{ split: [ {{ version: 1, weight: 50 }}, {{ version: 2, weight: 50 }} ] }}
"#,
        openai.base_url(),
        anthropic.base_url()
    );
    (Gw::start(&db, &body).await, db)
}

async fn post(gw: &Gw, body: &Value, request_id: &str, ab_key: Option<&str>) -> Reply {
    let mut req = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(ADMIN)
        .header("x-request-id", request_id)
        .json(body);
    if let Some(key) = ab_key {
        req = req.header("x-switchboard-ab-key", key);
    }
    Reply::read(req.send().await.unwrap()).await
}

fn last_body(up: &MockProvider) -> Value {
    up.requests()
        .last()
        .expect("the upstream was called")
        .body
        .clone()
}

#[tokio::test]
async fn the_upstream_receives_the_rendered_prompt_then_the_clients_messages() {
    let (openai, anthropic) = (
        MockProvider::start(MockKind::OpenAi).await,
        MockProvider::start(MockKind::Anthropic).await,
    );
    let (gw, _db) = gateway(&openai, &anthropic).await;
    let id = new_request_id();
    let body = json!({
        "model": "chat",
        "prompt": {"id": "support", "variables": {"product": "Widget"}},
        "messages": [{"role": "user", "content": "It broke."}],
    });
    let reply = post(&gw, &body, &id, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.header("x-switchboard-prompt-version"),
        Some("support@1")
    );
    let sent = last_body(&openai);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "You support Widget."},
            {"role": "user", "content": "It broke."},
        ])
    );
    assert_eq!(sent["temperature"], 0.1, "the version's parameter");
    assert!(
        sent.get("prompt").is_none(),
        "the reference is not forwarded"
    );
    // The usage record names the version.
    gw.wait_records(1).await;
    let record = gw.record(&id).await;
    assert!(
        record
            .tags
            .contains(&("prompt".to_owned(), "support@1".to_owned())),
        "{:?}",
        record.tags
    );
}

#[tokio::test]
async fn messages_may_be_absent_and_a_label_or_version_picks_the_version() {
    let (openai, anthropic) = (
        MockProvider::start(MockKind::OpenAi).await,
        MockProvider::start(MockKind::Anthropic).await,
    );
    let (gw, _db) = gateway(&openai, &anthropic).await;
    let vars = json!({"product": "Widget", "tone": "brisk"});
    for (prompt, version) in [
        (
            json!({"id": "support", "label": "staging", "variables": vars}),
            "support@2",
        ),
        (
            json!({"name": "support", "version": 2, "variables": vars}),
            "support@2",
        ),
        (
            json!({"id": "support", "version": "2", "label": "production", "variables": vars}),
            "support@2",
        ),
        (
            json!({"id": "support", "version": 1, "variables": vars}),
            "support@1",
        ),
    ] {
        let body = json!({"model": "chat", "temperature": 0.9, "prompt": prompt});
        let reply = post(&gw, &body, &new_request_id(), None).await;
        assert_eq!(reply.status, 200, "{prompt}: {}", reply.text);
        assert_eq!(reply.header("x-switchboard-prompt-version"), Some(version));
        let sent = last_body(&openai);
        assert_eq!(sent["temperature"], 0.9, "the client's parameter wins");
        if version == "support@2" {
            assert_eq!(
                sent["messages"],
                json!([
                    {"role": "system", "content": "You help with Widget."},
                    {"role": "user", "content": "Be brisk."},
                ])
            );
        }
    }
}

#[tokio::test]
async fn a_split_label_is_sticky_per_ab_key() {
    let (openai, anthropic) = (
        MockProvider::start(MockKind::OpenAi).await,
        MockProvider::start(MockKind::Anthropic).await,
    );
    let (gw, _db) = gateway(&openai, &anthropic).await;
    let body = json!({"model": "chat", "prompt": {"id": "support", "label": "ab", "variables": {"product": "W"}}});
    let mut seen = std::collections::BTreeSet::new();
    for user in 0..16 {
        let key = format!("end-user-{user}");
        let first = post(&gw, &body, &new_request_id(), Some(&key)).await;
        let again = post(&gw, &body, &new_request_id(), Some(&key)).await;
        let version = first
            .header("x-switchboard-prompt-version")
            .unwrap()
            .to_owned();
        assert_eq!(
            again.header("x-switchboard-prompt-version"),
            Some(version.as_str())
        );
        seen.insert(version);
    }
    assert_eq!(seen.len(), 2, "both arms serve someone: {seen:?}");
}

#[tokio::test]
async fn another_protocol_and_a_stream_get_the_rendered_prompt_too() {
    let (openai, anthropic) = (
        MockProvider::start(MockKind::OpenAi).await,
        MockProvider::start(MockKind::Anthropic).await,
    );
    let (gw, _db) = gateway(&openai, &anthropic).await;
    let body = json!({
        "model": "claude",
        "stream": true,
        "prompt": {"id": "support", "variables": {"product": "Widget"}},
        "messages": [{"role": "user", "content": "Hi"}],
    });
    let reply = post(&gw, &body, &new_request_id(), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.header("x-switchboard-prompt-version"),
        Some("support@1")
    );
    assert!(reply.text.contains("[DONE]"));
    let sent = last_body(&anthropic);
    assert!(
        sent["system"].to_string().contains("You support Widget."),
        "{sent}"
    );
    assert_eq!(sent["messages"][0]["role"], "user");
}

#[tokio::test]
async fn unknown_prompts_and_bad_variables_are_refused() {
    let (openai, anthropic) = (
        MockProvider::start(MockKind::OpenAi).await,
        MockProvider::start(MockKind::Anthropic).await,
    );
    let (gw, _db) = gateway(&openai, &anthropic).await;
    let vars = json!({"product": "W"});
    for prompt in [
        json!({"id": "nope", "variables": vars}),
        json!({"id": "support", "version": 7, "variables": vars}),
        json!({"id": "support", "label": "canary", "variables": vars}),
    ] {
        let reply = post(
            &gw,
            &json!({"model": "chat", "prompt": prompt}),
            &new_request_id(),
            None,
        )
        .await;
        assert_eq!(reply.status, 404, "{prompt}: {}", reply.text);
        assert_eq!(reply.code(), "prompt_not_found");
    }
    for (variables, param) in [
        (json!({}), "product"),
        (json!({"product": 3}), "product"),
        (json!({"product": "W", "tone": "loud"}), "tone"),
    ] {
        let body = json!({"model": "chat", "prompt": {"id": "support", "variables": variables}});
        let reply = post(&gw, &body, &new_request_id(), None).await;
        assert_eq!(reply.status, 400, "{variables}: {}", reply.text);
        assert_eq!(reply.code(), "invalid_variables");
        assert_eq!(reply.json()["error"]["param"], param, "{}", reply.text);
    }
    // A malformed reference is a 400 naming the field.
    for (prompt, param) in [
        (json!({"variables": vars}), "prompt.id"),
        (
            json!({"id": "support", "version": "latest"}),
            "prompt.version",
        ),
        (json!({"id": "support", "extra": 1}), "prompt"),
    ] {
        let reply = post(
            &gw,
            &json!({"model": "chat", "prompt": prompt}),
            &new_request_id(),
            None,
        )
        .await;
        assert_eq!(reply.status, 400, "{prompt}: {}", reply.text);
        assert_eq!(reply.json()["error"]["param"], param, "{}", reply.text);
    }
    // Without a prompt, messages are still required.
    let reply = post(&gw, &json!({"model": "chat"}), &new_request_id(), None).await;
    assert_eq!(reply.status, 400);
    assert_eq!(openai.request_count(), 0, "nothing reached the upstream");
}
