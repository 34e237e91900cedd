//! Tests of the Anthropic request side (parsing client requests, building upstream bodies) and
//! of whole responses and errors. Stream tests live in `tests/stream.rs`.

mod stream;

use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_types::{
    ChatRequest, ChatResponse, Choice, ContentPart, FinishReason, ImageSource, Message, Protocol,
    RawBytes, ResponseFormat, Role, Tool, ToolCall, ToolChoice, Usage,
};

use super::*;
use crate::codec::ResponseMode;
use crate::error::{ClientError, ConvertError, DecodeError, ErrorKind};

const REQUEST_FULL: &str = include_str!("../../tests/fixtures/anthropic/request_full.json");
const REQUEST_DOCUMENT: &str = include_str!("../../tests/fixtures/anthropic/request_document.json");
const RESPONSE_TEXT: &str = include_str!("../../tests/fixtures/anthropic/response_text.json");
const RESPONSE_TOOL_USE: &str =
    include_str!("../../tests/fixtures/anthropic/response_tool_use.json");

fn body_json(req: &ChatRequest) -> (Value, ResponseMode) {
    let up = messages_request_body(req, "claude-target", 4096).unwrap();
    (serde_json::from_slice(&up.body).unwrap(), up.mode)
}

fn canonical(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "alias".into(),
        messages,
        ..ChatRequest::default()
    }
}

fn user(text: &str) -> Message {
    Message::new(Role::User, vec![ContentPart::text(text)])
}

fn tool_msg(id: &str, text: &str) -> Message {
    let mut m = Message::new(Role::Tool, vec![ContentPart::text(text)]);
    m.tool_call_id = Some(id.into());
    m
}

fn assistant_calls(calls: &[(&str, &str)]) -> Message {
    let mut m = Message::new(Role::Assistant, vec![]);
    for (id, args) in calls {
        m.tool_calls.push(ToolCall {
            id: (*id).into(),
            name: "get_weather".into(),
            arguments: (*args).into(),
        });
    }
    m
}

#[test]
fn parses_documented_request_shapes() {
    let req = parse_messages_request(REQUEST_FULL.as_bytes()).unwrap();
    assert_eq!(req.model, "claude-sonnet-4-5");
    assert_eq!(req.max_tokens, Some(2048));
    assert_eq!(req.system.len(), 2);
    assert_eq!(req.messages.len(), 5);

    assert_eq!(
        req.messages[0],
        user("What is the weather in Paris and Berlin?")
    );
    let assistant = &req.messages[1];
    assert_eq!(assistant.role, Role::Assistant);
    assert_eq!(
        assistant.content,
        vec![
            ContentPart::Thinking {
                text: "I should call the tool twice.".into(),
                signature: Some("EqQBCgIYAhIM".into())
            },
            ContentPart::text("Let me check.")
        ]
    );
    assert_eq!(assistant.tool_calls.len(), 2);
    assert_eq!(assistant.tool_calls[0].id, "toolu_01");
    let args: Value = serde_json::from_str(&assistant.tool_calls[0].arguments).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));

    // tool_result blocks become Tool messages, in order, before the rest of the turn.
    assert_eq!(req.messages[2], tool_msg("toolu_01", "18C, sunny"));
    let failed = &req.messages[3];
    assert_eq!(failed.role, Role::Tool);
    assert_eq!(failed.tool_call_id.as_deref(), Some("toolu_02"));
    assert!(failed.is_error);
    let rest = &req.messages[4];
    assert_eq!(rest.role, Role::User);
    assert_eq!(rest.content.len(), 3);
    assert_eq!(
        rest.content[1],
        ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            },
            detail: None
        }
    );
    assert!(matches!(
        &rest.content[2],
        ContentPart::Image { source: ImageSource::Url(u), .. } if u == "https://example.com/sky.jpg"
    ));

    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.tools[0].parameters["required"], json!(["city"]));
    assert_eq!(req.tool_choice, Some(ToolChoice::Required));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.stop, vec!["END".to_owned()]);
    assert_eq!(req.temperature, Some(1.0));
    assert_eq!(req.top_k, Some(40));
    assert!(req.stream);
    assert_eq!(req.user.as_deref(), Some("user-42"));
    assert_eq!(req.thinking_budget, Some(1024));
    assert_eq!(req.extra.get("service_tier"), Some(&json!("auto")));
    assert!(unconvertible(&req).is_none());
    assert_eq!(
        req.raw.as_ref().map(|r| r.protocol),
        Some(Protocol::Anthropic)
    );
}

