//! Tests of the Gemini converters: request bodies built from canonical requests, recorded
//! response and stream fixtures (`tests/fixtures/gemini/`) decoded to canonical values, every
//! byte split of each stream fixture, and embeddings.

use super::*;
use crate::codec::{ResponseMode, StreamDecoder};
use crate::error::{ConvertError, DecodeError};
use crate::sse::SseParser;
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use switchboard_types::{
    ChatEvent, ChatRequest, ContentPart, EmbedInput, EmbedRequest, Embedding, FinishReason,
    ImageSource, Message, ResponseFormat, Role, Tool, ToolCall, ToolChoice, Usage,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn user(text: &str) -> Message {
    Message::new(Role::User, vec![ContentPart::text(text)])
}

fn assistant(text: &str) -> Message {
    Message::new(Role::Assistant, vec![ContentPart::text(text)])
}

fn body_of(req: &ChatRequest) -> Value {
    let up = generate_content_body(req).unwrap();
    assert_eq!(up.mode, ResponseMode::Plain);
    serde_json::from_slice(&up.body).unwrap()
}

fn weather_tool(parameters: Value) -> Tool {
    Tool {
        name: "get_weather".into(),
        description: Some("Weather of a city".into()),
        parameters,
        strict: Some(true),
    }
}

// ------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------

#[test]
fn system_and_multi_turn_with_merging() {
    let req = ChatRequest {
        system: vec![ContentPart::text("Be terse.")],
        messages: vec![
            user("Hi"),
            user("Still there?"),
            assistant("Yes."),
            Message::new(Role::System, vec![ContentPart::text("Answer in French.")]),
            Message::new(
                Role::Assistant,
                vec![
                    ContentPart::Thinking {
                        text: "hmm".into(),
                        signature: Some("sig".into()),
                    },
                    ContentPart::text("Anything else?"),
                ],
            ),
            user("Bye"),
        ],
        max_tokens: Some(100),
        temperature: Some(0.2),
        top_p: Some(0.9),
        top_k: Some(40),
        stop: vec!["END".into()],
        seed: Some(7),
        n: Some(2),
        presence_penalty: Some(0.1),
        frequency_penalty: Some(0.3),
        logprobs: Some(true),
        top_logprobs: Some(3),
        extra: serde_json::from_value(json!({"some_openai_field": 1})).unwrap(),
        ..ChatRequest::default()
    };
    let body = body_of(&req);
    assert_eq!(
        body,
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}, {"text": "Still there?"}]},
                {"role": "model", "parts": [{"text": "Yes."}, {"text": "Anything else?"}]},
                {"role": "user", "parts": [{"text": "Bye"}]}
            ],
            "systemInstruction": {"parts": [{"text": "Be terse."}, {"text": "Answer in French."}]},
            "generationConfig": {
                "temperature": 0.2, "topP": 0.9, "topK": 40, "maxOutputTokens": 100,
                "stopSequences": ["END"], "candidateCount": 2, "seed": 7,
                "presencePenalty": 0.1, "frequencyPenalty": 0.3,
                "responseLogprobs": true, "logprobs": 3
            }
        })
    );
}

fn tool_conversation() -> ChatRequest {
    let mut call_msg = assistant("Checking.");
    call_msg.tool_calls = vec![
        ToolCall {
            id: "call_a".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into(),
        },
        ToolCall {
            id: "call_b".into(),
            name: "get_time".into(),
            arguments: String::new(),
        },
    ];
    let mut result_a = Message::new(Role::Tool, vec![ContentPart::text(r#"{"temp":21}"#)]);
    result_a.tool_call_id = Some("call_a".into());
    let mut result_b = Message::new(Role::Tool, vec![ContentPart::text("12:00")]);
    result_b.tool_call_id = Some("call_b".into());
    result_b.is_error = false;
    ChatRequest {
        messages: vec![
            user("Weather and time in Paris?"),
            call_msg,
            result_a,
            result_b,
        ],
        tools: vec![weather_tool(
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        )],
        tool_choice: Some(ToolChoice::Tool("get_weather".into())),
        ..ChatRequest::default()
    }
}

#[test]
fn tool_calls_and_results_look_up_names() {
    let body = body_of(&tool_conversation());
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
            {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                 "thoughtSignature": "skip_thought_signature_validator"},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}}
            ]}
        ])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0]["name"],
        json!("get_weather")
    );
}

