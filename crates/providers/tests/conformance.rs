//! Provider conformance: every remote provider runs the same checks against a wire-faithful mock
//! of its API served over real HTTP on a loopback port (`switchboard-testkit`). One line per
//! provider at the bottom; the checks are plain async functions above, so that a failure points
//! at readable code rather than inside a macro.
//!
//! Timing checks use short real durations (a 200 ms limit against a 5 s delay) and never sleep.

// The checks are plain functions called from the generated `#[tokio::test]`s, which clippy's
// allow-in-tests settings do not see as tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_providers::{
    build, ChatEventStream, Provider, ProviderError, ProviderSettings, TimeoutKind, Timeouts,
    Upstream,
};
use switchboard_testkit::{MockKind, MockProvider, MockToolCall, MockUsage, Reply};
use switchboard_types::{
    ChatEvent, ChatRequest, ContentPart, EmbedInput, EmbedRequest, Embedding, FinishReason,
    Message, Role, Tool, ToolChoice, Usage,
};

const SECRET: &str = "sk-test-SECRET-7f3a9";
const REQUEST_ID: &str = "req-conformance-1";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

type Settings = fn(String) -> ProviderSettings;

/// Starts the mock and builds the provider against it.
async fn setup(kind: MockKind, settings: Settings) -> (MockProvider, Arc<dyn Provider>) {
    let mock = MockProvider::start(kind).await;
    let provider = build("conformance", &settings(mock.base_url())).expect("valid settings");
    (mock, provider)
}

fn model(kind: MockKind) -> &'static str {
    match kind {
        MockKind::OpenAi => "gpt-4o-mini",
        MockKind::AzureOpenAi => "my-deployment",
        MockKind::Anthropic => "claude-3-5-haiku-latest",
        MockKind::Gemini => "gemini-2.0-flash",
    }
}

fn call(kind: MockKind, timeouts: Timeouts) -> Upstream<'static> {
    Upstream {
        model: model(kind),
        timeouts,
        default_max_tokens: 1024,
        request_id: REQUEST_ID,
        traceparent: Some(TRACEPARENT),
    }
}

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(10),
        total: Duration::from_secs(20),
        idle: Duration::from_secs(10),
    }
}

fn chat_request(text: &str, stream: bool) -> ChatRequest {
    ChatRequest {
        model: "alias".into(),
        messages: vec![Message::new(Role::User, vec![ContentPart::text(text)])],
        stream,
        ..ChatRequest::default()
    }
}

fn tool(name: &str) -> Tool {
    Tool {
        name: name.into(),
        description: Some(format!("the {name} tool")),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        strict: None,
    }
}

fn tool_request(stream: bool) -> ChatRequest {
    ChatRequest {
        tools: vec![tool("get_weather"), tool("get_time")],
        tool_choice: Some(ToolChoice::Auto),
        ..chat_request("weather and time in Paris?", stream)
    }
}

fn scripted_calls() -> Vec<MockToolCall> {
    vec![
        MockToolCall {
            id: "call_a1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris","unit":"celsius"}"#.into(),
        },
        MockToolCall {
            id: "call_b2".into(),
            name: "get_time".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        },
    ]
}

fn usage(input: u64, output: u64) -> MockUsage {
    MockUsage {
        input,
        output,
        ..MockUsage::default()
    }
}

/// Gemini has no call ids on the wire: its decoder makes them up, so only their presence and
/// distinctness can be checked.
fn check_ids(kind: MockKind, ids: &[String]) {
    if kind == MockKind::Gemini {
        assert!(ids.iter().all(|id| !id.is_empty()), "{ids:?}");
        assert_ne!(ids[0], ids[1]);
    } else {
        assert_eq!(ids, ["call_a1", "call_b2"]);
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("arguments {text:?}: {e}"))
}

async fn collect(stream: ChatEventStream) -> Vec<Result<ChatEvent, ProviderError>> {
    stream.collect().await
}

fn merged_usage(events: &[ChatEvent]) -> Option<Usage> {
    let mut out: Option<Usage> = None;
    for event in events {
        if let ChatEvent::Usage(u) = event {
            out.get_or_insert_with(Usage::default).merge(u);
        }
    }
    out
}