#[test]
fn max_tokens_is_required_except_for_count_tokens() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let err = parse_messages_request(body).unwrap_err();
    assert!(matches!(err, ConvertError::Invalid { .. }));
    assert_eq!(err.param(), Some("max_tokens"));
    let req = parse_count_tokens_request(body).unwrap();
    assert_eq!(req.max_tokens, None);
}

#[test]
fn errors_name_the_field_path() {
    let cases: [(&str, &str); 5] = [
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"image"}]}]}"#,
            "messages[1].content[0].source",
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"a"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}"#,
            "messages[0].content[0].tool_use_id",
        ),
        (
            r#"{"model":"m","max_tokens":-1,"messages":[]}"#,
            "max_tokens",
        ),
        (r#"{"max_tokens":1,"messages":[]}"#, "model"),
    ];
    for (body, param) in cases {
        let err = parse_messages_request(body.as_bytes()).unwrap_err();
        assert_eq!(err.param(), Some(param), "{body}");
    }
    let err = parse_messages_request(b"not json").unwrap_err();
    assert_eq!(err.param(), None);
}

#[test]
fn fast_path_keeps_the_client_body() {
    let mut req = parse_messages_request(REQUEST_FULL.as_bytes()).unwrap();
    req.stream = false;
    let (body, mode) = body_json(&req);
    assert_eq!(mode, ResponseMode::Plain);
    let mut expected: Value = serde_json::from_str(REQUEST_FULL).unwrap();
    expected["model"] = json!("claude-target");
    expected["stream"] = json!(false);
    assert_eq!(body, expected);
    assert_eq!(
        body["system"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[test]
fn count_tokens_body_gets_max_tokens_on_fast_path() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let req = parse_count_tokens_request(body).unwrap();
    let (body, _) = body_json(&req);
    assert_eq!(body["max_tokens"], json!(4096));
    assert_eq!(body.get("stream"), None);
}

#[test]
fn documents_and_server_tools_only_go_to_anthropic() {
    let req = parse_messages_request(REQUEST_DOCUMENT.as_bytes()).unwrap();
    let err = unconvertible(&req).unwrap();
    assert!(matches!(err, ConvertError::Unsupported { .. }));
    assert_eq!(err.param(), Some("messages[0].content[0]"));
    // The fast path forwards everything, cache_control and the server tool included.
    let (body, _) = body_json(&req);
    assert_eq!(body["messages"][0]["content"][0]["type"], json!("document"));
    assert_eq!(body["tools"][0]["type"], json!("web_search_20250305"));
    // A canonical conversion cannot represent them.
    let mut canonical_only = req.clone();
    canonical_only.raw = None;
    let err = messages_request_body(&canonical_only, "m", 10).unwrap_err();
    assert_eq!(err.param(), Some("messages[0].content[0]"));
}

#[test]
fn canonical_to_wire_merges_tool_results_and_alternates() {
    let mut req = canonical(vec![
        Message::new(Role::System, vec![ContentPart::text("Be brief.")]),
        user("Weather in Paris and Berlin?"),
        assistant_calls(&[("call_1", r#"{"city":"Paris"}"#), ("call_2", "")]),
        tool_msg("call_1", "18C"),
        tool_msg("call_2", "12C"),
        user("Thanks. Which is warmer?"),
        user("Answer in one word."),
    ]);
    req.system = vec![ContentPart::text("You are helpful.")];
    req.max_tokens = Some(100);
    let (body, mode) = body_json(&req);
    assert_eq!(mode, ResponseMode::Plain);
    assert_eq!(body["model"], json!("claude-target"));
    assert_eq!(body["max_tokens"], json!(100));
    assert_eq!(body["stream"], json!(false));
    assert_eq!(
        body["system"],
        json!([{"type":"text","text":"You are helpful."},{"type":"text","text":"Be brief."}])
    );
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        messages[1]["content"],
        json!([
            {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
            {"type":"tool_use","id":"call_2","name":"get_weather","input":{}}
        ])
    );
    assert_eq!(
        messages[2]["content"],
        json!([
            {"type":"tool_result","tool_use_id":"call_1","content":[{"type":"text","text":"18C"}]},
            {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"12C"}]},
            {"type":"text","text":"Thanks. Which is warmer?"},
            {"type":"text","text":"Answer in one word."}
        ])
    );
}

#[test]
fn canonical_images_become_anthropic_sources() {
    let image = |url: &str| ContentPart::Image {
        source: ImageSource::Url(url.into()),
        detail: Some("high".into()),
    };
    let req = canonical(vec![Message::new(
        Role::User,
        vec![
            image("data:image/jpeg;base64,/9j/4AAQ"),
            image("https://example.com/a.png"),
        ],
    )]);
    let (body, _) = body_json(&req);
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQ"}},
            {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}
        ])
    );
    let bad = canonical(vec![Message::new(
        Role::User,
        vec![image("data:text/plain,hi")],
    )]);
    let err = messages_request_body(&bad, "m", 10).unwrap_err();
    assert_eq!(err.param(), Some("messages[0].content[0]"));
}