#[test]
fn failed_tool_result_is_sent_as_error() {
    let mut req = tool_conversation();
    req.messages[3].is_error = true;
    let body = body_of(&req);
    assert_eq!(
        body["contents"][2]["parts"][1],
        json!({"functionResponse": {"name": "get_time", "response": {"error": "12:00"}}})
    );
}

#[test]
fn unknown_tool_call_id_is_invalid() {
    let mut req = tool_conversation();
    req.messages[3].tool_call_id = Some("call_zzz".into());
    let err = generate_content_body(&req).unwrap_err();
    assert_eq!(err.param(), Some("messages[3].tool_call_id"));
    assert!(matches!(err, ConvertError::Invalid { .. }));
}

#[test]
fn invalid_tool_arguments_are_invalid() {
    let mut req = tool_conversation();
    req.messages[1].tool_calls[0].arguments = "{not json".into();
    let err = generate_content_body(&req).unwrap_err();
    assert!(matches!(err, ConvertError::Invalid { .. }));
    assert_eq!(
        err.param(),
        Some("messages[1].tool_calls[0].function.arguments")
    );
}

#[test]
fn tool_choice_modes() {
    for (choice, mode) in [
        (ToolChoice::Auto, "AUTO"),
        (ToolChoice::None, "NONE"),
        (ToolChoice::Required, "ANY"),
    ] {
        let mut req = tool_conversation();
        req.tool_choice = Some(choice);
        let body = body_of(&req);
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": mode}})
        );
    }
}

#[test]
fn parallel_tool_calls_false_is_unsupported() {
    let mut req = tool_conversation();
    req.parallel_tool_calls = Some(false);
    let err = generate_content_body(&req).unwrap_err();
    assert_eq!(err.param(), Some("parallel_tool_calls"));
    req.parallel_tool_calls = Some(true);
    assert!(generate_content_body(&req).is_ok());
}

#[test]
fn images_inline_data_and_file_data() {
    let req = ChatRequest {
        messages: vec![Message::new(
            Role::User,
            vec![
                ContentPart::text("What is in these?"),
                ContentPart::Image {
                    source: ImageSource::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBORw0KGgo=".into(),
                    },
                    detail: None,
                },
                ContentPart::Image {
                    source: ImageSource::Url("data:image/webp;base64,UklGRg==".into()),
                    detail: Some("high".into()),
                },
                ContentPart::Image {
                    source: ImageSource::Url("https://example.com/a/cat.JPG?size=2".into()),
                    detail: None,
                },
                ContentPart::Image {
                    source: ImageSource::Url("https://example.com/image".into()),
                    detail: None,
                },
            ],
        )],
        ..ChatRequest::default()
    };
    let body = body_of(&req);
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"text": "What is in these?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a/cat.JPG?size=2"}},
            {"fileData": {"fileUri": "https://example.com/image"}}
        ])
    );
}

#[test]
fn bad_data_url_is_invalid() {
    let req = ChatRequest {
        messages: vec![Message::new(
            Role::User,
            vec![ContentPart::Image {
                source: ImageSource::Url("data:image/png,rawbytes".into()),
                detail: None,
            }],
        )],
        ..ChatRequest::default()
    };
    assert!(matches!(
        generate_content_body(&req),
        Err(ConvertError::Invalid { .. })
    ));
}

