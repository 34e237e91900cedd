//! Unit tests of the mock provider, with paused time so that delays cost nothing.

use super::*;
use crate::Timeouts;
use futures::TryStreamExt;
use switchboard_types::Tool;

fn call(timeouts: Timeouts) -> Upstream<'static> {
    Upstream {
        model: "mock-1",
        timeouts,
        default_max_tokens: 1024,
        request_id: "req-1",
        traceparent: None,
    }
}

fn user(text: &str) -> ChatRequest {
    ChatRequest {
        model: "alias".into(),
        messages: vec![
            Message::new(Role::User, vec![ContentPart::text("first")]),
            Message::new(Role::Assistant, vec![ContentPart::text("ok")]),
            Message::new(Role::User, vec![ContentPart::text(text)]),
        ],
        ..ChatRequest::default()
    }
}

fn weather_tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        description: None,
        parameters: serde_json::json!({"type": "object"}),
        strict: None,
    }
}

#[tokio::test(start_paused = true)]
async fn chat_echoes_after_latency_with_usage() {
    let mock = Mock::new(250, None, 0);
    let start = Instant::now();
    let resp = mock
        .chat(&call(Timeouts::default()), &user("hello world"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert_eq!(resp.choices[0].message.text(), "echo: hello world");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.model, "mock-1");
    assert!(resp.raw.is_none());
    // Input "first" + "ok" + "hello world" = 18 chars -> 5; output 17 chars -> 5.
    let usage = resp.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (5, 5));
}

#[tokio::test(start_paused = true)]
async fn chat_without_user_text_greets() {
    let resp = Mock::new(0, None, 0)
        .chat(&call(Timeouts::default()), &ChatRequest::default())
        .await
        .unwrap();
    assert_eq!(resp.choices[0].message.text(), GREETING);
    assert_eq!(resp.usage.unwrap().input_tokens, 0);
}