fn text_of(events: &[ChatEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn finishes(events: &[ChatEvent]) -> Vec<FinishReason> {
    events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Finish { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

// ---- the checks ------------------------------------------------------------------------------

async fn plain_text(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::Text {
        text: "Bonjour!".into(),
        usage: usage(12, 3),
    });
    let resp = provider
        .chat(&call(kind, quick()), &chat_request("hi", false))
        .await
        .unwrap();
    assert_eq!(resp.choices.len(), 1);
    assert_eq!(resp.choices[0].message.text(), "Bonjour!");
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    let u = resp.usage.expect("usage present");
    assert_eq!((u.input_tokens, u.output_tokens), (12, 3));
}

async fn request_shape(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    provider
        .chat(&call(kind, quick()), &chat_request("hi", false))
        .await
        .unwrap();
    let requests = mock.requests();
    let req = &requests[0];
    assert_eq!(req.method, "POST");
    let m = model(kind);
    let (path, auth, value) = match kind {
        MockKind::OpenAi => (
            "/v1/chat/completions".to_owned(),
            "authorization",
            format!("Bearer {SECRET}"),
        ),
        MockKind::AzureOpenAi => (
            format!("/openai/deployments/{m}/chat/completions"),
            "api-key",
            SECRET.to_owned(),
        ),
        MockKind::Anthropic => ("/v1/messages".to_owned(), "x-api-key", SECRET.to_owned()),
        MockKind::Gemini => (
            format!("/v1beta/models/{m}:generateContent"),
            "x-goog-api-key",
            SECRET.to_owned(),
        ),
    };
    assert_eq!(req.path, path);
    assert_eq!(req.header(auth), Some(value.as_str()));
    assert_eq!(req.header("x-request-id"), Some(REQUEST_ID));
    assert_eq!(req.header("traceparent"), Some(TRACEPARENT));
    assert!(req
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    match kind {
        MockKind::OpenAi => assert_eq!(req.header("openai-organization"), Some("org-conf")),
        MockKind::AzureOpenAi => {
            assert_eq!(req.query.as_deref(), Some("api-version=2024-10-21"))
        }
        MockKind::Anthropic => {
            assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(req.body["max_tokens"], 1024);
        }
        // The key travels in a header, never in the URL.
        MockKind::Gemini => assert!(req.query.is_none()),
    }
}

async fn streamed_text(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::Text {
        text: "one two three four".into(),
        usage: usage(12, 4),
    });
    let stream = provider
        .chat_stream(&call(kind, quick()), &chat_request("hi", true))
        .await
        .unwrap();
    let events: Vec<ChatEvent> = stream.try_collect().await.unwrap();
    assert!(matches!(events[0], ChatEvent::Start { .. }), "{events:?}");
    assert_eq!(text_of(&events), "one two three four");
    assert_eq!(finishes(&events), [FinishReason::Stop]);
    let u = merged_usage(&events).expect("usage present");
    assert_eq!((u.input_tokens, u.output_tokens), (12, 4));
    // OpenAI kinds must be asked for the usage chunk.
    if matches!(kind, MockKind::OpenAi | MockKind::AzureOpenAi) {
        assert_eq!(
            mock.requests()[0].body["stream_options"]["include_usage"],
            true
        );
    }
}

async fn tool_call(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::ToolCalls {
        text: None,
        calls: scripted_calls(),
        usage: usage(30, 20),
    });
    let resp = provider
        .chat(&call(kind, quick()), &tool_request(false))
        .await
        .unwrap();
    let calls = &resp.choices[0].message.tool_calls;
    assert_eq!(calls.len(), 2);
    let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
    check_ids(kind, &ids);
    assert_eq!(calls[0].name, "get_weather");
    assert_eq!(calls[1].name, "get_time");
    assert_eq!(
        json_of(&calls[0].arguments),
        json!({"city": "Paris", "unit": "celsius"})
    );
    assert_eq!(json_of(&calls[1].arguments), json!({"city": "Paris"}));
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    assert!(resp.usage.is_some());
}

async fn streamed_tool_calls(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::ToolCalls {
        text: Some("Let me check.".into()),
        calls: scripted_calls(),
        usage: usage(30, 20),
    });
    let stream = provider
        .chat_stream(&call(kind, quick()), &tool_request(true))
        .await
        .unwrap();
    let events: Vec<ChatEvent> = stream.try_collect().await.unwrap();
    // Assemble by index, checking that each start precedes its deltas.
    let mut calls: BTreeMap<u32, (String, String, String)> = BTreeMap::new();
    for event in &events {
        match event {
            ChatEvent::ToolCallStart {
                index, id, name, ..
            } => {
                assert!(calls
                    .insert(*index, (id.clone(), name.clone(), String::new()))
                    .is_none());
            }
            ChatEvent::ToolCallDelta {
                index, arguments, ..
            } => {
                let call = calls.get_mut(index).expect("start before delta");
                call.2.push_str(arguments);
            }
            _ => {}
        }
    }
    assert_eq!(calls.keys().copied().collect::<Vec<_>>(), [0, 1]);
    let ids: Vec<String> = calls.values().map(|c| c.0.clone()).collect();
    check_ids(kind, &ids);
    assert_eq!(calls[&0].1, "get_weather");
    assert_eq!(calls[&1].1, "get_time");
    assert_eq!(
        json_of(&calls[&0].2),
        json!({"city": "Paris", "unit": "celsius"})
    );
    assert_eq!(json_of(&calls[&1].2), json!({"city": "Paris"}));
    assert_eq!(text_of(&events), "Let me check.");
    assert_eq!(finishes(&events), [FinishReason::ToolCalls]);
    assert!(merged_usage(&events).is_some());
}

async fn rate_limited(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::Error {
        status: 429,
        retry_after_secs: Some(7),
    });
    let err = provider
        .chat(&call(kind, quick()), &chat_request("hi", false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Status { status: 429, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(!err.to_string().contains(SECRET));

    // The same on the streaming path, before any event.
    mock.enqueue(Reply::Error {
        status: 429,
        retry_after_secs: Some(2),
    });
    let err = provider
        .chat_stream(&call(kind, quick()), &chat_request("hi", true))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
}

async fn bad_request(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::Error {
        status: 400,
        retry_after_secs: None,
    });
    let err = provider
        .chat(&call(kind, quick()), &chat_request("hi", false))
        .await
        .unwrap_err();
    let ProviderError::Status {
        status, message, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 400);
    assert!(!message.is_empty());
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains(SECRET));
    assert!(!format!("{provider:?}").contains(SECRET));
}

async fn unknown_event(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::WithUnknownEvent);
    let stream = provider
        .chat_stream(&call(kind, quick()), &chat_request("hello", true))
        .await
        .unwrap();
    let events: Vec<ChatEvent> = stream.try_collect().await.unwrap();
    assert!(!text_of(&events).is_empty());
    assert_eq!(finishes(&events).len(), 1);
}

