//! Tests of OpenAI request parsing and building (chat and embeddings), against a fixture
//! written from the OpenAI API reference. Responses: `response_tests`; streams: `stream_tests`.

use super::*;
use crate::codec::ResponseMode;
use crate::error::ConvertError;
use serde_json::{json, Value};
use switchboard_types::{
    ContentPart, EmbedInput, ImageSource, Message, Protocol, ResponseFormat, Role, Tool, ToolCall,
    ToolChoice,
};

const REQUEST_FULL: &str = include_str!("../../tests/fixtures/openai/request_full.json");

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn err_param(result: Result<impl std::fmt::Debug, ConvertError>) -> (String, String) {
    let err = result.unwrap_err();
    (err.param().unwrap_or_default().to_owned(), err.to_string())
}

#[test]
fn parses_every_documented_request_field() {
    let req = parse_chat_request(REQUEST_FULL.as_bytes()).unwrap();
    assert_eq!(req.model, "gpt-4o");
    // Leading system + developer, and the mid-conversation system, all folded into `system`.
    assert_eq!(
        req.system,
        vec![
            ContentPart::text("You are a weather bot."),
            ContentPart::text("Answer in metric units."),
            ContentPart::text("Be brief."),
        ]
    );
    assert_eq!(req.messages.len(), 4);
    let user = &req.messages[0];
    assert_eq!(user.role, Role::User);
    assert_eq!(user.name.as_deref(), Some("ana"));
    assert_eq!(
        user.content[1],
        ContentPart::Image {
            source: ImageSource::Url("https://example.com/paris.jpg".into()),
            detail: Some("high".into())
        }
    );
    assert!(
        matches!(&user.content[2], ContentPart::Image { source: ImageSource::Url(u), detail: None } if u.starts_with("data:image/png"))
    );
    let call = &req.messages[1];
    assert_eq!(call.role, Role::Assistant);
    assert!(call.content.is_empty());
    assert_eq!(
        call.tool_calls,
        vec![ToolCall {
            id: "call_abc".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Paris"}"#.into()
        }]
    );
    assert_eq!(req.messages[2].role, Role::Tool);
    assert_eq!(req.messages[2].tool_call_id.as_deref(), Some("call_abc"));
    assert_eq!(req.messages[2].text(), r#"{"temp_c":21}"#);
    assert_eq!(req.messages[3].text(), "It is 21 degrees.");

    assert_eq!(req.tools.len(), 1);
    assert_eq!(req.tools[0].strict, Some(true));
    assert_eq!(
        req.tool_choice,
        Some(ToolChoice::Tool("get_weather".into()))
    );
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.max_tokens, Some(512));
    assert_eq!(req.temperature, Some(0.2));
    assert_eq!(req.top_p, Some(0.9));
    assert_eq!(req.stop, vec!["END", "STOP"]);
    assert_eq!(req.seed, Some(42));
    assert_eq!(req.n, Some(1));
    assert_eq!(req.presence_penalty, Some(0.1));
    assert_eq!(req.frequency_penalty, Some(0.2));
    assert!(matches!(
        &req.response_format,
        Some(ResponseFormat::JsonSchema { name, strict: Some(true), description: Some(_), .. }) if name == "weather"
    ));
    assert_eq!(req.logprobs, Some(true));
    assert_eq!(req.top_logprobs, Some(3));
    assert_eq!(req.reasoning_effort.as_deref(), Some("low"));
    assert_eq!(req.user.as_deref(), Some("user-1234"));
    assert!(req.stream);
    assert!(req.stream_include_usage);
    let mut extra: Vec<_> = req.extra.keys().cloned().collect();
    extra.sort();
    assert_eq!(extra, vec!["logit_bias", "metadata", "service_tier"]);
    assert_eq!(req.raw.as_ref().unwrap().protocol, Protocol::OpenAi);
}

#[test]
fn simple_shapes_and_nulls() {
    let req = parse_chat_request(
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":"X","max_tokens":7,
             "tools":null,"temperature":null,"tool_choice":"required","response_format":{"type":"json_object"}}"#,
    )
    .unwrap();
    assert_eq!(req.messages[0].content, vec![ContentPart::text("hi")]);
    assert_eq!(req.stop, vec!["X"]);
    assert_eq!(req.max_tokens, Some(7));
    assert_eq!(req.temperature, None);
    assert_eq!(req.tool_choice, Some(ToolChoice::Required));
    assert_eq!(req.response_format, Some(ResponseFormat::JsonObject));
    assert!(!req.stream);
}