#[test]
fn unsupported_parameters_name_the_param() {
    type Edit = fn(&mut ChatRequest);
    let cases: [(&str, Edit); 8] = [
        ("n", |r| r.n = Some(2)),
        ("seed", |r| r.seed = Some(7)),
        ("logprobs", |r| r.logprobs = Some(true)),
        ("top_logprobs", |r| r.top_logprobs = Some(3)),
        ("presence_penalty", |r| r.presence_penalty = Some(0.5)),
        ("frequency_penalty", |r| r.frequency_penalty = Some(-1.0)),
        ("temperature", |r| r.temperature = Some(1.5)),
        ("reasoning_effort", |r| {
            r.reasoning_effort = Some("extreme".into())
        }),
    ];
    for (param, edit) in cases {
        let mut req = canonical(vec![user("hi")]);
        edit(&mut req);
        let err = messages_request_body(&req, "m", 10).unwrap_err();
        assert!(matches!(err, ConvertError::Unsupported { .. }), "{param}");
        assert_eq!(err.param(), Some(param));
        assert!(err.to_string().contains("not support") || err.to_string().contains("accepts"));
    }
    // Neutral values that SDKs send by default are accepted.
    let mut req = canonical(vec![user("hi")]);
    req.n = Some(1);
    req.presence_penalty = Some(0.0);
    req.logprobs = Some(false);
    assert!(messages_request_body(&req, "m", 10).is_ok());
}

#[test]
fn invalid_tool_arguments_name_the_message() {
    let req = canonical(vec![user("hi"), assistant_calls(&[("c", "{not json")])]);
    let err = messages_request_body(&req, "m", 10).unwrap_err();
    assert!(matches!(err, ConvertError::Invalid { .. }));
    assert_eq!(err.param(), Some("messages[1].tool_calls[0].arguments"));
}

#[test]
fn json_response_format_uses_a_forced_tool() {
    let mut req = canonical(vec![user("Give me a city.")]);
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "city info".into(),
        schema: json!({"properties": {"name": {"type": "string"}}}),
        strict: Some(true),
        description: None,
    });
    let (body, mode) = body_json(&req);
    assert_eq!(
        mode,
        ResponseMode::JsonViaTool {
            tool_name: "city_info".into()
        }
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "city_info"})
    );
    assert_eq!(body["tools"][0]["input_schema"]["type"], json!("object"));

    req.response_format = Some(ResponseFormat::JsonObject);
    let (body, mode) = body_json(&req);
    assert_eq!(
        mode,
        ResponseMode::JsonViaTool {
            tool_name: "json_response".into()
        }
    );
    assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));

    req.tools.push(Tool {
        name: "t".into(),
        description: None,
        parameters: json!({"type": "object"}),
        strict: None,
    });
    let err = messages_request_body(&req, "m", 10).unwrap_err();
    assert_eq!(err.param(), Some("response_format"));
}

