//! Tests of the OpenAI response, embeddings and error conversions, against fixtures written from
//! the OpenAI API reference (and DeepSeek's for `reasoning_content`).

use super::*;
use crate::codec::ResponseMode;
use crate::error::{ClientError, DecodeError, ErrorKind};
use bytes::Bytes;
use serde_json::{json, Value};
use switchboard_types::{
    ChatResponse, Choice, ContentPart, Embedding, FinishReason, Message, Protocol, RawBytes, Role,
    ToolCall, Usage,
};

const RESPONSE_TEXT: &str = include_str!("../../tests/fixtures/openai/response_text.json");
const RESPONSE_TOOLS: &str = include_str!("../../tests/fixtures/openai/response_tool_calls.json");
const RESPONSE_REASONING: &str =
    include_str!("../../tests/fixtures/openai/response_reasoning.json");
const RESPONSE_ERROR: &str = include_str!("../../tests/fixtures/openai/response_error_200.json");
const EMBEDDINGS: &str = include_str!("../../tests/fixtures/openai/embeddings_response.json");

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn parses_text_response() {
    let resp = parse_chat_response(
        Bytes::from_static(RESPONSE_TEXT.as_bytes()),
        &ResponseMode::Plain,
    )
    .unwrap();
    assert_eq!(resp.id, "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT");
    assert_eq!(resp.model, "gpt-4o-2024-08-06");
    assert_eq!(resp.created, 1741569952);
    assert_eq!(resp.system_fingerprint.as_deref(), Some("fp_fc9f1d7035"));
    assert_eq!(
        resp.choices[0].message.text(),
        "Hello! How can I assist you today?"
    );
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(resp.choices[0].logprobs, None);
    assert_eq!(resp.usage.unwrap().total_tokens(), 29);
    // Fast path back to an OpenAI client: the same bytes.
    assert_eq!(render_chat_response(&resp), RESPONSE_TEXT.as_bytes());
}

#[test]
fn parses_tool_calls_and_usage_details() {
    let resp = parse_chat_response(
        Bytes::from_static(RESPONSE_TOOLS.as_bytes()),
        &ResponseMode::Plain,
    )
    .unwrap();
    let choice = &resp.choices[0];
    assert!(choice.message.content.is_empty());
    assert_eq!(choice.message.tool_calls.len(), 2);
    assert_eq!(
        choice.message.tool_calls[1].arguments,
        r#"{"city":"Tokyo"}"#
    );
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(
        resp.usage,
        Some(Usage {
            input_tokens: 2006,
            output_tokens: 300,
            cached_input_tokens: 1920,
            cache_write_tokens: 0,
            reasoning_tokens: 128
        })
    );
}

#[test]
fn parses_reasoning_content() {
    let resp = parse_chat_response(
        Bytes::from_static(RESPONSE_REASONING.as_bytes()),
        &ResponseMode::Plain,
    )
    .unwrap();
    let content = &resp.choices[0].message.content;
    assert!(
        matches!(&content[0], ContentPart::Thinking { text, signature: None } if text.starts_with("9.11"))
    );
    assert_eq!(content[1], ContentPart::text("9.8 is greater."));
    let usage = resp.usage.unwrap();
    assert_eq!(
        (usage.cached_input_tokens, usage.reasoning_tokens),
        (16, 45)
    );
}

