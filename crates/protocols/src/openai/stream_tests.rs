//! Tests of the chat stream decoder and encoder: recorded-shape fixtures decoded to the expected
//! canonical events, every byte split of each fixture giving the same events, and the encoder's
//! frames read back by the decoder.

use super::*;
use crate::codec::{ResponseMode, StreamDecoder, StreamEncoder};
use crate::error::{ClientError, DecodeError, ErrorKind};
use crate::sse::SseParser;
use proptest::prelude::*;
use serde_json::{json, Value};
use switchboard_types::{ChatEvent, FinishReason, Usage};

const TEXT: &str = include_str!("../../tests/fixtures/openai/stream_text.sse");
const TOOLS: &str = include_str!("../../tests/fixtures/openai/stream_tool_calls_parallel.sse");
const COMPAT: &str = include_str!("../../tests/fixtures/openai/stream_tool_calls_compat.sse");
const AZURE: &str = include_str!("../../tests/fixtures/openai/stream_azure.sse");
const ERROR: &str = include_str!("../../tests/fixtures/openai/stream_error.sse");
const FIXTURES: [&str; 5] = [TEXT, TOOLS, COMPAT, AZURE, ERROR];

/// What a whole stream decodes to: the events, then the error that ended it (if any), whether
/// `[DONE]` was seen and how many events were skipped.
#[derive(Debug, PartialEq)]
struct Decoded {
    events: Vec<ChatEvent>,
    error: Option<DecodeError>,
    done: bool,
    skipped: u64,
}

fn decode_chunks(chunks: &[&[u8]], mode: ResponseMode) -> Decoded {
    let mut parser = SseParser::new();
    let mut decoder = ChatStreamDecoder::new(mode);
    let mut events = Vec::new();
    let mut sse = Vec::new();
    for chunk in chunks {
        sse.extend(parser.feed(chunk));
    }
    sse.extend(parser.finish());
    for ev in &sse {
        match decoder.decode(ev) {
            Ok(out) => events.extend(out),
            Err(e) => {
                return Decoded {
                    events,
                    error: Some(e),
                    done: decoder.is_done(),
                    skipped: decoder.skipped(),
                }
            }
        }
    }
    Decoded {
        events,
        error: None,
        done: decoder.is_done(),
        skipped: decoder.skipped(),
    }
}

fn decode(text: &str) -> Decoded {
    decode_chunks(&[text.as_bytes()], ResponseMode::Plain)
}

fn start(id: &str, model: &str, created: i64) -> ChatEvent {
    ChatEvent::Start {
        id: id.into(),
        model: model.into(),
        created,
    }
}

fn text(t: &str) -> ChatEvent {
    ChatEvent::TextDelta {
        choice: 0,
        text: t.into(),
    }
}

fn call_start(index: u32, id: &str, name: &str) -> ChatEvent {
    ChatEvent::ToolCallStart {
        choice: 0,
        index,
        id: id.into(),
        name: name.into(),
    }
}

fn call_delta(index: u32, arguments: &str) -> ChatEvent {
    ChatEvent::ToolCallDelta {
        choice: 0,
        index,
        arguments: arguments.into(),
    }
}

fn finish(reason: FinishReason) -> ChatEvent {
    ChatEvent::Finish { choice: 0, reason }
}

fn usage(input: u64, output: u64, cached: u64) -> ChatEvent {
    ChatEvent::Usage(Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        ..Usage::default()
    })
}

#[test]
fn plain_text_stream() {
    let d = decode(TEXT);
    assert_eq!(
        d.events,
        vec![
            start("chatcmpl-123", "gpt-4o-mini", 1694268190),
            text("Hello"),
            text(" wörld! 👋"),
            finish(FinishReason::Stop),
            usage(9, 4, 0),
        ]
    );
    assert!(d.done && d.error.is_none());
    assert_eq!(d.skipped, 0);
}

