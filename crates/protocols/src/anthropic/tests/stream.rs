//! Stream tests: recorded Anthropic streams decode to the expected canonical events whatever
//! the byte split, and the encoder turns canonical events in OpenAI's order into a valid
//! Anthropic stream that the decoder reads back to the same content.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::Value;
use switchboard_types::{ChatEvent, FinishReason, Usage};

use super::super::{MessagesStreamDecoder, MessagesStreamEncoder};
use crate::codec::{ResponseMode, StreamDecoder, StreamEncoder};
use crate::error::{ClientError, DecodeError, ErrorKind};
use crate::sse::{SseEvent, SseParser};

const TEXT: &str = include_str!("../../../tests/fixtures/anthropic/stream_text.sse");
const TOOL_USE: &str = include_str!("../../../tests/fixtures/anthropic/stream_tool_use.sse");
const THINKING: &str = include_str!("../../../tests/fixtures/anthropic/stream_thinking.sse");
const ERROR: &str = include_str!("../../../tests/fixtures/anthropic/stream_error.sse");

#[derive(Debug, PartialEq)]
struct Decoded {
    events: Vec<ChatEvent>,
    error: Option<DecodeError>,
    skipped: u64,
    done: bool,
}

fn decode_chunks(chunks: &[&[u8]], mode: ResponseMode) -> Decoded {
    let mut parser = SseParser::new();
    let mut decoder = MessagesStreamDecoder::new(mode);
    let mut sse = Vec::new();
    for chunk in chunks {
        sse.extend(parser.feed(chunk));
    }
    sse.extend(parser.finish());
    let mut events = Vec::new();
    let mut error = None;
    for event in &sse {
        match decoder.decode(event) {
            Ok(out) => events.extend(out),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Decoded {
        events,
        error,
        skipped: decoder.skipped(),
        done: decoder.is_done(),
    }
}

fn decode(text: &str) -> Decoded {
    decode_chunks(&[text.as_bytes()], ResponseMode::Plain)
}

fn text(t: &str) -> ChatEvent {
    ChatEvent::TextDelta {
        choice: 0,
        text: t.into(),
    }
}

fn usage(input: u64, output: u64, cached: u64) -> ChatEvent {
    ChatEvent::Usage(Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        ..Usage::default()
    })
}

fn start(id: &str) -> ChatEvent {
    ChatEvent::Start {
        id: id.into(),
        model: "claude-sonnet-4-5-20250929".into(),
        created: 0,
    }
}

fn finish(reason: FinishReason) -> ChatEvent {
    ChatEvent::Finish { choice: 0, reason }
}

#[test]
fn plain_text_stream_with_ping_and_unknown_event() {
    let d = decode(TEXT);
    assert_eq!(
        d.events,
        vec![
            start("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"),
            usage(125, 1, 100),
            text("Hello"),
            text("!"),
            finish(FinishReason::Stop),
            usage(125, 15, 100),
        ]
    );
    assert_eq!(d.error, None);
    assert_eq!(d.skipped, 1);
    assert!(d.done);
}

#[test]
fn tool_use_stream_counts_tool_calls_not_blocks() {
    let d = decode(TOOL_USE);
    let tool = |index: u32, id: &str| ChatEvent::ToolCallStart {
        choice: 0,
        index,
        id: id.into(),
        name: "get_weather".into(),
    };
    let args = |index: u32, a: &str| ChatEvent::ToolCallDelta {
        choice: 0,
        index,
        arguments: a.into(),
    };
    assert_eq!(
        d.events,
        vec![
            start("msg_014p7gG3wDgGV9EUtLvnow3U"),
            usage(472, 2, 0),
            text("Checking both."),
            tool(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6"),
            args(0, "{\"city\": \"Pa"),
            args(0, "ris\"}"),
            tool(1, "toolu_02"),
            args(1, "{\"city\": \"Berlin\"}"),
            finish(FinishReason::ToolCalls),
            usage(472, 89, 0),
        ]
    );
    assert_eq!(d.skipped, 0);
    assert!(d.done);
}

#[test]
fn thinking_stream_gives_reasoning_deltas() {
    let d = decode(THINKING);
    assert_eq!(
        d.events,
        vec![
            start("msg_01234"),
            usage(40, 1, 0),
            ChatEvent::ReasoningDelta {
                choice: 0,
                text: "Let me work this out.\n\n27 * 453 = 12231".into()
            },
            text("27 * 453 = 12,231"),
            finish(FinishReason::Length),
            usage(40, 100, 0),
        ]
    );
}

#[test]
fn error_event_is_an_upstream_error() {
    let d = decode(ERROR);
    assert_eq!(d.events.last(), Some(&text("Partial")));
    assert_eq!(
        d.error,
        Some(DecodeError::Upstream {
            kind: "overloaded_error".into(),
            message: "Overloaded".into(),
            retryable: true,
        })
    );
    assert!(!d.done);
}

#[test]
fn json_via_tool_stream_becomes_text() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_j\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"json_response\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let mode = ResponseMode::JsonViaTool {
        tool_name: "json_response".into(),
    };
    let d = decode_chunks(&[stream.as_bytes()], mode);
    let kinds: Vec<&ChatEvent> = d
        .events
        .iter()
        .filter(|e| !matches!(e, ChatEvent::Start { .. } | ChatEvent::Usage(_)))
        .collect();
    assert_eq!(
        kinds,
        vec![&text("{\"a\":"), &text("1}"), &finish(FinishReason::Stop)]
    );
}