#[test]
fn tool_choice_parallel_and_sampling_map_across() {
    let mut req = canonical(vec![user("hi")]);
    req.tools.push(Tool {
        name: "t".into(),
        description: Some("d".into()),
        parameters: json!({"type": "object"}),
        strict: None,
    });
    req.parallel_tool_calls = Some(false);
    req.stop = vec!["x".into()];
    req.user = Some("u1".into());
    req.top_p = Some(0.9);
    req.stream = true;
    let (body, _) = body_json(&req);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(body["stop_sequences"], json!(["x"]));
    assert_eq!(body["metadata"], json!({"user_id": "u1"}));
    assert_eq!(body["top_p"], json!(0.9));
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["max_tokens"], json!(4096));

    for (choice, expected) in [
        (
            ToolChoice::Required,
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        (
            ToolChoice::Tool("t".into()),
            json!({"type": "tool", "name": "t", "disable_parallel_tool_use": true}),
        ),
        (ToolChoice::None, json!({"type": "none"})),
    ] {
        req.tool_choice = Some(choice);
        assert_eq!(body_json(&req).0["tool_choice"], expected);
    }
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget() {
    let mut req = canonical(vec![user("hi")]);
    req.reasoning_effort = Some("medium".into());
    let (body, _) = body_json(&req);
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    // The default leaves room for the answer beyond the budget.
    assert_eq!(body["max_tokens"], json!(8192));

    req.max_tokens = Some(1000);
    let err = messages_request_body(&req, "m", 10).unwrap_err();
    assert_eq!(err.param(), Some("max_tokens"));
}

#[test]
fn parses_text_response_with_cache_usage() {
    let resp = parse_messages_response(Bytes::from(RESPONSE_TEXT), &ResponseMode::Plain).unwrap();
    assert_eq!(resp.id, "msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(resp.created, 0);
    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(choice.message.text(), "Hello! How can I help?");
    assert!(matches!(
        choice.message.content[0],
        ContentPart::Thinking { .. }
    ));
    assert_eq!(choice.message.content.len(), 2);
    let usage = resp.usage.unwrap();
    assert_eq!(usage.input_tokens, 2112);
    assert_eq!(usage.cached_input_tokens, 2000);
    assert_eq!(usage.cache_write_tokens, 100);
    assert_eq!(usage.uncached_input_tokens(), 12);
    assert_eq!(usage.output_tokens, 9);
    // Same protocol back to an Anthropic client: the upstream bytes as they were.
    assert_eq!(render_messages_response(&resp), RESPONSE_TEXT.as_bytes());
}

#[test]
fn parses_tool_use_response() {
    let resp =
        parse_messages_response(Bytes::from(RESPONSE_TOOL_USE), &ResponseMode::Plain).unwrap();
    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let call = &choice.message.tool_calls[0];
    assert_eq!(call.name, "get_weather");
    let args: Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(args, json!({"city": "Paris", "unit": "celsius"}));
    assert_eq!(resp.usage.unwrap().input_tokens, 472);
}

#[test]
fn json_via_tool_response_becomes_text() {
    let body = r#"{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[
        {"type":"tool_use","id":"toolu_1","name":"json_response","input":{"a":1}}],
        "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":2}}"#;
    let mode = ResponseMode::JsonViaTool {
        tool_name: "json_response".into(),
    };
    let resp = parse_messages_response(Bytes::from(body), &mode).unwrap();
    let choice = &resp.choices[0];
    assert_eq!(choice.message.text(), r#"{"a":1}"#);
    assert!(choice.message.tool_calls.is_empty());
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.raw, None);
}

#[test]
fn error_body_with_200_is_an_upstream_error() {
    let body = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let err = parse_messages_response(Bytes::from(body), &ResponseMode::Plain).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Upstream {
            kind: "overloaded_error".into(),
            message: "Overloaded".into(),
            retryable: true
        }
    );
    let err = parse_messages_response(Bytes::from("{]"), &ResponseMode::Plain).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(_)));
}