#[test]
fn json_schema_response_format_and_thinking() {
    let schema = json!({
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": false
    });
    let req = ChatRequest {
        messages: vec![user("Answer in JSON")],
        response_format: Some(ResponseFormat::JsonSchema {
            name: "answer".into(),
            schema: schema.clone(),
            strict: Some(true),
            description: None,
        }),
        thinking_budget: Some(2048),
        ..ChatRequest::default()
    };
    let body = body_of(&req);
    assert_eq!(
        body["generationConfig"],
        json!({
            "responseMimeType": "application/json",
            "responseJsonSchema": schema,
            "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}
        })
    );

    let req = ChatRequest {
        messages: vec![user("Answer in JSON")],
        response_format: Some(ResponseFormat::JsonObject),
        reasoning_effort: Some("medium".into()),
        ..ChatRequest::default()
    };
    assert_eq!(
        body_of(&req)["generationConfig"],
        json!({"responseMimeType": "application/json", "thinkingConfig": {"thinkingBudget": 8192}})
    );

    let req = ChatRequest {
        messages: vec![user("x")],
        reasoning_effort: Some("extreme".into()),
        ..ChatRequest::default()
    };
    assert_eq!(
        generate_content_body(&req).unwrap_err().param(),
        Some("reasoning_effort")
    );
}

#[test]
fn tool_schema_keys_are_stripped() {
    let params = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": false,
        "strict": true,
        "properties": {
            "city": {"type": "string", "format": "uri", "examples": ["Paris"]},
            "when": {"type": "string", "format": "date-time"},
            "strict": {"type": ["integer", "null"], "exclusiveMinimum": 0},
            "unit": {"const": "celsius"},
            "place": {"$ref": "#/$defs/place", "description": "Where"},
            "tags": {"type": "array", "items": {"type": "object", "additionalProperties": {"type": "string"}, "properties": {"k": {"type": "string"}}}},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}]}
        },
        "required": ["city"],
        "$defs": {"place": {"type": "object", "properties": {"lat": {"type": "number", "format": "double"}}, "additionalProperties": false}}
    });
    let mut req = tool_conversation();
    req.tools = vec![weather_tool(params)];
    let body = body_of(&req);
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0],
        json!({
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "when": {"type": "string", "format": "date-time"},
                    "strict": {"type": "integer", "nullable": true},
                    "unit": {"enum": ["celsius"]},
                    "place": {"type": "object", "properties": {"lat": {"type": "number", "format": "double"}}, "description": "Where"},
                    "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
                    "either": {"anyOf": [{"type": "string"}, {"type": "number"}]}
                },
                "required": ["city"]
            }
        })
    );
}

#[test]
fn tool_without_arguments_sends_no_parameters() {
    let mut req = tool_conversation();
    req.tools = vec![weather_tool(
        json!({"type": "object", "properties": {}, "additionalProperties": false}),
    )];
    let body = body_of(&req);
    assert!(body["tools"][0]["functionDeclarations"][0]
        .get("parameters")
        .is_none());
}

#[test]
fn empty_conversation_is_invalid() {
    let req = ChatRequest {
        system: vec![ContentPart::text("only a system prompt")],
        ..ChatRequest::default()
    };
    assert_eq!(
        generate_content_body(&req).unwrap_err().param(),
        Some("messages")
    );
}

// ------------------------------------------------------------------------------------------
// Responses
// ------------------------------------------------------------------------------------------

#[test]
fn parses_text_with_thoughts_and_cached_usage() {
    let resp = parse_generate_response(Bytes::from(fixture("response_text.json")), "gm").unwrap();
    assert_eq!(resp.id, "resp-text-1");
    assert_eq!(resp.model, "gemini-2.5-flash-001");
    assert_eq!(resp.choices.len(), 1);
    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(
        choice.message.content,
        vec![
            ContentPart::Thinking {
                text: "I should answer briefly.".into(),
                signature: None
            },
            ContentPart::text("Hello! How can I help?"),
        ]
    );
    assert_eq!(
        resp.usage,
        Some(Usage {
            input_tokens: 1200,
            output_tokens: 58,
            cached_input_tokens: 1024,
            cache_write_tokens: 0,
            reasoning_tokens: 50,
        })
    );
}