#[test]
fn unknown_block_types_are_ignored() {
    let stream = concat!(
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\":1}\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\",\"citation\":{}}}\n\n",
    );
    let d = decode(stream);
    assert_eq!(d.events, vec![]);
    assert_eq!(d.error, None);
}

proptest! {
    #[test]
    fn any_byte_split_gives_the_same_events(
        which in 0usize..4,
        cuts in proptest::collection::vec(0usize..4000, 0..12),
    ) {
        let fixture = [TEXT, TOOL_USE, THINKING, ERROR][which].as_bytes();
        let whole = decode_chunks(&[fixture], ResponseMode::Plain);
        let pieces = decode_chunks(&crate::sse::testing::split_at_cuts(fixture, cuts), ResponseMode::Plain);
        prop_assert_eq!(pieces, whole);
    }
}

/// What a client ends up with: text, reasoning, tool calls with whole arguments, finish and
/// merged usage. Streams that differ only in how they are cut into deltas are equivalent.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    starts: usize,
    text: String,
    reasoning: String,
    tools: BTreeMap<u32, (String, String, String)>,
    finish: Vec<FinishReason>,
    usage: Usage,
}

fn summarise(events: &[ChatEvent]) -> Summary {
    let mut s = Summary::default();
    for event in events {
        match event {
            ChatEvent::Start { .. } => s.starts += 1,
            ChatEvent::TextDelta { text, .. } => s.text.push_str(text),
            ChatEvent::ReasoningDelta { text, .. } => s.reasoning.push_str(text),
            ChatEvent::ToolCallStart {
                index, id, name, ..
            } => {
                s.tools
                    .insert(*index, (id.clone(), name.clone(), String::new()));
            }
            ChatEvent::ToolCallDelta {
                index, arguments, ..
            } => s.tools.get_mut(index).unwrap().2.push_str(arguments),
            ChatEvent::Finish { reason, .. } => s.finish.push(reason.clone()),
            ChatEvent::Usage(u) => s.usage.merge(u),
        }
    }
    s
}

fn encode_all(events: &[ChatEvent]) -> Vec<u8> {
    let mut encoder = MessagesStreamEncoder::new();
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    encoder.finish(&mut out);
    // Nothing may follow the terminal event.
    let len = out.len();
    encoder.finish(&mut out);
    encoder.encode(&text("late"), &mut out);
    assert_eq!(out.len(), len);
    out
}

fn sse_events(bytes: &[u8]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = parser.feed(bytes);
    events.extend(parser.finish());
    events
}