async fn mid_stream_error(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::StreamThenError { chunks: 2 });
    let stream = provider
        .chat_stream(&call(kind, quick()), &chat_request("hello", true))
        .await
        .unwrap();
    let items = collect(stream).await;
    let (last, before) = items.split_last().unwrap();
    let err = last.as_ref().unwrap_err();
    assert!(!err.to_string().contains(SECRET));
    let events: Vec<ChatEvent> = before.iter().map(|i| i.clone().unwrap()).collect();
    assert!(!text_of(&events).is_empty());
    assert!(finishes(&events).is_empty());
}

async fn truncated_stream(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::StreamThenDrop { chunks: 2 });
    let stream = provider
        .chat_stream(&call(kind, quick()), &chat_request("hello", true))
        .await
        .unwrap();
    let items = collect(stream).await;
    let last = items.last().unwrap();
    assert!(matches!(last, Err(ProviderError::Closed(_))), "{items:?}");
    assert!(last.as_ref().unwrap_err().is_retryable());
}

async fn dropped_stream_cancels(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::SlowStream {
        chunks: 50,
        interval: Duration::from_millis(20),
    });
    let mut stream = provider
        .chat_stream(&call(kind, quick()), &chat_request("hello", true))
        .await
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    assert!(mock.wait_for_cancelled(1, Duration::from_secs(5)).await);
}

async fn first_byte_timeout(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::Delay {
        before: Duration::from_secs(5),
        then: Box::new(Reply::Echo),
    });
    let timeouts = Timeouts {
        first_byte: Duration::from_millis(200),
        ..quick()
    };
    let start = Instant::now();
    let err = provider
        .chat(&call(kind, timeouts), &chat_request("hi", false))
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::Timeout(TimeoutKind::FirstByte));
    assert!(err.is_retryable());
    assert!(start.elapsed() < Duration::from_secs(3));
}