#[test]
fn parses_function_calls() {
    let resp = parse_generate_response(
        Bytes::from(fixture("response_function_call.json")),
        "gemini-x",
    )
    .unwrap();
    assert_eq!(resp.id, "");
    let choice = &resp.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert!(choice.message.content.is_empty());
    assert_eq!(
        choice.message.tool_calls,
        vec![
            ToolCall {
                id: "call_0_0".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into()
            },
            ToolCall {
                id: "call_0_1".into(),
                name: "get_time".into(),
                arguments: "{}".into()
            },
        ]
    );
    let usage = resp.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (70, 20));
}

#[test]
fn blocked_prompt_becomes_content_filter_choice() {
    let resp =
        parse_generate_response(Bytes::from(fixture("response_safety_block.json")), "gm").unwrap();
    assert_eq!(resp.model, "gemini-2.5-flash");
    assert_eq!(resp.choices.len(), 1);
    assert_eq!(
        resp.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert!(resp.choices[0].message.content.is_empty());
}

#[test]
fn finish_reasons_map() {
    let body = json!({"candidates": [
        {"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"},
        {"content": {"parts": [{"text": "b"}]}, "finishReason": "RECITATION", "index": 5},
        {"finishReason": "MALFORMED_FUNCTION_CALL"}
    ]});
    let resp = parse_generate_response(Bytes::from(body.to_string()), "m").unwrap();
    let got: Vec<_> = resp
        .choices
        .iter()
        .map(|c| (c.index, c.finish_reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Some(FinishReason::Length)),
            (5, Some(FinishReason::ContentFilter)),
            (
                2,
                Some(FinishReason::Other("malformed_function_call".into()))
            ),
        ]
    );
    assert_eq!(resp.model, "m");
}

#[test]
fn logprobs_become_openai_shape() {
    let body = json!({"candidates": [{
        "content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP",
        "logprobsResult": {
            "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.1}, {"token": "Yo", "logProbability": -2.5}]}],
            "chosenCandidates": [{"token": "Hi", "logProbability": -0.1}]
        }
    }]});
    let resp = parse_generate_response(Bytes::from(body.to_string()), "m").unwrap();
    assert_eq!(
        resp.choices[0].logprobs,
        Some(
            json!({"content": [{"token": "Hi", "logprob": -0.1, "bytes": null, "top_logprobs": [
                {"token": "Hi", "logprob": -0.1, "bytes": null},
                {"token": "Yo", "logprob": -2.5, "bytes": null}
            ]}]})
        )
    );
}

