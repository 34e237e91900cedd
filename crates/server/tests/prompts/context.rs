//! Context-window policies over HTTP: what the upstream actually receives when an alias
//! truncates (`truncate_oldest`, `middle_out`), the `x-switchboard-context` header and the
//! `context` usage tag, `reject`'s 400 with the counts, and the catalog's window for an alias
//! without `context_window`.

use super::db::Db;
use super::kit::{new_request_id, Gw, Reply, ADMIN};
use serde_json::{json, Value};
use switchboard_testkit::{MockKind, MockProvider};

/// A gateway whose aliases all go to the OpenAI mock `gpt-4o`: `oldest` (window 600,
/// truncate_oldest), `middle` (600, middle_out), `strict` (600, reject), `catalog` (gpt-3.5-turbo,
/// no window in the config: the catalog's 16,385).
async fn gateway(up: &MockProvider) -> (Gw, Db) {
    let db = Db::sqlite();
    let body = format!(
        "providers:\n  up: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n\
         models:\n\
         \x20 oldest: {{ targets: [ {{ provider: up, model: gpt-4o }} ], context_window: 600, context_policy: truncate_oldest }}\n\
         \x20 middle: {{ targets: [ {{ provider: up, model: gpt-4o }} ], context_window: 600, context_policy: middle_out }}\n\
         \x20 strict: {{ targets: [ {{ provider: up, model: gpt-4o }} ], context_window: 600, context_policy: reject }}\n\
         \x20 catalog: {{ targets: [ {{ provider: up, model: gpt-3.5-turbo }} ] }}\n",
        up.base_url()
    );
    (Gw::start(&db, &body).await, db)
}

/// `turns` turns behind a system prompt; every third turn calls a tool and gets its result.
fn conversation(turns: usize) -> Vec<Value> {
    let mut messages = vec![json!({"role": "system", "content": "You are terse."})];
    for i in 0..turns {
        messages.push(json!({"role": "user", "content": format!("question {i} about topic {i}")}));
        if i % 3 == 1 {
            let id = format!("call_{i}");
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": id, "type": "function", "function": {"name": "lookup", "arguments": format!("{{\"q\":{i}}}")}}
            ]}));
            messages
                .push(json!({"role": "tool", "tool_call_id": id, "content": format!("data {i}")}));
        }
        messages.push(json!({"role": "assistant", "content": format!("answer {i}")}));
    }
    messages.push(json!({"role": "user", "content": "and the last question?"}));
    messages
}

async fn post(gw: &Gw, body: &Value, request_id: &str) -> Reply {
    let resp = gw
        .client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(ADMIN)
        .header("x-request-id", request_id)
        .json(body)
        .send()
        .await
        .unwrap();
    Reply::read(resp).await
}

/// The messages of the one request the mock received last.
fn upstream_messages(up: &MockProvider) -> Vec<Value> {
    let requests = up.requests();
    let last = requests.last().expect("the upstream was called");
    last.body["messages"].as_array().unwrap().clone()
}

/// The rules a truncated conversation keeps, as the upstream received it.
fn assert_integrity(sent: &[Value], received: &[Value]) {
    assert_eq!(received[0], sent[0], "the system prompt stays first");
    assert_eq!(
        received[1]["role"], "user",
        "the turns start with a user message"
    );
    assert_eq!(received.last(), sent.last(), "the latest turn stays");
    for (i, m) in received.iter().enumerate() {
        if let Some(id) = m["tool_call_id"].as_str() {
            let called = received[..i].iter().any(|c| {
                c["tool_calls"]
                    .as_array()
                    .is_some_and(|calls| calls.iter().any(|t| t["id"] == id))
            });
            assert!(called, "the call of tool result {id} was sent");
        }
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            let answered = received[i + 1..]
                .iter()
                .any(|r| r["tool_call_id"] == call["id"]);
            assert!(answered, "the result of {} was sent", call["id"]);
        }
    }
}

fn dropped(reply: &Reply, action: &str) -> usize {
    let header = reply
        .header("x-switchboard-context")
        .unwrap_or_else(|| panic!("no x-switchboard-context: {:?}", reply.headers));
    let count = header
        .strip_prefix(&format!("{action};dropped="))
        .unwrap_or_else(|| panic!("{header}"));
    count.parse().unwrap()
}