/// Paths are written out only when an error names them: every kind of path, with its text.
#[test]
fn request_error_paths_name_nested_values() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}"#,
            "messages[0].content[0]",
            "`messages[0].content[0]`: only `text` parts are allowed in this message.",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"https://x"}}]}]}"#,
            "messages[1].content[1]",
            "`messages[1].content[1]`: assistant messages take `text` and `refusal` parts only.",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"b","type":"custom","function":{"name":"f","arguments":"{}"}}]}]}"#,
            "messages[1].tool_calls[1].type",
            "`messages[1].tool_calls[1].type`: only `function` tool calls are supported.",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":7}]}"#,
            "messages[1].tool_calls",
            "`messages[1].tool_calls`:",
        ),
        (
            r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            "messages[0].tool_call_id",
            "`messages[0]`: missing field `tool_call_id`.",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}},{"type":"function"}]}"#,
            "tools[1].function",
            "`tools[1].function` is required.",
        ),
    ];
    for (body, param, message) in cases {
        let (p, text) = err_param(parse_chat_request(body.as_bytes()));
        assert_eq!(&p, param, "{body}: {text}");
        assert!(text.contains(message), "{body}: {text}");
    }
}

#[test]
fn request_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"messages":[{"role":"user","content":"hi"}]}"#, "model"),
        (r#"{"model":"m","messages":[]}"#, "messages"),
        (r#"{"model":"m"}"#, "messages"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":3}]}"#,
            "messages[2].content",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
            "messages[0].content[0]",
        ),
        (
            r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            "temperature",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}"#,
            "tool_choice",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}"#,
            "messages[0].content[0].image_url.url",
        ),
    ];
    for (body, param) in cases {
        let (p, message) = err_param(parse_chat_request(body.as_bytes()));
        assert_eq!(&p, param, "{body}: {message}");
        assert!(matches!(
            parse_chat_request(body.as_bytes()),
            Err(ConvertError::Invalid { .. })
        ));
    }
    assert!(matches!(
        parse_chat_request(b"{nope"),
        Err(ConvertError::Invalid { param: None, .. })
    ));
    assert!(matches!(
        parse_chat_request(b"[1]"),
        Err(ConvertError::Invalid { param: None, .. })
    ));
}

#[test]
fn unsupported_inputs_are_refused_with_their_param() {
    let audio = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}}]}]}"#;
    let file = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}"#;
    let function = r#"{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}"#;
    let functions = r#"{"model":"m","messages":[{"role":"user","content":"x"}],"functions":[]}"#;
    for (body, param) in [
        (audio, "messages[0].content[0]"),
        (file, "messages[0].content[0]"),
        (function, "messages[0].role"),
        (functions, "functions"),
    ] {
        let err = parse_chat_request(body.as_bytes()).unwrap_err();
        assert!(matches!(err, ConvertError::Unsupported { .. }), "{body}");
        assert_eq!(err.param(), Some(param));
    }
}

#[test]
fn fast_path_keeps_unknown_fields_and_only_changes_model() {
    let body = br#"{"model":"alias","messages":[{"role":"user","content":"hi"}],"logit_bias":{"1":2},"service_tier":"flex","stream":false}"#;
    let req = parse_chat_request(body).unwrap();
    let out = chat_request_body(&req, "gpt-4o-2024-08-06").unwrap();
    assert_eq!(out.mode, ResponseMode::Plain);
    let mut expected = json_of(body);
    expected["model"] = json!("gpt-4o-2024-08-06");
    expected.as_object_mut().unwrap().remove("stream");
    assert_eq!(json_of(&out.body), expected);
}

#[test]
fn fast_path_forces_usage_when_streaming() {
    let body = br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false,"x":1}}"#;
    let req = parse_chat_request(body).unwrap();
    let out = json_of(&chat_request_body(&req, "b").unwrap().body);
    assert_eq!(out["stream"], json!(true));
    assert_eq!(
        out["stream_options"],
        json!({"include_usage": true, "x": 1})
    );
    assert_eq!(out["model"], json!("b"));
}

