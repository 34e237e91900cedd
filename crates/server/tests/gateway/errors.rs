//! The error table of SPEC section 3, in both formats, and inputs that must not hurt.

use super::harness::{start_yaml, World, KEY};
use serde_json::json;

#[tokio::test]
async fn credentials_are_read_from_every_supported_header() {
    let world = World::start().await;
    let body = json!({"model": "m-mock", "messages": [{"role": "user", "content": "Hi"}]});
    for (name, value) in [
        ("authorization", format!("Bearer {KEY}")),
        ("x-api-key", KEY.to_owned()),
        ("api-key", KEY.to_owned()),
        ("x-goog-api-key", KEY.to_owned()),
    ] {
        let resp = world
            .client
            .post(world.url("/v1/chat/completions"))
            .header(name, value)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn missing_and_wrong_keys_are_401_in_each_format() {
    let world = World::start().await;
    let reply = world
        .post_raw(
            "/v1/chat/completions",
            r#"{"model":"m-mock","messages":[]}"#,
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["code"], "missing_api_key");
    assert_eq!(reply.json()["error"]["type"], "authentication_error");
    let reply = world
        .post_raw("/v1/messages", r#"{"model":"m-mock"}"#, Some("sk-wrong"))
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["type"], "error");
    assert_eq!(reply.json()["error"]["type"], "authentication_error");
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let world = World::start().await;
    for body in [
        "{not json",
        "[]",
        "null",
        r#"{"messages":[{"role":"user","content":"x"}]}"#,
        r#"{"model":"m-mock","messages":"nope"}"#,
        r#"{"model":"m-mock","messages":[{"role":"wizard","content":"x"}]}"#,
        r#"{"model":"m-mock","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
    ] {
        let reply = world
            .post_raw("/v1/chat/completions", body, Some(KEY))
            .await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(
            reply.json()["error"]["type"],
            "invalid_request_error",
            "{body}"
        );
        let reply = world.post_raw("/v1/messages", body, Some(KEY)).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(
            reply.json()["error"]["type"],
            "invalid_request_error",
            "{body}"
        );
    }
    let reply = world
        .post_raw(
            "/v1/messages",
            r#"{"model":"m-mock","messages":[{"role":"user","content":"x"}]}"#,
            Some(KEY),
        )
        .await;
    assert_eq!(
        reply.status, 400,
        "max_tokens is required by the Messages API"
    );
}

#[tokio::test]
async fn the_body_is_json_whatever_the_content_type() {
    let world = World::start().await;
    let resp = world
        .client
        .post(world.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "text/plain")
        .body(r#"{"model":"m-mock","messages":[{"role":"user","content":"Hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unknown_models_are_404_and_unknown_routes_404_or_405() {
    let world = World::start().await;
    let reply = world
        .post(
            "/v1/chat/completions",
            &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "model_not_found");
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));

    let reply = world.post("/v1/messages", &json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["type"], "not_found_error");

    let reply = world.post("/v1/nothing-here", &json!({})).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "route_not_found");
    let reply = world.post("/v1/messages/batches", &json!({})).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["type"], "error");

    let resp = world
        .client
        .get(world.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let reply = super::harness::Reply::read(resp).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["error"]["code"], "method_not_allowed");
    let resp = world
        .client
        .get(world.url("/v1/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let reply = super::harness::Reply::read(resp).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.json()["type"], "error");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let gateway = start_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_key: {KEY}\nlimits: {{ max_body_bytes: 1000 }}\nproviders:\n  demo: {{ type: mock }}\nmodels:\n  demo: {{ targets: [ {{ provider: demo, model: echo }} ] }}\n"
    ))
    .await;
    let big = json!({"model": "demo", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", gateway.addr))
        .bearer_auth(KEY)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
}

#[tokio::test]
async fn the_context_window_is_checked_with_the_counts() {
    let world = World::with_models(
        "  small:\n    context_window: 50\n    targets: [ { provider: mock, model: echo } ]\n",
    )
    .await;
    let body = json!({"model": "small", "max_tokens": 10, "messages": [{"role": "user", "content": "word ".repeat(100)}]});
    let reply = world.post("/v1/chat/completions", &body).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json()["error"]["code"], "context_length_exceeded");
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("50"));
    let body = json!({"model": "small", "max_tokens": 10, "messages": [{"role": "user", "content": "short"}]});
    assert_eq!(world.post("/v1/chat/completions", &body).await.status, 200);
}

#[tokio::test]
async fn request_ids_are_echoed() {
    let world = World::start().await;
    let resp = world
        .client
        .post(world.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("x-request-id", "req-abc-123")
        .json(&json!({"model": "m-mock", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
}

#[tokio::test]
async fn health_and_readiness() {
    let world = World::start().await;
    for path in ["/healthz", "/readyz"] {
        let resp = world.client.get(world.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

/// Arbitrary bytes never crash the gateway or leave a request hanging.
#[tokio::test]
async fn garbage_never_hurts() {
    let world = World::start().await;
    let samples: Vec<Vec<u8>> = vec![
        vec![0xff, 0xfe, 0x00],
        b"{\"model\":\"m-mock\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}".to_vec(),
        b"{\"model\":\"m-mock\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{}]}]}".to_vec(),
        b"{\"model\":\"m-mock\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-1}".to_vec(),
        b"{\"model\":\"m-mock\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":1e400}".to_vec(),
        "{\"a\":".repeat(10_000).into_bytes(),
    ];
    for body in samples {
        for path in [
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/embeddings",
            "/v1/messages/count_tokens",
        ] {
            let resp = world
                .client
                .post(world.url(path))
                .bearer_auth(KEY)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            // A clear answer, never a 5xx or a hang. (count_tokens may ignore fields it does
            // not use and answer 200.)
            let status = resp.status().as_u16();
            assert!(status < 500, "{path}: {status}");
            if path != "/v1/messages/count_tokens" {
                assert!((400..500).contains(&status), "{path}: {status}");
            }
        }
    }
    let resp = world
        .client
        .get(world.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "still serving");
}

#[tokio::test]
async fn a_rate_limited_request_is_429_with_retry_after_and_counted_in_metrics() {
    let gateway = start_yaml(&format!(
        "listen: 127.0.0.1:0\nadmin_key: {KEY}\nproviders:\n  demo: {{ type: mock }}\nmodels:\n  demo: {{ targets: [ {{ provider: demo, model: echo }} ] }}\nrate_limits:\n  - {{ name: once, scope: alias, match: {{ alias: demo }}, requests_per_minute: 1 }}\n"
    ))
    .await;
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(format!("http://{}/v1/chat/completions", gateway.addr))
            .bearer_auth(KEY)
            .json(&json!({"model": "demo", "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "1");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "0");
    assert!(first.headers().contains_key("x-ratelimit-reset-requests"));
    let second = send().await.unwrap();
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`once`") && message.contains("1 requests per minute for alias demo"),
        "{message}"
    );

    let metrics = client
        .get(format!("http://{}/metrics", gateway.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The recorder is per process and other tests add to it: at least this test's refusal.
    let line = metrics
        .lines()
        .find(|l| l.starts_with("switchboard_rate_limited_total{kind=\"requests\"}"))
        .unwrap_or_else(|| panic!("no rate-limited counter in:\n{metrics}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{line}");
    gateway.shutdown().await;
}
