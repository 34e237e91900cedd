//! Black-box checks of the benchmark's mock upstream (`switchboard::mock_upstream`, served
//! by the hidden `switchboard mock-upstream` subcommand) over real HTTP on a port-0 loopback
//! listener.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns may unwrap too"
)]

use std::time::Duration;

use switchboard::mock_upstream::{run, MockUpstreamOptions};
use tokio::sync::oneshot;

/// A running mock: its base URL and the handle that stops it.
struct Running {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(opts: MockUpstreamOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, opts, async move {
        let _ = stopped.await;
    }));
    Running {
        base,
        stop: Some(stop),
        task,
    }
}

impl Running {
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
        result.unwrap().unwrap().unwrap();
    }
}

fn data_events(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .collect()
}

#[tokio::test]
async fn answers_a_fixed_chat_completion() {
    let mock = start(MockUpstreamOptions::default()).await;
    let client = reqwest::Client::new();
    let body = r#"{"model":"x","messages":[{"role":"user","content":"hi"}]}"#;
    let first = client
        .post(format!("{}/v1/chat/completions", mock.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["content-type"], "application/json");
    let first = first.text().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(value["object"], "chat.completion");
    assert_eq!(value["choices"][0]["finish_reason"], "stop");
    assert_eq!(value["usage"]["total_tokens"], 32);
    // Deterministic: the second answer is byte-identical to the first.
    let second = client
        .post(format!("{}/v1/chat/completions", mock.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.text().await.unwrap(), first);
    mock.shutdown().await;
}

#[tokio::test]
async fn streams_chunks_then_usage_then_done() {
    let opts = MockUpstreamOptions {
        chunks: 3,
        chunk_delay_ms: 0,
        latency_ms: 0,
    };
    let mock = start(opts).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", mock.base);
    let with_usage =
        r#"{"model":"x","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let response = client.post(&url).body(with_usage).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events = data_events(&text);
    assert_eq!(events.len(), 3 + 1 + 1 + 1, "{text}");
    assert_eq!(events.last(), Some(&"[DONE]"));
    let first: serde_json::Value = serde_json::from_str(events[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let finish: serde_json::Value = serde_json::from_str(events[3]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage: serde_json::Value = serde_json::from_str(events[4]).unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);

    let without_usage = r#"{"model":"x","stream":true,"messages":[]}"#;
    let text = client
        .post(&url)
        .body(without_usage)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = data_events(&text);
    assert_eq!(events.len(), 3 + 1 + 1, "{text}");
    assert!(!text.contains("\"usage\""), "{text}");
    mock.shutdown().await;
}

#[tokio::test]
async fn flushes_the_first_chunk_before_the_delay() {
    let opts = MockUpstreamOptions {
        chunks: 3,
        chunk_delay_ms: 200,
        latency_ms: 0,
    };
    let mock = start(opts).await;
    let mut response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.base))
        .body(r#"{"stream":true}"#)
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    let first = std::str::from_utf8(&first).unwrap();
    assert_eq!(data_events(first).len(), 1, "{first}");
    let rest = response.text().await.unwrap();
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
    mock.shutdown().await;
}

#[tokio::test]
async fn answers_embeddings_and_errors() {
    let mock = start(MockUpstreamOptions::default()).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/v1/embeddings", mock.base))
        .body(r#"{"model":"e","input":["a","b"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let value: serde_json::Value = response.json().await.unwrap();
    assert_eq!(value["data"].as_array().unwrap().len(), 2);
    assert_eq!(value["data"][1]["index"], 1);
    assert_eq!(value["data"][0]["embedding"].as_array().unwrap().len(), 8);

    let response = client
        .post(format!("{}/v1/nope", mock.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let value: serde_json::Value = response.json().await.unwrap();
    assert!(value["error"]["message"].is_string());

    let response = client
        .post(format!("{}/v1/chat/completions", mock.base))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    mock.shutdown().await;
}

#[tokio::test]
async fn waits_latency_ms_before_answering() {
    let opts = MockUpstreamOptions {
        chunks: 1,
        chunk_delay_ms: 0,
        latency_ms: 100,
    };
    let mock = start(opts).await;
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", mock.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(100));
    mock.shutdown().await;
}