/// Canonical -> wire -> canonical keeps tools, images, tool results and the JSON schema.
#[test]
fn canonical_round_trip() {
    let mut req = parse_chat_request(REQUEST_FULL.as_bytes()).unwrap();
    req.raw = None;
    req.extra.clear();
    // Base64 images leave as data: URLs (and come back as URLs).
    req.messages[0].content.push(ContentPart::Image {
        source: ImageSource::Base64 {
            media_type: "image/jpeg".into(),
            data: "/9j/4AAQ".into(),
        },
        detail: None,
    });
    let out = chat_request_body(&req, "gpt-4o").unwrap();
    let wire = json_of(&out.body);
    assert_eq!(wire["messages"][0]["role"], "system");
    assert_eq!(
        wire["messages"][0]["content"],
        json!([{"type":"text","text":"You are a weather bot."},{"type":"text","text":"Answer in metric units."},{"type":"text","text":"Be brief."}])
    );
    assert_eq!(
        wire["messages"][1]["content"][3]["image_url"]["url"],
        "data:image/jpeg;base64,/9j/4AAQ"
    );
    assert_eq!(wire["messages"][2]["content"], Value::Null);
    assert_eq!(wire["max_tokens"], 512);
    assert!(wire.get("max_completion_tokens").is_none());
    assert_eq!(wire["stream_options"], json!({"include_usage": true}));
    assert_eq!(wire["response_format"]["json_schema"]["name"], "weather");
    assert_eq!(
        wire["tool_choice"],
        json!({"type":"function","function":{"name":"get_weather"}})
    );

    let mut back = parse_chat_request(&out.body).unwrap();
    back.raw = None;
    let mut expected = req.clone();
    expected.model = "gpt-4o".into();
    if let ContentPart::Image { source, .. } = expected.messages[0].content.last_mut().unwrap() {
        *source = ImageSource::Url("data:image/jpeg;base64,/9j/4AAQ".into());
    }
    assert_eq!(back, expected);
}

#[test]
fn canonical_requests_from_other_formats() {
    let mut req = switchboard_types::ChatRequest {
        model: "m".into(),
        system: vec![
            ContentPart::Thinking {
                text: "hmm".into(),
                signature: None,
            },
            ContentPart::text("Be nice."),
        ],
        max_tokens: Some(100),
        thinking_budget: Some(2048),
        ..Default::default()
    };
    let mut assistant = Message::new(
        Role::Assistant,
        vec![ContentPart::Thinking {
            text: "plan".into(),
            signature: Some("sig".into()),
        }],
    );
    assistant.tool_calls.push(ToolCall {
        id: "t1".into(),
        name: "f".into(),
        arguments: "{}".into(),
    });
    let mut result = Message::new(Role::Tool, vec![ContentPart::text("failed")]);
    result.tool_call_id = Some("t1".into());
    result.is_error = true;
    req.messages = vec![
        Message::new(Role::User, vec![ContentPart::text("hi")]),
        assistant,
        result,
    ];
    req.tool_choice = Some(ToolChoice::Auto);
    let wire = json_of(&chat_request_body(&req, "gpt").unwrap().body);
    assert_eq!(
        wire,
        json!({
            "model": "gpt",
            "messages": [
                {"role": "system", "content": "Be nice."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "content": "failed", "tool_call_id": "t1"}
            ],
            "max_tokens": 100
        })
    );

    req.top_k = Some(40);
    assert_eq!(
        chat_request_body(&req, "gpt").unwrap_err().param(),
        Some("top_k")
    );
    req.top_k = None;
    req.system = vec![ContentPart::Image {
        source: ImageSource::Url("https://x/y.png".into()),
        detail: None,
    }];
    assert_eq!(
        chat_request_body(&req, "gpt").unwrap_err().param(),
        Some("system")
    );
}

#[test]
fn tools_round_trip() {
    let tool = Tool {
        name: "lookup".into(),
        description: None,
        parameters: json!({"type":"object","properties":{"q":{"type":"string"}}}),
        strict: None,
    };
    let req = switchboard_types::ChatRequest {
        model: "m".into(),
        messages: vec![Message::new(Role::User, vec![ContentPart::text("x")])],
        tools: vec![tool.clone()],
        tool_choice: Some(ToolChoice::None),
        parallel_tool_calls: Some(true),
        ..Default::default()
    };
    let body = chat_request_body(&req, "m").unwrap().body;
    let back = parse_chat_request(&body).unwrap();
    assert_eq!(back.tools, vec![tool]);
    assert_eq!(back.tool_choice, Some(ToolChoice::None));
    assert_eq!(back.parallel_tool_calls, Some(true));
}

