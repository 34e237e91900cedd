//! Streams: errors after the first byte, idle timeouts, unknown events, client disconnects.

use super::harness::{World, KEY};
use futures::StreamExt;
use serde_json::json;
use std::time::Duration;
use switchboard_testkit::Reply as MockReply;

#[tokio::test]
async fn a_mid_stream_failure_ends_the_stream_with_an_error_event_in_each_format() {
    let world = World::start().await;
    for provider in super::harness::PROVIDERS {
        world
            .mock(provider)
            .enqueue(MockReply::StreamThenError { chunks: 2 });
        let body = json!({"model": format!("m-{provider}"), "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
        let reply = world.post("/v1/chat/completions", &body).await;
        assert_eq!(reply.status, 200);
        let events = reply.sse();
        let last = &events.last().unwrap().1;
        assert!(
            last["error"]["message"].is_string(),
            "{provider}: {}",
            reply.text
        );
        assert!(
            !reply.text.contains("[DONE]"),
            "{provider}: no [DONE] after an error"
        );

        world
            .mock(provider)
            .enqueue(MockReply::StreamThenDrop { chunks: 2 });
        let body = json!({"model": format!("m-{provider}"), "stream": true, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]});
        let reply = world.post("/v1/messages", &body).await;
        assert_eq!(reply.status, 200);
        let events = reply.sse();
        let (name, data) = events.last().unwrap();
        assert_eq!(name.as_deref(), Some("error"), "{provider}: {}", reply.text);
        assert_eq!(data["type"], "error");
        assert!(!reply.text.contains("message_stop"), "{provider}");
    }
}

#[tokio::test]
async fn unknown_upstream_events_are_skipped() {
    let world = World::start().await;
    for provider in super::harness::PROVIDERS {
        world.mock(provider).enqueue(MockReply::WithUnknownEvent);
        let body = json!({"model": format!("m-{provider}"), "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
        let reply = world.post("/v1/chat/completions", &body).await;
        assert_eq!(reply.status, 200, "{provider}");
        assert!(
            reply.text.ends_with("data: [DONE]\n\n"),
            "{provider}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn a_silent_stream_hits_the_idle_timeout_in_stream() {
    let world = World::with_models(
        "  idle:\n    timeout: { idle_ms: 200 }\n    targets:\n      - { provider: openai, model: gpt-4o }\n",
    )
    .await;
    world.mock("openai").enqueue(MockReply::SlowStream {
        chunks: 3,
        interval: Duration::from_secs(30),
    });
    let body =
        json!({"model": "idle", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let reply = world.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let last = reply.sse().last().unwrap().1.clone();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{}", reply.text);
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let world = World::start().await;
    world.mock("openai").enqueue(MockReply::SlowStream {
        chunks: 50,
        interval: Duration::from_millis(100),
    });
    let body = json!({"model": "m-openai", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let resp = world
        .client
        .post(world.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(stream);
    assert!(
        world
            .mock("openai")
            .wait_for_cancelled(1, Duration::from_secs(10))
            .await,
        "the upstream stream was not cancelled"
    );
}

#[tokio::test]
async fn each_sse_event_is_flushed_on_its_own() {
    let world = World::start().await;
    world.mock("openai").enqueue(MockReply::SlowStream {
        chunks: 3,
        interval: Duration::from_secs(5),
    });
    let body = json!({"model": "m-openai", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let resp = world
        .client
        .post(world.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    // The first frame arrives while the upstream is still producing: it is not buffered.
    let first = stream.next().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&first);
    assert!(
        text.starts_with("data: ") && text.ends_with("\n\n"),
        "{text}"
    );
    assert!(world.mock("openai").open_streams() >= 1);
}

/// Shutdown stops accepting, but a stream in flight is served to its end.
#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish() {
    let World {
        gateway,
        mocks,
        client,
    } = World::start().await;
    mocks["openai"].enqueue(MockReply::SlowStream {
        chunks: 4,
        interval: Duration::from_millis(100),
    });
    let url = format!("http://{}/v1/chat/completions", gateway.addr);
    let body = json!({"model": "m-openai", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let resp = client
        .post(&url)
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let shutdown = tokio::spawn(gateway.shutdown());
    let text = resp.text().await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the stream was cut: {text}"
    );
    shutdown.await.unwrap();
    assert!(
        client
            .post(&url)
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .is_err(),
        "no new requests after shutdown"
    );
}