#[test]
fn parallel_tool_calls_with_interleaved_arguments() {
    let d = decode(TOOLS);
    assert_eq!(
        d.events,
        vec![
            start("chatcmpl-tc1", "gpt-4o", 1700000000),
            call_start(0, "call_1", "get_weather"),
            call_start(1, "call_2", "get_time"),
            call_delta(0, r#"{"ci"#),
            call_delta(1, r#"{"tz":"#),
            call_delta(0, r#"ty":"Paris"}"#),
            call_delta(1, r#""CET"}"#),
            finish(FinishReason::ToolCalls),
            usage(80, 40, 64),
        ]
    );
    assert!(d.done);
}

#[test]
fn compatible_server_quirks() {
    let d = decode(COMPAT);
    assert_eq!(
        d.events,
        vec![
            start("chatcmpl-local", "qwen3-8b", 1710000000),
            ChatEvent::ReasoningDelta {
                choice: 0,
                text: "The user wants weather.".into()
            },
            call_start(0, "call_x", "get_weather"),
            call_delta(0, r#"{"city":"#),
            call_delta(0, r#""Paris"}"#),
            finish(FinishReason::ToolCalls),
            usage(50, 20, 0),
        ]
    );
    // The `event: ping` with an unknown payload.
    assert_eq!(d.skipped, 1);
}

#[test]
fn azure_prompt_filter_and_annotation_chunks() {
    let d = decode(AZURE);
    let id = "chatcmpl-AnhIt2rw8vL8czymkCwEOKKTg7HPc";
    assert_eq!(
        d.events,
        vec![
            start(id, "gpt-4o-mini-2024-07-18", 1736407895),
            text("Hi"),
            finish(FinishReason::Stop),
            usage(12, 2, 0),
        ]
    );
    assert_eq!(d.skipped, 0);
    assert!(d.done);
}

#[test]
fn error_mid_stream() {
    let d = decode(ERROR);
    assert_eq!(
        d.events,
        vec![start("chatcmpl-err", "gpt-4o", 1700000001), text("Partial")]
    );
    assert!(
        matches!(d.error, Some(DecodeError::Upstream { ref kind, retryable: true, .. }) if kind == "server_error")
    );
    assert!(!d.done);
    let d = decode("data: {\"error\":{\"message\":\"nope\",\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}\n\n");
    assert!(matches!(
        d.error,
        Some(DecodeError::Upstream {
            retryable: false,
            ..
        })
    ));
    let d = decode("data: {\"error\":{\"message\":\"slow down\",\"code\":429}}\n\n");
    assert!(matches!(
        d.error,
        Some(DecodeError::Upstream {
            retryable: true,
            ..
        })
    ));
}

#[test]
fn non_json_is_malformed_and_unknown_shapes_are_skipped() {
    let d = decode("data: not json\n\n");
    assert!(matches!(d.error, Some(DecodeError::Malformed(_))));
    let d = decode("data: {\"choices\":\"weird\"}\n\ndata: [1,2]\n\ndata: {}\n\ndata: [DONE]\n\n");
    assert_eq!((d.skipped, d.done, d.events.len()), (3, true, 0));
}

#[test]
fn start_comes_first_even_without_id() {
    let d = decode("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\ndata: {\"id\":\"late\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"y\"},\"finish_reason\":\"stop\"}]}\n\n");
    assert_eq!(
        d.events,
        vec![
            start("", "", 0),
            text("x"),
            text("y"),
            finish(FinishReason::Stop)
        ]
    );
}

#[test]
fn tool_calls_without_index_or_with_reused_index() {
    // Every call at index 0 with distinct ids; arguments before the name are held.
    let s = concat!(
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c2\",\"function\":{\"arguments\":\"{\\\"k\\\"\"}}]}}]}\n\n",
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"g\",\"arguments\":\":1}\"}}]}}]}\n\n",
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"c3\",\"function\":{\"name\":\"h\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
    );
    assert_eq!(
        decode(s).events,
        vec![
            start("a", "m", 0),
            call_start(0, "c1", "f"),
            call_delta(0, "{}"),
            call_start(1, "c2", "g"),
            call_delta(1, "{\"k\""),
            call_delta(1, ":1}"),
            call_start(2, "c3", "h"),
            finish(FinishReason::ToolCalls),
        ]
    );
}

#[test]
fn json_via_tool_stream_becomes_text() {
    let s = concat!(
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":{\"name\":\"json\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}\n\n",
        "data: {\"id\":\"a\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
    );
    let d = decode_chunks(
        &[s.as_bytes()],
        ResponseMode::JsonViaTool {
            tool_name: "json".into(),
        },
    );
    assert_eq!(
        d.events,
        vec![
            start("a", "m", 0),
            text("{\"a\""),
            text(":1}"),
            finish(FinishReason::Stop)
        ]
    );
}

proptest! {
    #[test]
    fn any_byte_split_gives_the_same_events(
        which in 0usize..FIXTURES.len(),
        cuts in proptest::collection::vec(0usize..4096, 0..12),
    ) {
        let bytes = FIXTURES[which].as_bytes();
        let cuts = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        let whole = decode_chunks(&[bytes], ResponseMode::Plain);
        prop_assert_eq!(decode_chunks(&crate::sse::testing::split_at_cuts(bytes, cuts), ResponseMode::Plain), whole);
    }
}

#[test]
fn every_single_split_point_of_each_fixture() {
    for fixture in FIXTURES {
        let bytes = fixture.as_bytes();
        let whole = decode_chunks(&[bytes], ResponseMode::Plain);
        for cut in 0..=bytes.len() {
            assert_eq!(
                decode_chunks(
                    &crate::sse::testing::split_at_cuts(bytes, vec![cut]),
                    ResponseMode::Plain
                ),
                whole
            );
        }
    }
}

fn encode_all(events: &[ChatEvent], include_usage: bool) -> Vec<u8> {
    let mut enc = ChatStreamEncoder::new(include_usage);
    let mut out = Vec::new();
    for ev in events {
        enc.encode(ev, &mut out);
    }
    enc.finish(&mut out);
    out
}

#[test]
fn encoder_output_decodes_to_the_same_events() {
    for fixture in [TEXT, TOOLS, COMPAT, AZURE] {
        let original = decode(fixture).events;
        let bytes = encode_all(&original, true);
        let back = decode_chunks(&[&bytes], ResponseMode::Plain);
        assert_eq!(back.events, original);
        assert!(back.done);
        assert_eq!(back.skipped, 0);
    }
}

#[test]
fn encoder_frames_match_openai() {
    let events = decode(TOOLS).events;
    let bytes = encode_all(&events, true);
    let text = String::from_utf8(bytes).unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert!(frames.iter().all(|f| f.starts_with("data: ")));
    let json = |i: usize| -> Value { serde_json::from_str(&frames[i][6..]).unwrap() };
    assert_eq!(
        json(0)["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(json(0)["object"], "chat.completion.chunk");
    assert_eq!(
        json(1)["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}])
    );
    assert_eq!(
        json(3)["choices"][0]["delta"]["tool_calls"],
        json!([{"index": 0, "function": {"arguments": "{\"ci"}}])
    );
    let finish = json(7);
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = json(8);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 64);
    assert_eq!(*frames.last().unwrap(), "data: [DONE]");
    // Every chunk has the id, created and model of Start.
    for i in 0..frames.len() - 1 {
        assert_eq!(
            (
                json(i)["id"].clone(),
                json(i)["created"].clone(),
                json(i)["model"].clone()
            ),
            (json!("chatcmpl-tc1"), json!(1700000000), json!("gpt-4o"))
        );
    }
    // Without include_usage: no usage chunk.
    let text = String::from_utf8(encode_all(&events, false)).unwrap();
    assert!(!text.contains("prompt_tokens"));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[test]
fn encoder_merges_usage_and_ends_once() {
    let mut enc = ChatStreamEncoder::new(true);
    let mut out = Vec::new();
    // No Start: a made-up id is used.
    enc.encode(&text("x"), &mut out);
    enc.encode(&usage(10, 0, 0), &mut out);
    enc.encode(&usage(0, 5, 0), &mut out);
    enc.finish(&mut out);
    enc.finish(&mut out);
    enc.encode(&text("late"), &mut out);
    let s = String::from_utf8(out).unwrap();
    assert!(s.contains("\"id\":\"chatcmpl-"));
    assert!(s.contains("\"role\":\"assistant\""));
    assert!(s.contains("\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15"));
    assert_eq!(s.matches("[DONE]").count(), 1);
    assert!(!s.contains("late"));
}

#[test]
fn encoder_error_ends_without_done() {
    let mut enc = ChatStreamEncoder::new(false);
    let mut out = Vec::new();
    enc.encode(&start("chatcmpl-1", "m", 1), &mut out);
    let err = ClientError {
        status: 502,
        kind: ErrorKind::Upstream,
        code: "upstream_error",
        message: "The provider failed.".into(),
        param: None,
    };
    enc.error(&err, &mut out);
    enc.finish(&mut out);
    let s = String::from_utf8(out).unwrap();
    assert!(s.ends_with("data: {\"error\":{\"message\":\"The provider failed.\",\"type\":\"api_error\",\"code\":\"upstream_error\",\"param\":null}}\n\n"));
    assert!(!s.contains("[DONE]"));
    // The decoder reads that error frame back as an upstream error.
    let d = decode(&s);
    assert!(matches!(
        d.error,
        Some(DecodeError::Upstream {
            retryable: true,
            ..
        })
    ));
}