#[tokio::test]
async fn truncate_oldest_sends_the_system_prompt_and_the_latest_turns() {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (gw, _db) = gateway(&up).await;
    let sent = conversation(120);
    let id = new_request_id();
    let reply = post(
        &gw,
        &json!({"model": "oldest", "max_tokens": 50, "messages": sent}),
        &id,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let n = dropped(&reply, "truncated_oldest");
    let received = upstream_messages(&up);
    assert!(n > 100, "most of the conversation goes: {n}");
    assert_eq!(received.len(), sent.len() - n);
    assert_integrity(&sent, &received);
    // The kept turns are the latest ones, in order.
    assert!(sent.ends_with(&received[1..]));
    // The usage record carries the tag.
    gw.wait_records(1).await;
    let record = gw.record(&id).await;
    assert!(
        record
            .tags
            .contains(&("context".to_owned(), "truncated_oldest".to_owned())),
        "{:?}",
        record.tags
    );
}

#[tokio::test]
async fn middle_out_sends_the_first_and_the_latest_turns() {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (gw, _db) = gateway(&up).await;
    let sent = conversation(120);
    let reply = post(
        &gw,
        &json!({"model": "middle", "max_tokens": 50, "messages": sent}),
        &new_request_id(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let n = dropped(&reply, "truncated_middle");
    let received = upstream_messages(&up);
    assert_eq!(received.len(), sent.len() - n);
    assert_integrity(&sent, &received);
    assert_eq!(received[1], sent[1], "the first question stays");
    assert_eq!(received[2], sent[2], "and its answer");
}

#[tokio::test]
async fn a_stream_is_truncated_too() {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (gw, _db) = gateway(&up).await;
    let sent = conversation(120);
    let body = json!({"model": "oldest", "stream": true, "messages": sent});
    let reply = post(&gw, &body, &new_request_id()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let n = dropped(&reply, "truncated_oldest");
    assert_eq!(upstream_messages(&up).len(), sent.len() - n);
    assert!(reply.text.contains("[DONE]"));
}

#[tokio::test]
async fn a_request_that_fits_is_forwarded_unchanged_without_the_header() {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (gw, _db) = gateway(&up).await;
    let sent = conversation(2);
    let reply = post(
        &gw,
        &json!({"model": "oldest", "messages": sent}),
        &new_request_id(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.header("x-switchboard-context").is_none());
    assert_eq!(upstream_messages(&up), sent);
}

#[tokio::test]
async fn reject_and_a_last_turn_too_long_answer_400_with_the_counts() {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (gw, _db) = gateway(&up).await;
    let reply = post(
        &gw,
        &json!({"model": "strict", "max_tokens": 50, "messages": conversation(120)}),
        &new_request_id(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.code(), "context_length_exceeded");
    let message = reply.message();
    assert!(
        message.contains("600") && message.contains("50"),
        "{message}"
    );
    // Truncation cannot help when the latest user turn alone is over the window.
    let mut sent = conversation(10);
    sent.push(json!({"role": "user", "content": "many words here ".repeat(300)}));
    for model in ["oldest", "middle"] {
        let reply = post(
            &gw,
            &json!({"model": model, "messages": sent}),
            &new_request_id(),
        )
        .await;
        assert_eq!(reply.status, 400, "{model}: {}", reply.text);
        assert_eq!(reply.code(), "context_length_exceeded");
    }
    assert_eq!(up.request_count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn an_alias_without_a_window_uses_the_catalogs() {
    let up = MockProvider::start(MockKind::OpenAi).await;
    let (gw, _db) = gateway(&up).await;
    // gpt-3.5-turbo: 16,385 tokens in the catalog; "word " is one cl100k token.
    let long = json!({"model": "catalog", "messages": [{"role": "user", "content": "word ".repeat(17_000)}]});
    let reply = post(&gw, &long, &new_request_id()).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.message().contains("16385"), "{}", reply.message());
    let short = json!({"model": "catalog", "messages": [{"role": "user", "content": "word ".repeat(1_000)}]});
    assert_eq!(post(&gw, &short, &new_request_id()).await.status, 200);
}

/// An Anthropic client's conversation (tool_use in assistant turns, tool_result in user turns)
/// truncated for an Anthropic upstream: what Anthropic receives starts with a user turn, and
/// every tool_result it receives answers a tool_use it also receives.
#[tokio::test]
async fn an_anthropic_conversation_with_tools_is_truncated_into_a_valid_one() {
    let up = MockProvider::start(MockKind::Anthropic).await;
    let db = Db::sqlite();
    let body = format!(
        "providers:\n  claude-up: {{ type: anthropic, base_url: \"{}\", api_key: sk-up }}\n\
         models:\n\
         \x20 claude: {{ targets: [ {{ provider: claude-up, model: claude-sonnet-4-5 }} ], context_window: 700, context_policy: truncate_oldest }}\n",
        up.base_url()
    );
    let gw = Gw::start(&db, &body).await;
    let mut messages = Vec::new();
    for i in 0..80 {
        let id = format!("toolu_{i}");
        messages.push(json!({"role": "user", "content": format!("question {i}")}));
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": id, "name": "lookup", "input": {"q": i}},
        ]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": format!("data {i}")},
            {"type": "text", "text": "go on"},
        ]}));
        messages.push(json!({"role": "assistant", "content": format!("answer {i}")}));
    }
    messages.push(json!({"role": "user", "content": "last question"}));
    let resp = gw
        .client
        .post(gw.url("/v1/messages"))
        .header("x-api-key", ADMIN)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 100, "system": "Be brief.", "messages": messages}))
        .send()
        .await
        .unwrap();
    let reply = Reply::read(resp).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(dropped(&reply, "truncated_oldest") > 0);
    let received = upstream_messages(&up);
    assert!(received.len() < messages.len());
    assert_eq!(received[0]["role"], "user");
    assert!(
        received[0]["content"]
            .as_array()
            .is_none_or(|blocks| blocks.iter().all(|b| b["type"] != "tool_result")),
        "the first turn answers no dropped tool_use: {}",
        received[0]
    );
    assert!(received.last().unwrap()["content"]
        .to_string()
        .contains("last question"));
    let mut used = std::collections::BTreeSet::new();
    for m in &received {
        for block in m["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("tool_use") => {
                    used.insert(block["id"].as_str().unwrap().to_owned());
                }
                Some("tool_result") => {
                    let id = block["tool_use_id"].as_str().unwrap();
                    assert!(used.contains(id), "{id} answers a tool_use that was sent");
                }
                _ => {}
            }
        }
    }
    assert!(up.requests().last().unwrap().body["system"]
        .to_string()
        .contains("Be brief."));
}
