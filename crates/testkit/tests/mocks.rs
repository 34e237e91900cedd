//! Black-box checks of the mock providers over real HTTP: plain JSON, stream framing up to the
//! terminal event, auth failures, scripted errors, and client disconnects counted as cancels.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns: a failed request is a failed test"
)]

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use switchboard_testkit::{MockKind, MockProvider, MockToolCall, MockUsage, Reply};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn chat_body(stream: bool) -> Value {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

async fn openai_post(mock: &MockProvider, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .bearer_auth("sk-test")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `data:` payloads of an SSE body (CRLF or LF).
fn data_lines(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn openai_plain_json_echo_and_recording() {
    let mock = MockProvider::start(MockKind::OpenAi).await;
    assert!(mock.base_url().ends_with("/v1"));
    let resp = openai_post(&mock, &chat_body(false)).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "echo: hi");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let reqs = mock.requests();
    assert_eq!(mock.request_count(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].header("Authorization"), Some("Bearer sk-test"));
    assert_eq!(reqs[0].body["model"], "gpt-4o");
}

#[tokio::test]
async fn openai_stream_usage_only_when_asked_then_done() {
    let mock = MockProvider::start(MockKind::OpenAi).await;
    let usage = MockUsage {
        input: 12,
        output: 4,
        cached: 2,
        reasoning: 1,
    };
    mock.enqueue(Reply::Text {
        text: "hello world".into(),
        usage: usage.clone(),
    });
    mock.enqueue(Reply::Text {
        text: "hello world".into(),
        usage,
    });

    let text = openai_post(&mock, &chat_body(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let lines = data_lines(&text);
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "hello world");

    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = openai_post(&mock, &body).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let lines = data_lines(&text);
    let usage: Value = serde_json::from_str(&lines[lines.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 12);
    assert_eq!(mock.open_streams(), 0);
    assert_eq!(mock.cancelled_streams(), 0);
}

#[tokio::test]
async fn openai_tool_calls_json() {
    let mock = MockProvider::start(MockKind::OpenAi).await;
    mock.enqueue(Reply::ToolCalls {
        text: None,
        calls: vec![MockToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        }],
        usage: MockUsage::default(),
    });
    let v: Value = openai_post(&mock, &chat_body(false))
        .await
        .json()
        .await
        .unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn openai_auth_failure_and_scripted_error() {
    let mock = MockProvider::start(MockKind::OpenAi).await;
    mock.enqueue(Reply::Error {
        status: 429,
        retry_after_secs: Some(3),
    });
    let resp = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    // The rejected request did not consume the scripted reply.
    let resp = openai_post(&mock, &chat_body(false)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(v["error"].get("param").is_some());
}

#[tokio::test]
async fn openai_stream_then_error_and_drop() {
    let mock = MockProvider::start(MockKind::OpenAi).await;
    mock.enqueue(Reply::StreamThenError { chunks: 2 });
    mock.enqueue(Reply::StreamThenDrop { chunks: 2 });
    let text = openai_post(&mock, &chat_body(true))
        .await
        .text()
        .await
        .unwrap();
    let lines = data_lines(&text);
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!text.contains("[DONE]"));

    let resp = openai_post(&mock, &chat_body(true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => received.extend_from_slice(&b),
            Err(_) => failed = true,
        }
    }
    assert!(failed, "body must end abnormally");
    let text = String::from_utf8(received).unwrap();
    assert!(
        text.contains("tok1 "),
        "deltas before the cut arrive: {text}"
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(mock.cancelled_streams(), 0);
}

#[tokio::test(start_paused = true)]
async fn paused_clock_slow_stream_and_cancel() {
    let mock = MockProvider::start(MockKind::Gemini).await;
    mock.enqueue(Reply::SlowStream {
        chunks: 3,
        interval: Duration::from_secs(2),
    });
    mock.enqueue(Reply::SlowStream {
        chunks: 100,
        interval: Duration::from_secs(2),
    });
    let url = format!(
        "{}/v1beta/models/g:streamGenerateContent?alt=sse&key=k",
        mock.base_url()
    );
    let body = json!({"contents": [{"parts": [{"text": "x"}]}]});
    let text = client()
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(data_lines(&text).len(), 3);

    let resp = client().post(&url).json(&body).send().await.unwrap();
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert!(mock.wait_for_cancelled(1, Duration::from_secs(30)).await);
}

#[tokio::test]
async fn openai_embeddings() {
    let mock = MockProvider::start(MockKind::OpenAi).await;
    mock.enqueue(Reply::Embedding { dims: 3 });
    let v: Value = client()
        .post(format!("{}/embeddings", mock.base_url()))
        .bearer_auth("k")
        .json(&json!({"model": "text-embedding-3-small", "input": ["a", "b"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 3);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn azure_routing_auth_and_filter_annotations() {
    let mock = MockProvider::start(MockKind::AzureOpenAi).await;
    let url = format!(
        "{}/openai/deployments/gpt4o/chat/completions",
        mock.base_url()
    );
    let resp = client()
        .post(&url)
        .header("api-key", "k")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "api-version is required");
    let resp = client()
        .post(format!("{url}?api-version=2024-10-21"))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "401");

    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = client()
        .post(format!("{url}?api-version=2024-10-21"))
        .header("api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    let lines = data_lines(&text);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["choices"], json!([]));
    assert!(first["prompt_filter_results"][0]["content_filter_results"].is_object());
    let usage: Value = serde_json::from_str(&lines[lines.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 15);
}

async fn anthropic_post(mock: &MockProvider, body: &Value, version: bool) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("x-api-key", "k");
    if version {
        req = req.header("anthropic-version", "2023-06-01");
    }
    req.json(body).send().await.unwrap()
}

#[tokio::test]
async fn anthropic_json_stream_and_errors() {
    let mock = MockProvider::start(MockKind::Anthropic).await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "yo"}]}]});

    let resp = anthropic_post(&mock, &body, false).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let mut no_max = body.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(anthropic_post(&mock, &no_max, true).await.status(), 400);

    let v: Value = anthropic_post(&mock, &body, true)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "echo: yo");
    assert_eq!(v["stop_reason"], "end_turn");

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let text = anthropic_post(&mock, &stream, true)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("event: message_start\n"));
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );

    mock.enqueue(Reply::Error {
        status: 529,
        retry_after_secs: None,
    });
    let resp = anthropic_post(&mock, &body, true).await;
    assert_eq!(resp.status(), 529);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");

    mock.enqueue(Reply::StreamThenError { chunks: 1 });
    let text = anthropic_post(&mock, &stream, true)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: error\n"));
    assert!(text.contains("overloaded_error"));
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn gemini_json_sse_embed_and_errors() {
    let mock = MockProvider::start(MockKind::Gemini).await;
    let base = format!("{}/v1beta/models/gemini-2.0-flash", mock.base_url());
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "ping"}]}]});

    let resp = client()
        .post(format!("{base}:generateContent"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED");

    let v: Value = client()
        .post(format!("{base}:generateContent?key=k"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "echo: ping"
    );
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 10);

    let text = client()
        .post(format!("{base}:streamGenerateContent?alt=sse"))
        .header("x-goog-api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.ends_with("\r\n\r\n"));
    let chunks: Vec<Value> = data_lines(&text)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        chunks.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
    let all: String = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(all, "echo: ping");

    // Without alt=sse Gemini streams one JSON array.
    let arr: Value = client()
        .post(format!("{base}:streamGenerateContent?key=k"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        arr.as_array().unwrap().last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );

    mock.enqueue(Reply::Error {
        status: 429,
        retry_after_secs: Some(7),
    });
    let resp = client()
        .post(format!("{base}:generateContent?key=k"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");

    let v: Value = client()
        .post(format!(
            "{}/v1beta/models/text-embedding-004:batchEmbedContents?key=k",
            mock.base_url()
        ))
        .json(&json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}}
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(v["embeddings"][0]["values"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn hang_then_client_drop_counts_as_cancelled() {
    let mock = MockProvider::start(MockKind::Anthropic).await;
    mock.enqueue(Reply::Hang);
    let body =
        json!({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]});
    let send = client()
        .post(format!("{}/v1/messages", mock.base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send();
    assert!(tokio::time::timeout(Duration::from_millis(200), send)
        .await
        .is_err());
    assert!(mock.wait_for_cancelled(1, Duration::from_secs(5)).await);
    assert_eq!(mock.open_streams(), 0);
}

#[tokio::test]
async fn slow_stream_dropped_mid_way_counts_as_cancelled() {
    let mock = MockProvider::start(MockKind::OpenAi).await;
    mock.enqueue(Reply::SlowStream {
        chunks: 100,
        interval: Duration::from_millis(20),
    });
    let resp = openai_post(&mock, &chat_body(true)).await;
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(mock.open_streams(), 1);
    drop(body);
    assert!(mock.wait_for_cancelled(1, Duration::from_secs(5)).await);
    assert_eq!(mock.open_streams(), 0);
}

#[tokio::test]
async fn dropping_the_mock_closes_the_port() {
    let mock = MockProvider::start(MockKind::Gemini).await;
    let addr = mock.addr();
    mock.enqueue(Reply::Hang);
    drop(mock);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