#[test]
fn error_in_200_body_is_upstream() {
    let body =
        br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#;
    assert_eq!(
        parse_generate_response(Bytes::from_static(body), "m"),
        Err(DecodeError::Upstream {
            kind: "RESOURCE_EXHAUSTED".into(),
            message: "Quota exceeded".into(),
            retryable: true
        })
    );
    assert!(matches!(
        parse_generate_response(Bytes::from_static(b"<html>"), "m"),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn upstream_error_messages() {
    assert_eq!(
        upstream_error_message(&fixture("error_body.json")).as_deref(),
        Some("API key not valid. Please pass a valid API key.")
    );
    let long = json!({"error": {"message": "x".repeat(1000)}}).to_string();
    assert_eq!(
        upstream_error_message(long.as_bytes()).map(|m| m.len()),
        Some(300)
    );
    assert_eq!(upstream_error_message(b"not json"), None);
    assert_eq!(upstream_error_message(b"{}"), None);
}

// ------------------------------------------------------------------------------------------
// Streams
// ------------------------------------------------------------------------------------------

/// Feeds `chunks` through a parser and a decoder; collects events, the first error, and
/// whether the decoder reported done.
fn decode_chunks(chunks: &[&[u8]]) -> (Vec<ChatEvent>, Option<DecodeError>, bool) {
    let mut parser = SseParser::new();
    let mut decoder = GenerateStreamDecoder::with_created("gemini-configured", 1_700_000_000);
    let mut events = Vec::new();
    let mut sse = Vec::new();
    for chunk in chunks {
        sse.extend(parser.feed(chunk));
    }
    sse.extend(parser.finish());
    for ev in &sse {
        match decoder.decode(ev) {
            Ok(out) => events.extend(out),
            Err(e) => return (events, Some(e), decoder.is_done()),
        }
    }
    (events, None, decoder.is_done())
}

fn decode_fixture(name: &str) -> (Vec<ChatEvent>, Option<DecodeError>, bool) {
    decode_chunks(&[&fixture(name)])
}

#[test]
fn text_stream_with_cumulative_usage() {
    let (events, err, done) = decode_fixture("text_stream.sse");
    assert_eq!(err, None);
    assert!(done);
    let usage = |input, output, cached, reasoning| {
        ChatEvent::Usage(Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_tokens: 0,
            reasoning_tokens: reasoning,
        })
    };
    let text = |t: &str| ChatEvent::TextDelta {
        choice: 0,
        text: t.into(),
    };
    assert_eq!(
        events,
        vec![
            ChatEvent::Start {
                id: "mZVTaOXqK9GU".into(),
                model: "gemini-2.5-flash".into(),
                created: 1_700_000_000
            },
            ChatEvent::ReasoningDelta {
                choice: 0,
                text: "The user wants a haiku.".into()
            },
            usage(12, 0, 0, 0),
            text("Autumn moonlight,"),
            usage(12, 44, 0, 40),
            text(" a worm digs silently"),
            usage(12, 49, 0, 40),
            text(" into the chestnut."),
            ChatEvent::Finish {
                choice: 0,
                reason: FinishReason::Stop
            },
            usage(12, 55, 8, 40),
        ]
    );
    // Merging every report gives the final count.
    let mut total = Usage::default();
    for ev in &events {
        if let ChatEvent::Usage(u) = ev {
            total.merge(u);
        }
    }
    assert_eq!((total.input_tokens, total.output_tokens), (12, 55));
}

#[test]
fn tool_call_stream() {
    let (events, err, done) = decode_fixture("tool_call_stream.sse");
    assert_eq!(err, None);
    assert!(done);
    assert_eq!(
        events,
        vec![
            ChatEvent::Start {
                id: "xYz0aPqR".into(),
                model: "gemini-2.5-flash".into(),
                created: 1_700_000_000
            },
            ChatEvent::TextDelta {
                choice: 0,
                text: "Let me check both cities.".into()
            },
            ChatEvent::Usage(Usage {
                input_tokens: 58,
                ..Usage::default()
            }),
            ChatEvent::ToolCallStart {
                choice: 0,
                index: 0,
                id: "call_0_0".into(),
                name: "get_weather".into()
            },
            ChatEvent::ToolCallDelta {
                choice: 0,
                index: 0,
                arguments: r#"{"city":"Paris","unit":"celsius"}"#.into()
            },
            ChatEvent::ToolCallStart {
                choice: 0,
                index: 1,
                id: "fc_2".into(),
                name: "get_weather".into()
            },
            ChatEvent::ToolCallDelta {
                choice: 0,
                index: 1,
                arguments: r#"{"city":"Tokyo"}"#.into()
            },
            ChatEvent::Finish {
                choice: 0,
                reason: FinishReason::ToolCalls
            },
            ChatEvent::Usage(Usage {
                input_tokens: 58,
                output_tokens: 31,
                ..Usage::default()
            }),
        ]
    );
}

#[test]
fn error_stream() {
    let (events, err, done) = decode_fixture("error_stream.sse");
    assert!(!done);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[0],
        ChatEvent::Start {
            id: "errStrm1".into(),
            model: "gemini-2.5-pro".into(),
            created: 1_700_000_000
        }
    );
    assert_eq!(
        err,
        Some(DecodeError::Upstream {
            kind: "UNAVAILABLE".into(),
            message: "The model is overloaded. Please try again later.".into(),
            retryable: true
        })
    );
}

#[test]
fn stream_tolerates_unknown_and_rejects_garbage() {
    let mut decoder = GenerateStreamDecoder::new("m");
    let unknown = crate::sse::SseEvent {
        event: None,
        data: r#"{"somethingNew": 1}"#.into(),
    };
    assert_eq!(decoder.decode(&unknown), Ok(Vec::new()));
    assert_eq!(decoder.skipped(), 1);
    let garbage = crate::sse::SseEvent {
        event: None,
        data: "{oops".into(),
    };
    assert!(matches!(
        decoder.decode(&garbage),
        Err(DecodeError::Malformed(_))
    ));
    let bad_request = crate::sse::SseEvent {
        event: None,
        data: r#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#.into(),
    };
    assert!(matches!(
        decoder.decode(&bad_request),
        Err(DecodeError::Upstream {
            retryable: false,
            ..
        })
    ));
}

#[test]
fn stream_blocked_prompt_finishes_with_content_filter() {
    let mut decoder = GenerateStreamDecoder::with_created("m", 0);
    let ev = crate::sse::SseEvent {
        event: None,
        data: r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":5}}"#
            .into(),
    };
    let out = decoder.decode(&ev).unwrap();
    assert_eq!(
        out[1],
        ChatEvent::Finish {
            choice: 0,
            reason: FinishReason::ContentFilter
        }
    );
    assert!(decoder.is_done());
}

const STREAM_FIXTURES: [&str; 3] = [
    "text_stream.sse",
    "tool_call_stream.sse",
    "error_stream.sse",
];

proptest! {
    #[test]
    fn any_split_gives_same_events(
        which in 0usize..STREAM_FIXTURES.len(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let bytes = fixture(STREAM_FIXTURES[which]);
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        let chunks = crate::sse::testing::split_at_cuts(&bytes, cuts);
        prop_assert_eq!(decode_chunks(&chunks), decode_chunks(&[&bytes]));
    }
}

// ------------------------------------------------------------------------------------------
// Embeddings
// ------------------------------------------------------------------------------------------

fn embed_req(input: EmbedInput, encoding: Option<&str>) -> EmbedRequest {
    EmbedRequest {
        model: "alias".into(),
        input,
        dimensions: Some(3),
        encoding_format: encoding.map(str::to_owned),
        user: None,
        extra: Default::default(),
    }
}

#[test]
fn embed_body() {
    let req = embed_req(
        EmbedInput::Texts(vec!["hello".into(), "world".into()]),
        None,
    );
    let body: Value =
        serde_json::from_slice(&embed_request_body(&req, "text-embedding-004").unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "world"}]}, "outputDimensionality": 3}
        ]})
    );
    let tokens = embed_req(EmbedInput::Tokens(vec![vec![1, 2]]), None);
    assert_eq!(
        embed_request_body(&tokens, "m").unwrap_err().param(),
        Some("input")
    );
}

