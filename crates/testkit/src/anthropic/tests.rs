//! Unit tests of the anthropic mock's wire rendering.
use serde_json::json;

use super::*;
use crate::wire::{split_text, Ending};
use crate::MockToolCall;

fn ctx() -> Ctx {
    Ctx {
        kind: MockKind::Anthropic,
        model: "claude".into(),
        seq: 0,
        include_usage: false,
        sse: true,
        body: json!({}),
    }
}

#[test]
fn usage_input_excludes_cache_reads() {
    let answer = Answer {
        text: Some("hi".into()),
        calls: vec![],
        usage: MockUsage {
            input: 100,
            output: 9,
            cached: 60,
            reasoning: 0,
        },
    };
    let body = chat_json(&ctx(), &answer);
    assert_eq!(body["usage"]["input_tokens"], 40);
    assert_eq!(body["usage"]["cache_read_input_tokens"], 60);
    assert_eq!(body["stop_reason"], "end_turn");
}

#[test]
fn stream_event_order_with_tools() {
    let answer = Answer {
        text: Some("ok".into()),
        calls: vec![MockToolCall {
            id: "toolu_1".into(),
            name: "f".into(),
            arguments: r#"{"x":1}"#.into(),
        }],
        usage: MockUsage {
            input: 5,
            output: 7,
            cached: 0,
            reasoning: 0,
        },
    };
    let plan = StreamPlan {
        pieces: split_text("ok", 3),
        answer,
        ending: Ending::Done,
        unknown_event: false,
    };
    let names: Vec<&str> = stream_events(&ctx(), &plan)
        .iter()
        .filter_map(|e| match e {
            Ev::Json { event, .. } => *event,
            _ => None,
        })
        .collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert!(names.contains(&"content_block_stop"));
    let evs = stream_events(&ctx(), &plan);
    let partial: String = evs
        .iter()
        .filter_map(|e| match e {
            Ev::Json { data, .. } if data["delta"]["type"] == "input_json_delta" => {
                data["delta"]["partial_json"].as_str().map(str::to_owned)
            }
            _ => None,
        })
        .collect();
    assert_eq!(partial, r#"{"x":1}"#);
}

#[test]
fn error_types_per_status() {
    assert_eq!(
        error_reply(429, "m").body["error"]["type"],
        "rate_limit_error"
    );
    assert_eq!(
        error_reply(529, "m").body["error"]["type"],
        "overloaded_error"
    );
    assert_eq!(error_reply(500, "m").body["type"], "error");
}
