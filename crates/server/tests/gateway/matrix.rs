//! Every client format x every provider, JSON and streamed: text, usage, tool calls, and what
//! the provider actually received.

use super::harness::{anthropic_text, openai_text, World, PROVIDERS};
use serde_json::{json, Value};
use switchboard_testkit::{MockToolCall, MockUsage, Reply as MockReply};

const TEXT: &str = "Hello from upstream, in several words.";

fn usage() -> MockUsage {
    MockUsage {
        input: 12,
        output: 7,
        cached: 2,
        reasoning: 0,
    }
}

fn openai_body(alias: &str, stream: bool) -> Value {
    json!({
        "model": alias,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"}
        ]
    })
}

fn anthropic_body(alias: &str, stream: bool) -> Value {
    json!({
        "model": alias, "max_tokens": 100, "stream": stream, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}]
    })
}

fn expect_routing_headers(reply: &super::harness::Reply, alias: &str, provider: &str) {
    assert_eq!(
        reply.header("x-switchboard-model"),
        Some(alias),
        "{}",
        reply.text
    );
    let target = reply.header("x-switchboard-target").unwrap_or_default();
    assert!(
        target.starts_with(&format!("{provider}/")),
        "target {target}"
    );
    assert_eq!(reply.header("x-switchboard-attempts"), Some("1"));
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn openai_clients_get_text_and_usage_from_every_provider() {
    let world = World::start().await;
    for provider in PROVIDERS {
        for stream in [false, true] {
            world.mock(provider).enqueue(MockReply::Text {
                text: TEXT.into(),
                usage: usage(),
            });
            let alias = format!("m-{provider}");
            let reply = world
                .post("/v1/chat/completions", &openai_body(&alias, stream))
                .await;
            let ctx = format!("{provider} stream={stream}: {}", reply.text);
            assert_eq!(reply.status, 200, "{ctx}");
            expect_routing_headers(&reply, &alias, provider);
            assert_eq!(openai_text(&reply, stream), TEXT, "{ctx}");
            let usage = if stream {
                let events = reply.sse();
                assert_eq!(events.last().unwrap().1, json!("[DONE]"), "{ctx}");
                let finishes = events
                    .iter()
                    .filter(|(_, v)| v["choices"][0]["finish_reason"].is_string())
                    .count();
                assert_eq!(finishes, 1, "{ctx}");
                events
                    .iter()
                    .rev()
                    .find(|(_, v)| v["usage"].is_object())
                    .unwrap()
                    .1["usage"]
                    .clone()
            } else {
                let body = reply.json();
                assert_eq!(body["object"], "chat.completion");
                assert_eq!(body["choices"][0]["finish_reason"], "stop", "{ctx}");
                body["usage"].clone()
            };
            assert_eq!(usage["prompt_tokens"], 12, "{ctx}");
            assert_eq!(usage["completion_tokens"], 7, "{ctx}");
            assert_eq!(usage["total_tokens"], 19, "{ctx}");
            assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 2, "{ctx}");
        }
    }
}

#[tokio::test]
async fn anthropic_clients_get_text_and_usage_from_every_provider() {
    let world = World::start().await;
    for provider in PROVIDERS {
        for stream in [false, true] {
            world.mock(provider).enqueue(MockReply::Text {
                text: TEXT.into(),
                usage: usage(),
            });
            let alias = format!("m-{provider}");
            let reply = world
                .post("/v1/messages", &anthropic_body(&alias, stream))
                .await;
            let ctx = format!("{provider} stream={stream}: {}", reply.text);
            assert_eq!(reply.status, 200, "{ctx}");
            expect_routing_headers(&reply, &alias, provider);
            assert_eq!(anthropic_text(&reply, stream), TEXT, "{ctx}");
            if stream {
                let events = reply.sse();
                assert_eq!(
                    events.first().unwrap().0.as_deref(),
                    Some("message_start"),
                    "{ctx}"
                );
                assert_eq!(
                    events.last().unwrap().0.as_deref(),
                    Some("message_stop"),
                    "{ctx}"
                );
                let delta = events
                    .iter()
                    .find(|(e, _)| e.as_deref() == Some("message_delta"))
                    .unwrap();
                assert_eq!(delta.1["delta"]["stop_reason"], "end_turn", "{ctx}");
                assert_eq!(delta.1["usage"]["output_tokens"], 7, "{ctx}");
                for (name, data) in &events {
                    assert_eq!(data["type"].as_str(), name.as_deref(), "{ctx}");
                }
            } else {
                let body = reply.json();
                assert_eq!(body["type"], "message");
                assert_eq!(body["role"], "assistant");
                assert_eq!(body["stop_reason"], "end_turn", "{ctx}");
                // Anthropic's input_tokens excludes cache reads.
                assert_eq!(body["usage"]["input_tokens"], 10, "{ctx}");
                assert_eq!(body["usage"]["cache_read_input_tokens"], 2, "{ctx}");
                assert_eq!(body["usage"]["output_tokens"], 7, "{ctx}");
            }
        }
    }
}