#[test]
fn embeddings_requests() {
    let cases: &[(&str, EmbedInput)] = &[
        (r#""hello""#, EmbedInput::Texts(vec!["hello".into()])),
        (
            r#"["a","b"]"#,
            EmbedInput::Texts(vec!["a".into(), "b".into()]),
        ),
        ("[1,2,3]", EmbedInput::Tokens(vec![vec![1, 2, 3]])),
        ("[[1],[2,3]]", EmbedInput::Tokens(vec![vec![1], vec![2, 3]])),
    ];
    for (input, expected) in cases {
        let body = format!(
            r#"{{"model":"e","input":{input},"dimensions":256,"encoding_format":"base64","user":"u","x_vendor":true}}"#
        );
        let req = parse_embed_request(body.as_bytes()).unwrap();
        assert_eq!(&req.input, expected);
        assert_eq!(req.dimensions, Some(256));
        assert_eq!(req.encoding_format.as_deref(), Some("base64"));
        assert_eq!(req.user.as_deref(), Some("u"));
        let out = json_of(&embed_request_body(&req, "text-embedding-3-small"));
        assert_eq!(out["model"], "text-embedding-3-small");
        assert_eq!(out["x_vendor"], true);
        let back = parse_embed_request(&serde_json::to_vec(&out).unwrap()).unwrap();
        assert_eq!(&back.input, expected);
    }
    for bad in [
        r#"{"model":"e","input":[]}"#,
        r#"{"model":"e","input":[1,"a"]}"#,
        r#"{"model":"e","input":{}}"#,
        r#"{"input":"x"}"#,
    ] {
        assert!(parse_embed_request(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn a_prompt_reference_is_parsed_and_makes_messages_optional() {
    let req = parse_chat_request(
        br#"{"model":"m","prompt":{"id":"support","version":"3","label":"staging","variables":{"product":"W"}}}"#,
    )
    .unwrap();
    let prompt = req.prompt.expect("the reference");
    assert_eq!(prompt.name, "support");
    assert_eq!(prompt.version, Some(3));
    assert_eq!(prompt.label.as_deref(), Some("staging"));
    assert_eq!(prompt.variables["product"], "W");
    assert!(req.messages.is_empty());
    let req = parse_chat_request(br#"{"model":"m","prompt":{"name":"p","version":2},"messages":[{"role":"user","content":"hi"}]}"#)
        .unwrap();
    let prompt = req.prompt.expect("the reference");
    assert_eq!((prompt.name.as_str(), prompt.version), ("p", Some(2)));
    assert_eq!(req.messages.len(), 1);
    // Without a reference nothing is allocated for one.
    let req = parse_chat_request(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
        .unwrap();
    assert!(req.prompt.is_none());
}

#[test]
fn a_bad_prompt_reference_names_its_field() {
    for (body, param) in [
        (&br#"{"model":"m","prompt":{}}"#[..], "prompt.id"),
        (br#"{"model":"m","prompt":{"id":" "}}"#, "prompt.id"),
        (
            br#"{"model":"m","prompt":{"id":"a","name":"b"}}"#,
            "prompt.id",
        ),
        (
            br#"{"model":"m","prompt":{"id":"a","version":"x"}}"#,
            "prompt.version",
        ),
        (
            br#"{"model":"m","prompt":{"id":"a","version":0}}"#,
            "prompt.version",
        ),
        (
            br#"{"model":"m","prompt":{"id":"a","variables":[1]}}"#,
            "prompt",
        ),
        (br#"{"model":"m","prompt":"a"}"#, "prompt"),
        (br#"{"model":"m","prompt":{"id":"a","oops":1}}"#, "prompt"),
        (br#"{"model":"m"}"#, "messages"),
    ] {
        let (got, _) = err_param(parse_chat_request(body));
        assert_eq!(got, param, "{}", String::from_utf8_lossy(body));
    }
}