#[tokio::test(start_paused = true)]
async fn stream_splits_into_chunks_with_delays_in_canonical_order() {
    let mock = Mock::new(100, Some(4), 50);
    let start = Instant::now();
    let stream = mock
        .chat_stream(&call(Timeouts::default()), &user("abcdefghijkl"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    let events: Vec<ChatEvent> = stream.try_collect().await.unwrap();
    // 4 pieces, 3 gaps of 50 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    assert!(matches!(events[0], ChatEvent::Start { ref id, .. } if id == "chatcmpl-mock-req-1"));
    let text: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text.len(), 4);
    assert_eq!(text.concat(), "echo: abcdefghijkl");
    let n = events.len();
    assert_eq!(
        events[n - 2],
        ChatEvent::Finish {
            choice: 0,
            reason: FinishReason::Stop
        }
    );
    assert!(matches!(events[n - 1], ChatEvent::Usage(u) if u.output_tokens == 5));
}

#[tokio::test(start_paused = true)]
async fn short_reply_gives_no_empty_chunks() {
    let mock = Mock::new(0, Some(100), 0);
    let events: Vec<ChatEvent> = mock
        .chat_stream(&call(Timeouts::default()), &user("x"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let deltas = events
        .iter()
        .filter(|e| matches!(e, ChatEvent::TextDelta { text, .. } if !text.is_empty()))
        .count();
    assert_eq!(deltas, "echo: x".len());
}

#[tokio::test(start_paused = true)]
async fn forced_tool_choice_calls_the_tool() {
    let mock = Mock::new(0, None, 0);
    let mut req = user("weather?");
    req.tools = vec![weather_tool("weather"), weather_tool("time")];
    req.tool_choice = Some(ToolChoice::Tool("time".into()));
    let resp = mock.chat(&call(Timeouts::default()), &req).await.unwrap();
    let calls = &resp.choices[0].message.tool_calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].name.as_str(), calls[0].arguments.as_str()),
        ("time", "{}")
    );
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));

    req.tool_choice = Some(ToolChoice::Required);
    let events: Vec<ChatEvent> = mock
        .chat_stream(&call(Timeouts::default()), &req)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        matches!(&events[1], ChatEvent::ToolCallStart { name, index: 0, .. } if name == "weather")
    );
    assert!(matches!(&events[2], ChatEvent::ToolCallDelta { arguments, .. } if arguments == "{}"));
    assert!(matches!(
        &events[3],
        ChatEvent::Finish {
            reason: FinishReason::ToolCalls,
            ..
        }
    ));

    // Auto leaves the choice to the model: the mock answers in text.
    req.tool_choice = Some(ToolChoice::Auto);
    let resp = mock.chat(&call(Timeouts::default()), &req).await.unwrap();
    assert!(resp.choices[0].message.tool_calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn latency_above_first_byte_times_out() {
    let mock = Mock::new(5_000, None, 0);
    let timeouts = Timeouts {
        first_byte: Duration::from_millis(200),
        ..Timeouts::default()
    };
    let start = Instant::now();
    let err = mock.chat(&call(timeouts), &user("hi")).await.unwrap_err();
    assert_eq!(err, ProviderError::Timeout(TimeoutKind::FirstByte));
    assert_eq!(start.elapsed(), Duration::from_millis(200));
}

#[tokio::test(start_paused = true)]
async fn chunk_delay_above_idle_times_out_mid_stream() {
    let mock = Mock::new(0, Some(4), 1_000);
    let timeouts = Timeouts {
        idle: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let items: Vec<_> = mock
        .chat_stream(&call(timeouts), &user("abcdefgh"))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(matches!(items[0], Ok(ChatEvent::Start { .. })));
    assert!(matches!(items[1], Ok(ChatEvent::TextDelta { .. })));
    assert_eq!(items[2], Err(ProviderError::Timeout(TimeoutKind::Idle)));
    assert_eq!(items.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_deterministic_unit_vectors() {
    let mock = Mock::new(0, None, 0);
    let req = EmbedRequest {
        model: "e".into(),
        input: EmbedInput::Texts(vec!["alpha".into(), "beta".into(), "alpha".into()]),
        dimensions: None,
        encoding_format: None,
        user: None,
        extra: Default::default(),
    };
    let resp = mock.embed(&call(Timeouts::default()), &req).await.unwrap();
    let vectors: Vec<&Vec<f32>> = resp
        .data
        .iter()
        .map(|e| match e {
            Embedding::Float(v) => v,
            Embedding::Base64(_) => panic!("float expected"),
        })
        .collect();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].len(), 8);
    assert_eq!(vectors[0], vectors[2]);
    assert_ne!(vectors[0], vectors[1]);
    let norm: f32 = vectors[1].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    // "alpha" and "beta": 2 + 1 + 2 tokens.
    assert_eq!(resp.usage.input_tokens, 5);

    let again = mock.embed(&call(Timeouts::default()), &req).await.unwrap();
    assert_eq!(again, resp);
    let wide = EmbedRequest {
        dimensions: Some(3),
        ..req
    };
    let resp = mock.embed(&call(Timeouts::default()), &wide).await.unwrap();
    assert!(matches!(&resp.data[0], Embedding::Float(v) if v.len() == 3));
}

#[tokio::test(start_paused = true)]
async fn json_requests_get_json_answers() {
    let mut req = user("great product");
    req.response_format = Some(ResponseFormat::JsonObject);
    let resp = Mock::new(0, None, 0)
        .chat(&call(Timeouts::default()), &req)
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&resp.choices[0].message.text()).unwrap();
    assert_eq!(answer, serde_json::json!({"echo": "echo: great product"}));

    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "sentiment".into(),
        schema: serde_json::json!({
            "type": "object",
            "properties": {
                "sentiment": {"enum": ["positive", "negative", "neutral"]},
                "confidence": {"type": "number", "minimum": 0.5},
                "reason": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "ignored": {"type": "boolean"}
            },
            "required": ["sentiment", "confidence", "reason", "tags"]
        }),
        strict: None,
        description: None,
    });
    let resp = Mock::new(0, None, 0)
        .chat(&call(Timeouts::default()), &req)
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&resp.choices[0].message.text()).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({
            "sentiment": "positive",
            "confidence": 0.5,
            "reason": "echo: great product",
            "tags": ["echo: great product"]
        })
    );
}