#[tokio::test]
async fn the_builtin_mock_answers_both_formats() {
    let world = World::start().await;
    for stream in [false, true] {
        let reply = world
            .post("/v1/chat/completions", &openai_body("m-mock", stream))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(openai_text(&reply, stream), "echo: Hi");
        let reply = world
            .post("/v1/messages", &anthropic_body("m-mock", stream))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(anthropic_text(&reply, stream), "echo: Hi");
    }
}

fn tool_calls() -> Vec<MockToolCall> {
    vec![
        MockToolCall {
            id: "call_a1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris","unit":"c"}"#.into(),
        },
        MockToolCall {
            id: "call_b2".into(),
            name: "get_time".into(),
            arguments: r#"{"tz":"Europe/Paris"}"#.into(),
        },
    ]
}

fn weather_tools_openai() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
    ])
}

/// (name, arguments as JSON) of each call, in order.
type Calls = Vec<(String, Value)>;

fn openai_calls(reply: &super::harness::Reply, stream: bool) -> (Calls, Vec<String>, String) {
    if !stream {
        let body = reply.json();
        let choice = &body["choices"][0];
        let calls = choice["message"]["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let out = calls
            .iter()
            .map(|c| {
                assert_eq!(c["type"], "function");
                let args =
                    serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
                (c["function"]["name"].as_str().unwrap().to_owned(), args)
            })
            .collect();
        let ids = calls
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        return (
            out,
            ids,
            choice["finish_reason"].as_str().unwrap().to_owned(),
        );
    }
    let mut names: Vec<String> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut args: Vec<String> = Vec::new();
    let mut finish = String::new();
    for (_, ev) in reply.sse() {
        if let Some(reason) = ev["choices"][0]["finish_reason"].as_str() {
            finish = reason.to_owned();
        }
        for call in ev["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(index, ids.len(), "tool call indexes are contiguous");
                ids.push(id.to_owned());
                names.push(call["function"]["name"].as_str().unwrap().to_owned());
                args.push(String::new());
            }
            if let Some(fragment) = call["function"]["arguments"].as_str() {
                args[index].push_str(fragment);
            }
        }
    }
    let calls = names
        .into_iter()
        .zip(args)
        .map(|(n, a)| {
            (
                n,
                serde_json::from_str(&a).unwrap_or_else(|e| panic!("{e}: {a}")),
            )
        })
        .collect();
    (calls, ids, finish)
}

