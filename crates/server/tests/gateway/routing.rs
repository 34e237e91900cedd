//! Routing through real HTTP: retries, fallbacks, circuit breakers, timeouts, and the headers
//! that report them.

use super::harness::{openai_text, World};
use serde_json::json;
use std::time::Duration;
use switchboard_testkit::{MockUsage, Reply as MockReply};

fn chat(alias: &str) -> serde_json::Value {
    json!({"model": alias, "messages": [{"role": "user", "content": "Hi"}]})
}

fn text(t: &str) -> MockReply {
    MockReply::Text {
        text: t.into(),
        usage: MockUsage {
            input: 3,
            output: 2,
            ..MockUsage::default()
        },
    }
}

#[tokio::test]
async fn a_retryable_failure_is_retried_on_the_next_target() {
    let world = World::with_models(
        "  prio:\n    strategy: priority\n    retry: { attempts: 1, backoff_ms: 1 }\n    targets:\n      - { provider: openai, model: gpt-4o }\n      - { provider: anthropic, model: claude-sonnet-4-5 }\n",
    )
    .await;
    world.mock("openai").enqueue(MockReply::Error {
        status: 503,
        retry_after_secs: None,
    });
    world.mock("anthropic").enqueue(text("from anthropic"));
    let reply = world.post("/v1/chat/completions", &chat("prio")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(openai_text(&reply, false), "from anthropic");
    assert_eq!(reply.header("x-switchboard-attempts"), Some("2"));
    assert_eq!(
        reply.header("x-switchboard-target"),
        Some("anthropic/claude-sonnet-4-5")
    );
}

#[tokio::test]
async fn a_client_error_from_upstream_is_not_retried() {
    let world = World::with_models(
        "  prio:\n    strategy: priority\n    retry: { attempts: 3, backoff_ms: 1 }\n    fallbacks: [m-anthropic]\n    targets:\n      - { provider: openai, model: gpt-4o }\n",
    )
    .await;
    world.mock("openai").enqueue(MockReply::Error {
        status: 400,
        retry_after_secs: None,
    });
    let reply = world.post("/v1/chat/completions", &chat("prio")).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["error"]["code"], "upstream_rejected_request");
    assert_eq!(reply.header("x-switchboard-attempts"), Some("1"));
    assert_eq!(
        world.mock("anthropic").request_count(),
        0,
        "no fallback for a bad request"
    );
}

#[tokio::test]
async fn fallbacks_serve_when_every_target_failed_and_attempts_count_them() {
    let world = World::with_models(
        "  main:\n    retry: { attempts: 1, backoff_ms: 1 }\n    fallbacks: [m-gemini]\n    targets:\n      - { provider: openai, model: gpt-4o }\n",
    )
    .await;
    world.mock("openai").enqueue(MockReply::Error {
        status: 500,
        retry_after_secs: None,
    });
    world.mock("openai").enqueue(MockReply::Error {
        status: 502,
        retry_after_secs: None,
    });
    world.mock("gemini").enqueue(text("from gemini"));
    let reply = world.post("/v1/chat/completions", &chat("main")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(openai_text(&reply, false), "from gemini");
    assert_eq!(reply.header("x-switchboard-attempts"), Some("3"));
    assert_eq!(
        reply.header("x-switchboard-target"),
        Some("gemini/gemini-2.5-flash")
    );
    assert_eq!(reply.header("x-switchboard-model"), Some("main"));
}

#[tokio::test]
async fn every_target_failing_is_a_502_with_a_summary_and_no_secret() {
    let world = World::start().await;
    world.mock("anthropic").enqueue(MockReply::Error {
        status: 529,
        retry_after_secs: None,
    });
    let reply = world
        .post("/v1/chat/completions", &chat("m-anthropic"))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "upstream_error");
    assert!(
        error["message"].as_str().unwrap().contains("529"),
        "{error}"
    );
    assert!(!reply.text.contains("sk-ant-upstream"));
}

#[tokio::test]
async fn retry_after_from_a_429_is_passed_on_when_nothing_else_serves() {
    let world = World::start().await;
    world.mock("openai").enqueue(MockReply::Error {
        status: 429,
        retry_after_secs: Some(7),
    });
    let reply = world.post("/v1/chat/completions", &chat("m-openai")).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.header("retry-after"), Some("7"));
}

#[tokio::test]
async fn upstream_auth_failure_moves_to_the_next_target() {
    let world = World::with_models(
        "  prio:\n    strategy: priority\n    retry: { attempts: 1, backoff_ms: 1 }\n    targets:\n      - { provider: openai, model: gpt-4o }\n      - { provider: azure, model: gpt-4o }\n",
    )
    .await;
    world.mock("openai").enqueue(MockReply::Error {
        status: 401,
        retry_after_secs: None,
    });
    let reply = world.post("/v1/chat/completions", &chat("prio")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("x-switchboard-target"), Some("azure/gpt-4o"));
}

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures() {
    let world = World::with_models(
        "  fragile:\n    circuit: { failures: 2, cooldown_ms: 60000 }\n    targets:\n      - { provider: openai, model: gpt-4o }\n",
    )
    .await;
    for _ in 0..2 {
        world.mock("openai").enqueue(MockReply::Error {
            status: 500,
            retry_after_secs: None,
        });
        assert_eq!(
            world
                .post("/v1/chat/completions", &chat("fragile"))
                .await
                .status,
            502
        );
    }
    let reply = world.post("/v1/chat/completions", &chat("fragile")).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.json()["error"]["code"], "circuit_open");
    let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(
        world.mock("openai").request_count(),
        2,
        "an open circuit sends nothing upstream"
    );
}

#[tokio::test]
async fn a_first_byte_timeout_is_a_504() {
    let world = World::with_models(
        "  slow:\n    timeout: { first_byte_ms: 150 }\n    targets:\n      - { provider: openai, model: gpt-4o }\n",
    )
    .await;
    world.mock("openai").enqueue(MockReply::Delay {
        before: Duration::from_secs(10),
        then: Box::new(text("late")),
    });
    let reply = world.post("/v1/chat/completions", &chat("slow")).await;
    assert_eq!(reply.status, 504, "{}", reply.text);
    assert_eq!(reply.json()["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn weighted_routing_uses_every_target() {
    let world = World::with_models(
        "  spread:\n    strategy: weighted\n    targets:\n      - { provider: openai, model: gpt-4o, weight: 1 }\n      - { provider: azure, model: gpt-4o, weight: 1 }\n",
    )
    .await;
    for _ in 0..40 {
        assert_eq!(
            world
                .post("/v1/chat/completions", &chat("spread"))
                .await
                .status,
            200
        );
    }
    // With equal weights, the chance that one target gets none of 40 requests is 2^-39.
    assert!(world.mock("openai").request_count() > 0);
    assert!(world.mock("azure").request_count() > 0);
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_event_is_retried_invisibly() {
    let world = World::with_models(
        "  prio:\n    strategy: priority\n    retry: { attempts: 1, backoff_ms: 1 }\n    targets:\n      - { provider: anthropic, model: claude-sonnet-4-5 }\n      - { provider: openai, model: gpt-4o }\n",
    )
    .await;
    world
        .mock("anthropic")
        .enqueue(MockReply::StreamThenError { chunks: 0 });
    world.mock("openai").enqueue(text("second try"));
    let body =
        json!({"model": "prio", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let reply = world.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(openai_text(&reply, true), "second try");
    assert_eq!(reply.header("x-switchboard-attempts"), Some("2"));
}