#[test]
fn renders_canonical_response_for_anthropic_clients() {
    let mut message = Message::new(
        Role::Assistant,
        vec![
            ContentPart::text("Checking."),
            ContentPart::Thinking {
                text: "hmm".into(),
                signature: None,
            },
        ],
    );
    message.tool_calls.push(ToolCall {
        id: "call_9".into(),
        name: "get_weather".into(),
        arguments: r#"{"city":"Rome"}"#.into(),
    });
    message.tool_calls.push(ToolCall {
        id: "call_10".into(),
        name: "get_weather".into(),
        arguments: r#"{"city":"Ro"#.into(),
    });
    let resp = ChatResponse {
        id: "chatcmpl-abc".into(),
        model: "gpt-4o".into(),
        created: 1,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: Some(FinishReason::StopSequence(Some("END".into()))),
            logprobs: None,
        }],
        usage: Some(Usage {
            input_tokens: 100,
            output_tokens: 20,
            cached_input_tokens: 60,
            cache_write_tokens: 0,
            reasoning_tokens: 5,
        }),
        system_fingerprint: None,
        raw: Some(RawBytes {
            protocol: Protocol::OpenAi,
            body: Bytes::from_static(b"{}"),
        }),
    };
    let body: Value = serde_json::from_slice(&render_messages_response(&resp)).unwrap();
    assert_eq!(body["id"], json!("msg_chatcmpl-abc"));
    assert_eq!(body["type"], json!("message"));
    assert_eq!(body["stop_reason"], json!("stop_sequence"));
    assert_eq!(body["stop_sequence"], json!("END"));
    let types: Vec<&str> = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["thinking", "text", "tool_use", "tool_use"]);
    assert_eq!(body["content"][2]["input"], json!({"city": "Rome"}));
    // Arguments that are not a JSON object render as `{}`.
    assert_eq!(body["content"][3]["input"], json!({}));
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 40, "output_tokens": 20, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0})
    );
    // And it reads back to the same usage.
    let back =
        parse_messages_response(Bytes::from(body.to_string()), &ResponseMode::Plain).unwrap();
    assert_eq!(back.usage.unwrap().input_tokens, 100);
    assert_eq!(
        back.choices[0].finish_reason,
        Some(FinishReason::StopSequence(Some("END".into())))
    );
}

#[test]
fn renders_errors_in_anthropic_shape() {
    let cases = [
        (ErrorKind::InvalidRequest, "invalid_request_error"),
        (ErrorKind::Authentication, "authentication_error"),
        (ErrorKind::Permission, "permission_error"),
        (ErrorKind::NotFound, "not_found_error"),
        (ErrorKind::RequestTooLarge, "request_too_large"),
        (ErrorKind::RateLimit, "rate_limit_error"),
        (ErrorKind::Upstream, "api_error"),
        (ErrorKind::Internal, "api_error"),
        (ErrorKind::Overloaded, "overloaded_error"),
        (ErrorKind::Timeout, "timeout_error"),
    ];
    for (kind, expected) in cases {
        let err = ClientError {
            status: 400,
            kind,
            code: "x",
            message: "what to do".into(),
            param: None,
        };
        let body: Value = serde_json::from_slice(&render_error(&err)).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": expected, "message": "what to do"}})
        );
    }
}

#[test]
fn upstream_error_message_and_count_tokens() {
    let long = "x".repeat(500);
    let body =
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": long}});
    let message = upstream_error_message(body.to_string().as_bytes()).unwrap();
    assert_eq!(message.chars().count(), 300);
    assert_eq!(upstream_error_message(b"<html>"), None);
    assert_eq!(render_count_tokens(42), br#"{"input_tokens":42}"#.to_vec());
}

#[test]
fn passthrough_decodes_usage_and_keeps_the_body_without_the_content() {
    for fixture in [RESPONSE_TEXT, RESPONSE_TOOL_USE] {
        let full = parse_messages_response(Bytes::from(fixture), &ResponseMode::Plain).unwrap();
        let light = parse_messages_response_passthrough(Bytes::from(fixture)).unwrap();
        assert_eq!(light.usage, full.usage);
        assert_eq!(light.id, full.id);
        assert!(light.choices.is_empty());
        assert_eq!(render_messages_response(&light), fixture.as_bytes());
    }
    let error = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let err = parse_messages_response_passthrough(Bytes::from_static(error)).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Upstream {
                retryable: true,
                ..
            }
        ),
        "{err:?}"
    );
}