#[test]
fn error_in_a_200_body_is_upstream() {
    let err = parse_chat_response(
        Bytes::from_static(RESPONSE_ERROR.as_bytes()),
        &ResponseMode::Plain,
    )
    .unwrap_err();
    assert!(
        matches!(err, DecodeError::Upstream { ref kind, retryable: true, .. } if kind == "server_error")
    );
    let err = parse_chat_response(Bytes::from_static(br#"{"error":{"message":"bad","type":"invalid_request_error","code":"context_length_exceeded"}}"#), &ResponseMode::Plain).unwrap_err();
    assert!(matches!(
        err,
        DecodeError::Upstream {
            retryable: false,
            ..
        }
    ));
    assert!(matches!(
        parse_chat_response(Bytes::from_static(b"<html>"), &ResponseMode::Plain),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn json_via_tool_turns_the_call_into_text() {
    let body = br#"{"id":"x","model":"m","created":1,"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"json_answer","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}]}"#;
    let mode = ResponseMode::JsonViaTool {
        tool_name: "json_answer".into(),
    };
    let resp = parse_chat_response(Bytes::from_static(body), &mode).unwrap();
    assert_eq!(resp.choices[0].message.text(), r#"{"a":1}"#);
    assert!(resp.choices[0].message.tool_calls.is_empty());
    assert_eq!(resp.choices[0].finish_reason, Some(FinishReason::Stop));
    assert!(resp.raw.is_none());
}

#[test]
fn renders_responses_from_other_providers() {
    let mut msg = Message::new(
        Role::Assistant,
        vec![ContentPart::Thinking {
            text: "think".into(),
            signature: Some("s".into()),
        }],
    );
    msg.tool_calls.push(ToolCall {
        id: "toolu_1".into(),
        name: "f".into(),
        arguments: "{}".into(),
    });
    let resp = ChatResponse {
        id: String::new(),
        model: "claude-sonnet-4-5".into(),
        created: 0,
        choices: vec![
            Choice {
                index: 0,
                message: msg,
                finish_reason: Some(FinishReason::ToolCalls),
                logprobs: None,
            },
            Choice {
                index: 1,
                message: Message::new(Role::Assistant, vec![ContentPart::text("done")]),
                finish_reason: Some(FinishReason::StopSequence(Some("END".into()))),
                logprobs: None,
            },
            Choice {
                index: 2,
                message: Message::new(Role::Assistant, vec![]),
                finish_reason: Some(FinishReason::Other("pause_turn".into())),
                logprobs: None,
            },
        ],
        usage: Some(Usage {
            input_tokens: 100,
            output_tokens: 20,
            cached_input_tokens: 60,
            cache_write_tokens: 30,
            reasoning_tokens: 5,
        }),
        system_fingerprint: None,
        raw: Some(RawBytes {
            protocol: Protocol::Anthropic,
            body: Bytes::from_static(b"{}"),
        }),
    };
    let out = json_of(&render_chat_response(&resp));
    assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(out["object"], "chat.completion");
    assert!(out["created"].as_i64().unwrap() > 1_700_000_000);
    let c0 = &out["choices"][0];
    assert_eq!(c0["message"]["content"], Value::Null);
    assert_eq!(c0["message"]["reasoning_content"], "think");
    assert_eq!(c0["message"]["tool_calls"][0]["function"]["name"], "f");
    assert_eq!(c0["finish_reason"], "tool_calls");
    assert_eq!(out["choices"][1]["message"]["content"], "done");
    assert_eq!(out["choices"][1]["finish_reason"], "stop");
    assert_eq!(out["choices"][2]["message"]["content"], "");
    assert_eq!(out["choices"][2]["finish_reason"], "pause_turn");
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,
               "prompt_tokens_details":{"cached_tokens":60},"completion_tokens_details":{"reasoning_tokens":5}})
    );
    // And an OpenAI client's SDK shape reads back to the same canonical choices.
    let back = parse_chat_response(
        Bytes::from(render_chat_response(&resp)),
        &ResponseMode::Plain,
    )
    .unwrap();
    // (the signature of Anthropic thinking has no OpenAI field).
    let mut expected = resp.choices[0].message.clone();
    expected.content = vec![ContentPart::Thinking {
        text: "think".into(),
        signature: None,
    }];
    assert_eq!(back.choices[0].message, expected);
}

#[test]
fn embeddings_responses() {
    let resp = parse_embed_response(EMBEDDINGS.as_bytes()).unwrap();
    assert_eq!(resp.model, "text-embedding-3-small");
    assert_eq!(
        resp.data[0],
        Embedding::Float(vec![0.0023064255, -0.009327292])
    );
    assert_eq!(resp.data[1], Embedding::Float(vec![0.5, -0.25]));
    assert_eq!(resp.usage.input_tokens, 8);
    let out = json_of(&render_embed_response(&resp));
    assert_eq!(out["object"], "list");
    assert_eq!(
        out["data"][1],
        json!({"object":"embedding","index":1,"embedding":[0.5,-0.25]})
    );
    assert_eq!(out["usage"], json!({"prompt_tokens":8,"total_tokens":8}));
    let b64 = parse_embed_response(br#"{"data":[{"index":0,"embedding":"AAAAAA=="}],"model":"e","usage":{"prompt_tokens":1,"total_tokens":1}}"#).unwrap();
    assert_eq!(b64.data, vec![Embedding::Base64("AAAAAA==".into())]);
    assert_eq!(
        json_of(&render_embed_response(&b64))["data"][0]["embedding"],
        "AAAAAA=="
    );
}

#[test]
fn renders_errors() {
    let err = ClientError {
        status: 404,
        kind: ErrorKind::NotFound,
        code: "model_not_found",
        message: "The model `x` does not exist.".into(),
        param: None,
    };
    assert_eq!(
        json_of(&render_error(&err)),
        json!({"error":{"message":"The model `x` does not exist.","type":"invalid_request_error","code":"model_not_found","param":null}})
    );
    let err = ClientError {
        status: 429,
        kind: ErrorKind::RateLimit,
        code: "rate_limited",
        message: "slow".into(),
        param: Some("p".into()),
    };
    let out = json_of(&render_error(&err));
    assert_eq!(
        (
            out["error"]["type"].as_str(),
            out["error"]["param"].as_str()
        ),
        (Some("rate_limit_error"), Some("p"))
    );
}

#[test]
fn reads_upstream_error_messages() {
    assert_eq!(
        upstream_error_message(br#"{"error":{"message":"Invalid key","type":"x"}}"#).as_deref(),
        Some("Invalid key")
    );
    assert_eq!(
        upstream_error_message(br#"{"message":"flat"}"#).as_deref(),
        Some("flat")
    );
    assert_eq!(
        upstream_error_message(br#"{"error":"just text"}"#).as_deref(),
        Some("just text")
    );
    assert_eq!(
        upstream_error_message(br#"[{"error":{"message":"in array"}}]"#).as_deref(),
        Some("in array")
    );
    assert_eq!(upstream_error_message(b"<html>502</html>"), None);
    assert_eq!(upstream_error_message(br#"{"error":{}}"#), None);
    let long = format!(r#"{{"error":{{"message":"{}"}}}}"#, "é".repeat(400));
    assert_eq!(
        upstream_error_message(long.as_bytes())
            .unwrap()
            .chars()
            .count(),
        300
    );
}

#[test]
fn passthrough_decodes_usage_and_keeps_the_body_without_the_choices() {
    for fixture in [RESPONSE_TEXT, RESPONSE_TOOLS, RESPONSE_REASONING] {
        let full = parse_chat_response(Bytes::from(fixture), &ResponseMode::Plain).unwrap();
        let light = parse_chat_response_passthrough(Bytes::from(fixture)).unwrap();
        assert_eq!(light.usage, full.usage);
        assert_eq!(
            (light.id.as_str(), light.model.as_str()),
            (full.id.as_str(), full.model.as_str())
        );
        assert!(light.choices.is_empty());
        assert_eq!(
            render_chat_response(&light),
            fixture.as_bytes(),
            "the client gets the body as is"
        );
    }
    let err = parse_chat_response_passthrough(Bytes::from(RESPONSE_ERROR)).unwrap_err();
    assert!(matches!(err, DecodeError::Upstream { .. }), "{err:?}");
    let err = parse_chat_response_passthrough(Bytes::from_static(b"{\"id\":\"x\"}")).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
}