async fn idle_timeout(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::SlowStream {
        chunks: 3,
        interval: Duration::from_secs(5),
    });
    let timeouts = Timeouts {
        idle: Duration::from_millis(200),
        ..quick()
    };
    let start = Instant::now();
    let stream = provider
        .chat_stream(&call(kind, timeouts), &chat_request("hi", true))
        .await
        .unwrap();
    let items = collect(stream).await;
    assert_eq!(
        items.last().unwrap().as_ref().unwrap_err(),
        &ProviderError::Timeout(TimeoutKind::Idle)
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

async fn stream_total_timeout(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::SlowStream {
        chunks: 100,
        interval: Duration::from_millis(50),
    });
    // Chunks come well within the idle limit, but the whole stream may not outlast `total`.
    let timeouts = Timeouts {
        total: Duration::from_millis(400),
        ..quick()
    };
    let stream = provider
        .chat_stream(&call(kind, timeouts), &chat_request("hi", true))
        .await
        .unwrap();
    let items = collect(stream).await;
    assert!(items.len() > 2, "{items:?}");
    assert_eq!(
        items.last().unwrap().as_ref().unwrap_err(),
        &ProviderError::Timeout(TimeoutKind::Total)
    );
}

async fn embeddings(kind: MockKind, settings: Settings) {
    let (mock, provider) = setup(kind, settings).await;
    mock.enqueue(Reply::Embedding { dims: 4 });
    let req = EmbedRequest {
        model: "alias".into(),
        input: EmbedInput::Texts(vec!["alpha".into(), "beta".into()]),
        dimensions: None,
        encoding_format: None,
        user: None,
        extra: Default::default(),
    };
    let result = provider.embed(&call(kind, quick()), &req).await;
    if kind == MockKind::Anthropic {
        let err = result.unwrap_err();
        assert!(matches!(err, ProviderError::Unsupported { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(mock.request_count(), 0);
        return;
    }
    let resp = result.unwrap();
    assert_eq!(resp.data.len(), 2);
    for e in &resp.data {
        assert!(matches!(e, Embedding::Float(v) if v.len() == 4), "{e:?}");
    }
    let path = &mock.requests()[0].path;
    assert!(
        path.ends_with("/embeddings") || path.ends_with(":batchEmbedContents"),
        "{path}"
    );
}

/// A refused connection is a retryable connect error whose text holds no secret.
#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    // Bind a port, then free it: nothing listens there any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = ProviderSettings::Anthropic {
        base_url: Some(format!("http://{addr}")),
        api_key: SECRET.into(),
        version: None,
    };
    let provider = build("refused", &settings).unwrap();
    let err = provider
        .chat(
            &call(MockKind::Anthropic, quick()),
            &chat_request("hi", false),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains(SECRET));
}

// ---- one line per provider -------------------------------------------------------------------

/// Expands the checks above into a module of tests for one provider.
macro_rules! conformance {
    ($name:ident, $kind:expr, $settings:expr) => {
        mod $name {
            use super::*;
            const KIND: MockKind = $kind;
            const SETTINGS: Settings = $settings;
            conformance!(@tests plain_text, request_shape, streamed_text, tool_call,
                streamed_tool_calls, rate_limited, bad_request, unknown_event, mid_stream_error,
                truncated_stream, dropped_stream_cancels, first_byte_timeout, idle_timeout,
                stream_total_timeout, embeddings);
        }
    };
    (@tests $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                super::$check(KIND, SETTINGS).await;
            }
        )*
    };
}

conformance!(openai, MockKind::OpenAi, |base_url| {
    ProviderSettings::Openai {
        base_url: Some(base_url),
        api_key: Some(SECRET.into()),
        organization: Some("org-conf".into()),
        headers: BTreeMap::new(),
    }
});
conformance!(azure, MockKind::AzureOpenAi, |base_url| {
    ProviderSettings::AzureOpenai {
        base_url,
        api_key: SECRET.into(),
        api_version: None,
        region: None,
    }
});
conformance!(anthropic, MockKind::Anthropic, |base_url| {
    ProviderSettings::Anthropic {
        base_url: Some(base_url),
        api_key: SECRET.into(),
        version: None,
    }
});
conformance!(gemini, MockKind::Gemini, |base_url| {
    ProviderSettings::Gemini {
        base_url: Some(base_url),
        api_key: SECRET.into(),
    }
});