/// Checks Anthropic's stream grammar: event names match data types, blocks open and close in
/// turn with indexes contiguous from 0, exactly one `message_stop`, last.
fn assert_valid_anthropic_stream(bytes: &[u8]) {
    let events = sse_events(bytes);
    let mut open: Option<u64> = None;
    let mut next = 0u64;
    let mut stops = 0;
    for (i, event) in events.iter().enumerate() {
        let data: Value = serde_json::from_str(&event.data).unwrap();
        let kind = data["type"].as_str().unwrap();
        assert_eq!(event.event.as_deref(), Some(kind));
        match kind {
            "message_start" => assert_eq!(i, 0),
            "content_block_start" => {
                assert_eq!(open, None, "a block is already open");
                assert_eq!(data["index"].as_u64(), Some(next));
                open = Some(next);
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open),
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open);
                open = None;
                next += 1;
            }
            "message_delta" => assert_eq!(open, None),
            "message_stop" => {
                stops += 1;
                assert_eq!(i, events.len() - 1);
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(stops, 1);
}

fn openai_order() -> Vec<ChatEvent> {
    let tool = |index: u32, id: &str, name: &str| ChatEvent::ToolCallStart {
        choice: 0,
        index,
        id: id.into(),
        name: name.into(),
    };
    let args = |index: u32, a: &str| ChatEvent::ToolCallDelta {
        choice: 0,
        index,
        arguments: a.into(),
    };
    vec![
        ChatEvent::Start {
            id: "chatcmpl-1".into(),
            model: "gpt-4o".into(),
            created: 1_700_000_000,
        },
        text(""),
        text("Let me "),
        text("check."),
        tool(0, "call_a", "get_weather"),
        args(0, "{\"city\":"),
        tool(1, "call_b", "get_time"),
        args(1, "{\"tz\":"),
        args(0, "\"Paris\"}"),
        args(1, "\"CET\"}"),
        finish(FinishReason::ToolCalls),
        ChatEvent::Usage(Usage {
            input_tokens: 50,
            output_tokens: 30,
            cached_input_tokens: 20,
            ..Usage::default()
        }),
    ]
}

#[test]
fn encoder_output_reads_back_to_equivalent_events() {
    let input = openai_order();
    let bytes = encode_all(&input);
    assert_valid_anthropic_stream(&bytes);
    let d = decode_chunks(&[&bytes], ResponseMode::Plain);
    assert_eq!(d.error, None);
    assert!(d.done);
    assert_eq!(d.skipped, 0);
    assert_eq!(summarise(&d.events), summarise(&input));
    let Some(ChatEvent::Start { id, model, .. }) = d.events.first() else {
        panic!("no start");
    };
    assert_eq!(id, "msg_chatcmpl-1");
    assert_eq!(model, "gpt-4o");
}

#[test]
fn sequential_tool_calls_stream_without_waiting_for_the_end() {
    let mut encoder = MessagesStreamEncoder::new();
    let mut out = Vec::new();
    for event in &openai_order()[..5] {
        encoder.encode(event, &mut out);
    }
    for event in [
        ChatEvent::ToolCallDelta {
            choice: 0,
            index: 0,
            arguments: "{\"city\":\"Paris\"}".into(),
        },
        ChatEvent::ToolCallStart {
            choice: 0,
            index: 1,
            id: "call_b".into(),
            name: "get_time".into(),
        },
    ] {
        encoder.encode(&event, &mut out);
    }
    let starts = sse_events(&out)
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_start"))
        .count();
    // The text block, the first tool call and already the second one.
    assert_eq!(starts, 3);
}

#[test]
fn encoder_carries_reasoning_and_usage_from_message_start() {
    let input = vec![
        ChatEvent::Start {
            id: "msg_x".into(),
            model: "m".into(),
            created: 0,
        },
        ChatEvent::Usage(Usage {
            input_tokens: 7,
            ..Usage::default()
        }),
        ChatEvent::ReasoningDelta {
            choice: 0,
            text: "think".into(),
        },
        text("answer"),
        finish(FinishReason::StopSequence(Some("##".into()))),
    ];
    let bytes = encode_all(&input);
    assert_valid_anthropic_stream(&bytes);
    let first: Value = serde_json::from_str(&sse_events(&bytes)[0].data).unwrap();
    assert_eq!(first["message"]["usage"]["input_tokens"], 7);
    let d = decode_chunks(&[&bytes], ResponseMode::Plain);
    assert_eq!(summarise(&d.events), summarise(&input));
}

#[test]
fn encoder_error_ends_the_stream() {
    let mut encoder = MessagesStreamEncoder::new();
    let mut out = Vec::new();
    encoder.encode(&openai_order()[0], &mut out);
    encoder.encode(&text("partial"), &mut out);
    let err = ClientError {
        status: 502,
        kind: ErrorKind::Upstream,
        code: "upstream_error",
        message: "The upstream failed.".into(),
        param: None,
    };
    encoder.error(&err, &mut out);
    let len = out.len();
    encoder.finish(&mut out);
    encoder.error(&err, &mut out);
    assert_eq!(out.len(), len);
    let events = sse_events(&out);
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["error"]["type"], "api_error");
    assert_eq!(data["type"], "error");
    // The decoder reads it as an upstream error.
    let d = decode_chunks(&[&out], ResponseMode::Plain);
    assert!(matches!(d.error, Some(DecodeError::Upstream { .. })));
}
