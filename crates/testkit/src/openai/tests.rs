//! Unit tests of the openai mock's wire rendering.
use serde_json::json;

use super::*;
use crate::wire::{split_text, Ending};
use crate::MockToolCall;

fn ctx(kind: MockKind, include_usage: bool) -> Ctx {
    Ctx {
        kind,
        model: "gpt-4o".into(),
        seq: 3,
        include_usage,
        sse: true,
        body: json!({}),
    }
}

fn jsons(evs: &[Ev]) -> Vec<Value> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Json { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn echo_reads_string_and_parts() {
    let body = json!({"messages": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}
    ]});
    assert_eq!(crate::wire::last_user_text(&body), "hi there");
    assert_eq!(
        crate::wire::last_user_text(&json!({"messages": [{"role": "user", "content": "s"}]})),
        "s"
    );
}

#[test]
fn tool_call_fragments_interleave_and_rebuild() {
    let calls = vec![
        MockToolCall {
            id: "call_a".into(),
            name: "f".into(),
            arguments: r#"{"a":1,"b":2}"#.into(),
        },
        MockToolCall {
            id: "call_b".into(),
            name: "g".into(),
            arguments: r#"{"c":"xyz"}"#.into(),
        },
    ];
    let plan = StreamPlan {
        answer: Answer {
            text: None,
            calls,
            usage: MockUsage::default(),
        },
        pieces: vec![],
        ending: Ending::Done,
        unknown_event: false,
    };
    let chunks = jsons(&stream_events(&ctx(MockKind::OpenAi, false), &plan));
    let mut order = Vec::new();
    let mut args = [String::new(), String::new()];
    for c in &chunks {
        if let Some(tc) = c.pointer("/choices/0/delta/tool_calls/0") {
            let i = tc["index"].as_u64().unwrap() as usize;
            order.push(i);
            args[i].push_str(tc["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(args[0], r#"{"a":1,"b":2}"#);
    assert_eq!(args[1], r#"{"c":"xyz"}"#);
    // Interleaved: call 1 appears before call 0 is complete.
    let first_b = order.iter().position(|&i| i == 1).unwrap();
    let last_a = order.iter().rposition(|&i| i == 0).unwrap();
    assert!(first_b < last_a, "{order:?}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn usage_chunk_only_when_asked_and_azure_annotations() {
    let plan = StreamPlan {
        answer: Answer {
            text: Some("hello".into()),
            calls: vec![],
            usage: MockUsage {
                input: 7,
                output: 3,
                cached: 2,
                reasoning: 1,
            },
        },
        pieces: split_text("hello", 3),
        ending: Ending::Done,
        unknown_event: false,
    };
    let without = jsons(&stream_events(&ctx(MockKind::OpenAi, false), &plan));
    assert!(without.iter().all(|c| c.get("usage").is_none()));
    let with = jsons(&stream_events(&ctx(MockKind::OpenAi, true), &plan));
    let last = with.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 7);
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(
        last["usage"]["completion_tokens_details"]["reasoning_tokens"],
        1
    );

    let azure = jsons(&stream_events(&ctx(MockKind::AzureOpenAi, false), &plan));
    assert_eq!(azure[0]["choices"], json!([]));
    assert!(azure[0]["prompt_filter_results"].is_array());
    assert!(azure[2]["choices"][0]["content_filter_results"]["hate"].is_object());
}

#[test]
fn azure_errors_use_gateway_shape_for_429() {
    let e = error_reply(MockKind::AzureOpenAi, 429, "slow down");
    assert_eq!(
        e.body,
        json!({"error": {"code": "429", "message": "slow down"}})
    );
    let e = error_reply(MockKind::OpenAi, 429, "slow down");
    assert_eq!(e.body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(e.body["error"]["param"], Value::Null);
}

#[test]
fn embeddings_float_and_base64() {
    let mut c = ctx(MockKind::OpenAi, false);
    c.body = json!({"input": ["a", "b"]});
    let out = embed_json(&c, 4);
    assert_eq!(out["object"], "list");
    assert_eq!(out["data"][1]["index"], 1);
    assert_eq!(out["data"][0]["embedding"].as_array().unwrap().len(), 4);
    c.body = json!({"input": "a", "encoding_format": "base64"});
    let out = embed_json(&c, 4);
    let b64 = out["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(bytes.len(), 16);
}