#[test]
fn embed_response_float_and_base64() {
    let body = fixture("embed_response.json");
    let plain = parse_embed_response(&body, "text-embedding-004").unwrap();
    assert_eq!(plain.model, "text-embedding-004");
    assert_eq!(
        plain.data,
        vec![
            Embedding::Float(vec![0.5, -1.0, 0.25]),
            Embedding::Float(vec![1.0, 0.0, -0.125])
        ]
    );
    assert_eq!(plain.usage, Usage::default());

    // "hello" (5 chars) -> 2 tokens, "hi" -> 1 token.
    let req = embed_req(
        EmbedInput::Texts(vec!["hello".into(), "hi".into()]),
        Some("base64"),
    );
    let resp = parse_embed_response_for(&body, &req, "text-embedding-004").unwrap();
    assert_eq!(resp.usage.input_tokens, 3);
    let Embedding::Base64(first) = &resp.data[0] else {
        panic!("expected base64: {:?}", resp.data[0]);
    };
    // 0.5, -1.0, 0.25 as little-endian f32.
    assert_eq!(first, "AAAAPwAAgL8AAIA+");

    let short = embed_req(EmbedInput::Texts(vec!["only one".into()]), None);
    assert!(matches!(
        parse_embed_response_for(&body, &short, "m"),
        Err(DecodeError::Malformed(_))
    ));
}