fn anthropic_calls(reply: &super::harness::Reply, stream: bool) -> (Calls, Vec<String>, String) {
    if !stream {
        let body = reply.json();
        let blocks: Vec<Value> = body["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .cloned()
            .collect();
        let calls = blocks
            .iter()
            .map(|b| (b["name"].as_str().unwrap().to_owned(), b["input"].clone()))
            .collect();
        let ids = blocks
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        return (calls, ids, body["stop_reason"].as_str().unwrap().to_owned());
    }
    let mut blocks: Vec<(String, String, String)> = Vec::new();
    let mut by_index = std::collections::HashMap::new();
    let mut stop = String::new();
    let mut open: Option<u64> = None;
    for (name, ev) in reply.sse() {
        match name.as_deref() {
            Some("content_block_start") => {
                assert!(open.is_none(), "blocks must not interleave");
                let index = ev["index"].as_u64().unwrap();
                open = Some(index);
                if ev["content_block"]["type"] == "tool_use" {
                    by_index.insert(index, blocks.len());
                    let b = &ev["content_block"];
                    blocks.push((
                        b["id"].as_str().unwrap().into(),
                        b["name"].as_str().unwrap().into(),
                        String::new(),
                    ));
                }
            }
            Some("content_block_delta") => {
                assert_eq!(open, ev["index"].as_u64(), "delta for the open block");
                if ev["delta"]["type"] == "input_json_delta" {
                    let i = by_index[&ev["index"].as_u64().unwrap()];
                    blocks[i]
                        .2
                        .push_str(ev["delta"]["partial_json"].as_str().unwrap());
                }
            }
            Some("content_block_stop") => open = None,
            Some("message_delta") => stop = ev["delta"]["stop_reason"].as_str().unwrap().to_owned(),
            _ => {}
        }
    }
    let ids = blocks.iter().map(|b| b.0.clone()).collect();
    let calls = blocks
        .into_iter()
        .map(|(_, n, a)| {
            (
                n,
                serde_json::from_str(&a).unwrap_or_else(|e| panic!("{e}: {a}")),
            )
        })
        .collect();
    (calls, ids, stop)
}

#[tokio::test]
async fn tool_calls_survive_every_pair_json_and_streamed() {
    let world = World::start().await;
    let expected: Calls = vec![
        ("get_weather".into(), json!({"city": "Paris", "unit": "c"})),
        ("get_time".into(), json!({"tz": "Europe/Paris"})),
    ];
    for provider in PROVIDERS {
        for stream in [false, true] {
            let alias = format!("m-{provider}");
            world.mock(provider).enqueue(MockReply::ToolCalls {
                text: None,
                calls: tool_calls(),
                usage: usage(),
            });
            let body = json!({
                "model": alias, "stream": stream, "tools": weather_tools_openai(),
                "messages": [{"role": "user", "content": "Weather and time in Paris?"}]
            });
            let reply = world.post("/v1/chat/completions", &body).await;
            let ctx = format!("openai client, {provider} stream={stream}: {}", reply.text);
            assert_eq!(reply.status, 200, "{ctx}");
            let (calls, ids, finish) = openai_calls(&reply, stream);
            assert_eq!(calls, expected, "{ctx}");
            assert_eq!(finish, "tool_calls", "{ctx}");
            assert!(
                ids.iter().all(|id| !id.is_empty()) && ids[0] != ids[1],
                "{ctx}"
            );
            if provider != "gemini" {
                assert_eq!(ids, vec!["call_a1", "call_b2"], "{ctx}");
            }

            world.mock(provider).enqueue(MockReply::ToolCalls {
                text: None,
                calls: tool_calls(),
                usage: usage(),
            });
            let body = json!({
                "model": alias, "stream": stream, "max_tokens": 200,
                "tools": [
                    {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                    {"name": "get_time", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}
                ],
                "messages": [{"role": "user", "content": "Weather and time in Paris?"}]
            });
            let reply = world.post("/v1/messages", &body).await;
            let ctx = format!(
                "anthropic client, {provider} stream={stream}: {}",
                reply.text
            );
            assert_eq!(reply.status, 200, "{ctx}");
            let (calls, ids, stop) = anthropic_calls(&reply, stream);
            assert_eq!(calls, expected, "{ctx}");
            assert_eq!(stop, "tool_use", "{ctx}");
            assert!(
                ids.iter().all(|id| !id.is_empty()) && ids[0] != ids[1],
                "{ctx}"
            );
        }
    }
}

#[tokio::test]
async fn a_tool_conversation_reaches_each_provider_in_its_own_shape() {
    let world = World::start().await;
    let body = |alias: &str| {
        json!({
            "model": alias, "tools": weather_tools_openai(),
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a1", "content": "{\"temp\":21}"}
            ]
        })
    };
    for provider in PROVIDERS {
        let reply = world
            .post("/v1/chat/completions", &body(&format!("m-{provider}")))
            .await;
        assert_eq!(reply.status, 200, "{provider}: {}", reply.text);
        let sent = world.mock(provider).requests().pop().unwrap();
        match provider {
            "openai" | "azure" => {
                let msgs = sent.body["messages"].as_array().unwrap();
                assert_eq!(msgs[0]["role"], "system");
                assert_eq!(msgs[3]["role"], "tool");
                assert_eq!(msgs[3]["tool_call_id"], "call_a1");
            }
            "anthropic" => {
                assert_eq!(sent.body["model"], "claude-sonnet-4-5");
                assert_eq!(
                    sent.body["system"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| sent.body["system"][0]["text"]
                            .as_str()
                            .unwrap()
                            .to_owned()),
                    "Be brief."
                );
                assert_eq!(sent.body["max_tokens"], 4096, "the documented default");
                let msgs = sent.body["messages"].as_array().unwrap();
                assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
                assert_eq!(msgs[1]["content"][0]["input"], json!({"city": "Paris"}));
                assert_eq!(msgs[2]["role"], "user");
                assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
                assert_eq!(msgs[2]["content"][0]["tool_use_id"], "call_a1");
                assert_eq!(sent.header("x-api-key"), Some("sk-ant-upstream"));
                assert!(sent.header("anthropic-version").is_some());
            }
            _ => {
                assert!(
                    sent.path
                        .ends_with("/models/gemini-2.5-flash:generateContent"),
                    "{}",
                    sent.path
                );
                assert_eq!(
                    sent.body["systemInstruction"]["parts"][0]["text"],
                    "Be brief."
                );
                let contents = sent.body["contents"].as_array().unwrap();
                assert_eq!(contents[1]["role"], "model");
                assert_eq!(
                    contents[1]["parts"][0]["functionCall"]["name"],
                    "get_weather"
                );
                assert_eq!(
                    contents[2]["parts"][0]["functionResponse"]["name"],
                    "get_weather"
                );
                assert_eq!(
                    contents[2]["parts"][0]["functionResponse"]["response"],
                    json!({"temp": 21})
                );
            }
        }
    }
}

#[tokio::test]
async fn same_protocol_fast_path_keeps_provider_only_fields() {
    let world = World::start().await;
    let body = json!({
        "model": "m-openai", "service_tier": "flex", "logit_bias": {"50256": -100},
        "messages": [{"role": "user", "content": "Hi"}]
    });
    assert_eq!(world.post("/v1/chat/completions", &body).await.status, 200);
    let sent = world.mock("openai").requests().pop().unwrap();
    assert_eq!(sent.body["model"], "gpt-4o");
    assert_eq!(sent.body["service_tier"], "flex");
    assert_eq!(sent.body["logit_bias"], json!({"50256": -100}));
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-upstream-openai")
    );

    let body = json!({
        "model": "m-anthropic", "max_tokens": 50,
        "system": [{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hi"}]
    });
    assert_eq!(world.post("/v1/messages", &body).await.status, 200);
    let sent = world.mock("anthropic").requests().pop().unwrap();
    assert_eq!(sent.body["model"], "claude-sonnet-4-5");
    assert_eq!(
        sent.body["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[tokio::test]
async fn streams_always_ask_upstream_for_usage_but_show_it_only_when_asked() {
    let world = World::start().await;
    let body = json!({"model": "m-openai", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let reply = world.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .sse()
            .iter()
            .all(|(_, v)| v.get("usage").is_none_or(Value::is_null)),
        "{}",
        reply.text
    );
    let sent = world.mock("openai").requests().pop().unwrap();
    assert_eq!(sent.body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn unsupported_parameters_get_a_clear_400_naming_them() {
    let world = World::start().await;
    let body =
        json!({"model": "m-anthropic", "n": 2, "messages": [{"role": "user", "content": "Hi"}]});
    let reply = world.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["error"]["param"], "n");
    assert_eq!(reply.json()["error"]["code"], "unsupported_parameter");
    assert_eq!(
        world.mock("anthropic").request_count(),
        0,
        "nothing was sent upstream"
    );
}

#[tokio::test]
async fn images_reach_providers_in_their_shape() {
    let world = World::start().await;
    let body = |alias: &str| {
        json!({
            "model": alias,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]}]
        })
    };
    for provider in PROVIDERS {
        let reply = world
            .post("/v1/chat/completions", &body(&format!("m-{provider}")))
            .await;
        assert_eq!(reply.status, 200, "{provider}: {}", reply.text);
        let sent = world.mock(provider).requests().pop().unwrap();
        match provider {
            "anthropic" => {
                let image = &sent.body["messages"][0]["content"][1];
                assert_eq!(image["type"], "image");
                assert_eq!(
                    image["source"],
                    json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
                );
            }
            "gemini" => {
                let image = &sent.body["contents"][0]["parts"][1];
                assert_eq!(
                    image["inlineData"],
                    json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
                );
            }
            _ => assert_eq!(sent.body["messages"][0]["content"][1]["type"], "image_url"),
        }
    }
}

#[tokio::test]
async fn embeddings_from_every_provider_that_has_them() {
    let world = World::start().await;
    for provider in ["openai", "azure", "gemini"] {
        world
            .mock(provider)
            .enqueue(MockReply::Embedding { dims: 4 });
        let body = json!({"model": format!("m-{provider}"), "input": ["one", "two"]});
        let reply = world.post("/v1/embeddings", &body).await;
        assert_eq!(reply.status, 200, "{provider}: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["object"], "list");
        assert_eq!(body["data"].as_array().unwrap().len(), 2, "{provider}");
        assert_eq!(body["data"][1]["index"], 1);
        assert_eq!(
            body["data"][0]["embedding"].as_array().unwrap().len(),
            4,
            "{provider}"
        );
    }
    let reply = world
        .post(
            "/v1/embeddings",
            &json!({"model": "m-mock", "input": "one"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = world
        .post(
            "/v1/embeddings",
            &json!({"model": "m-anthropic", "input": "one"}),
        )
        .await;
    assert_eq!(
        reply.status, 400,
        "Anthropic has no embeddings: {}",
        reply.text
    );
}

#[tokio::test]
async fn models_lists_every_alias_and_count_tokens_counts() {
    let world = World::start().await;
    let reply = world
        .client
        .get(world.url("/v1/models"))
        .bearer_auth(super::harness::KEY)
        .send()
        .await
        .unwrap();
    let reply = super::harness::Reply::read(reply).await;
    assert_eq!(reply.status, 200);
    let ids: Vec<String> = reply.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    for alias in ["m-openai", "m-azure", "m-anthropic", "m-gemini", "m-mock"] {
        assert!(ids.contains(&alias.to_owned()), "{ids:?}");
    }
    let reply = world.post("/v1/messages/count_tokens", &json!({"model": "m-anthropic", "messages": [{"role": "user", "content": "Hello world"}]})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let tokens = reply.json()["input_tokens"].as_u64().unwrap();
    assert!((2..20).contains(&tokens), "{tokens}");
}

#[tokio::test]
async fn json_schema_output_works_on_every_provider() {
    let world = World::start().await;
    let schema =
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    let answer = r#"{"city":"Paris"}"#;
    for provider in PROVIDERS {
        for stream in [false, true] {
            let alias = format!("m-{provider}");
            // Anthropic has no native JSON-schema output: the gateway forces a tool named after
            // the schema and turns its input back into text.
            let reply = if provider == "anthropic" {
                MockReply::ToolCalls {
                    text: None,
                    calls: vec![MockToolCall {
                        id: "toolu_1".into(),
                        name: "place".into(),
                        arguments: answer.into(),
                    }],
                    usage: usage(),
                }
            } else {
                MockReply::Text {
                    text: answer.into(),
                    usage: usage(),
                }
            };
            world.mock(provider).enqueue(reply);
            let body = json!({
                "model": alias, "stream": stream,
                "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": true}},
                "messages": [{"role": "user", "content": "Where is the Louvre?"}]
            });
            let reply = world.post("/v1/chat/completions", &body).await;
            let ctx = format!("{provider} stream={stream}: {}", reply.text);
            assert_eq!(reply.status, 200, "{ctx}");
            let text = openai_text(&reply, stream);
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap(),
                json!({"city": "Paris"}),
                "{ctx}"
            );
            let sent = world.mock(provider).requests().pop().unwrap();
            match provider {
                "anthropic" => {
                    assert_eq!(
                        sent.body["tool_choice"],
                        json!({"type": "tool", "name": "place"}),
                        "{ctx}"
                    );
                    assert_eq!(sent.body["tools"][0]["input_schema"], schema, "{ctx}");
                    if !stream {
                        assert_eq!(reply.json()["choices"][0]["finish_reason"], "stop", "{ctx}");
                    }
                }
                "gemini" => {
                    assert_eq!(
                        sent.body["generationConfig"]["responseMimeType"], "application/json",
                        "{ctx}"
                    );
                }
                _ => assert_eq!(sent.body["response_format"]["type"], "json_schema", "{ctx}"),
            }
        }
    }
}

#[tokio::test]
async fn reasoning_and_cached_tokens_are_reported_in_each_format() {
    let world = World::start().await;
    let usage = MockUsage {
        input: 40,
        output: 30,
        cached: 10,
        reasoning: 12,
    };
    // Anthropic reports no separate reasoning count: it is part of output_tokens.
    for provider in ["openai", "azure", "gemini"] {
        world.mock(provider).enqueue(MockReply::Text {
            text: TEXT.into(),
            usage: usage.clone(),
        });
        let reply = world
            .post(
                "/v1/chat/completions",
                &openai_body(&format!("m-{provider}"), false),
            )
            .await;
        let usage = &reply.json()["usage"];
        assert_eq!(usage["prompt_tokens"], 40, "{provider}: {usage}");
        assert_eq!(usage["completion_tokens"], 30, "{provider}: {usage}");
        assert_eq!(
            usage["prompt_tokens_details"]["cached_tokens"], 10,
            "{provider}: {usage}"
        );
        assert_eq!(
            usage["completion_tokens_details"]["reasoning_tokens"], 12,
            "{provider}: {usage}"
        );
    }
    world.mock("gemini").enqueue(MockReply::Text {
        text: TEXT.into(),
        usage,
    });
    let reply = world
        .post("/v1/messages", &anthropic_body("m-gemini", false))
        .await;
    let usage = &reply.json()["usage"];
    assert_eq!(usage["input_tokens"], 30, "uncached input: {usage}");
    assert_eq!(usage["cache_read_input_tokens"], 10, "{usage}");
    assert_eq!(usage["output_tokens"], 30, "{usage}");
}

#[tokio::test]
async fn an_anthropic_tool_conversation_reaches_openai_and_gemini_in_their_shape() {
    let world = World::start().await;
    let body = |alias: &str| {
        json!({
            "model": alias, "max_tokens": 300, "system": "Be brief.",
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "21 degrees"},
                    {"type": "text", "text": "And tomorrow?"}
                ]}
            ]
        })
    };
    let reply = world.post("/v1/messages", &body("m-openai")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let sent = world.mock("openai").requests().pop().unwrap();
    let msgs = sent.body["messages"].as_array().unwrap();
    assert_eq!(msgs[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "toolu_01");
    assert_eq!(msgs[2]["tool_calls"][0]["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(
        msgs[2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "toolu_01");
    assert_eq!(msgs[4]["role"], "user");
    assert_eq!(sent.body["max_tokens"], 300);
    assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather");

    let reply = world.post("/v1/messages", &body("m-gemini")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let sent = world.mock("gemini").requests().pop().unwrap();
    let contents = sent.body["contents"].as_array().unwrap();
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );
    assert_eq!(sent.body["generationConfig"]["maxOutputTokens"], 300);
}
