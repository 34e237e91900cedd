//! Unit tests of the gemini mock's wire rendering.
use serde_json::json;

use super::*;
use crate::wire::{split_text, Ending};
use crate::MockToolCall;

fn ctx() -> Ctx {
    Ctx {
        kind: MockKind::Gemini,
        model: "gemini-2.0-flash".into(),
        seq: 0,
        include_usage: false,
        sse: true,
        body: json!({}),
    }
}

#[test]
fn usage_metadata_splits_thoughts() {
    let answer = Answer {
        text: Some("x".into()),
        calls: vec![],
        usage: MockUsage {
            input: 20,
            output: 9,
            cached: 5,
            reasoning: 4,
        },
    };
    let body = chat_json(&ctx(), &answer);
    let u = &body["usageMetadata"];
    assert_eq!(u["promptTokenCount"], 20);
    assert_eq!(u["cachedContentTokenCount"], 5);
    assert_eq!(u["candidatesTokenCount"], 5);
    assert_eq!(u["thoughtsTokenCount"], 4);
    assert_eq!(u["totalTokenCount"], 29);
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");
}

#[test]
fn stream_ends_with_stop_and_whole_function_calls() {
    let answer = Answer {
        text: Some("abc".into()),
        calls: vec![MockToolCall {
            id: "c1".into(),
            name: "f".into(),
            arguments: r#"{"q":"a"}"#.into(),
        }],
        usage: MockUsage {
            input: 3,
            output: 4,
            cached: 0,
            reasoning: 0,
        },
    };
    let plan = StreamPlan {
        pieces: split_text("abc", 3),
        answer,
        ending: Ending::Done,
        unknown_event: false,
    };
    let chunks: Vec<Value> = stream_events(&ctx(), &plan)
        .into_iter()
        .filter_map(|e| match e {
            Ev::Json { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"q": "a"})
    );
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["candidates"][0].get("finishReason").is_none()));
}

#[test]
fn errors_carry_rpc_status() {
    assert_eq!(
        error_reply(429, "m").body,
        json!({"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED"}})
    );
}

#[test]
fn echo_reads_last_user_turn() {
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "a"}]}, {"role": "model", "parts": [{"text": "b"}]}, {"parts": [{"text": "c"}, {"text": "d"}]}]});
    assert_eq!(echo_text(&body), "cd");
}
