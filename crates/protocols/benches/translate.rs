//! Criterion benches of the gateway's hot conversions: parsing a client's request, rendering it
//! for another provider, translating whole responses between formats, and the SSE stream
//! codecs (bytes -> canonical events -> bytes).
//!
//! Every payload is built here, in the providers' documented wire formats, in two sizes where
//! size matters: `small` (one short message or sentence) and `large` (a 50-message
//! conversation with tools, or an ~8 KiB answer with tool calls). Results and the command that
//! reproduces them: `docs/benchmarks/criterion.md`.
//!
//! Run: `cargo bench -p switchboard-protocols --bench translate`
//! (add `-- --warm-up-time 1 --measurement-time 3` for a quick pass, or a name filter).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench setup: the payloads are fixed and must convert; a failure is a bug to see at once"
)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use switchboard_protocols::{
    anthropic, gemini, openai, ResponseMode, SseParser, StreamDecoder, StreamEncoder,
};
use switchboard_types::{ChatEvent, FinishReason, Usage};

/// What Anthropic gets as `max_tokens` when the client sent none (the providers' default).
const DEFAULT_MAX_TOKENS: u32 = 4096;

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

fn to_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON values serialise")
}

/// Prose of about `len` bytes (ASCII with a few multi-byte characters, as model output has).
fn prose(len: usize, seed: usize) -> String {
    const WORDS: &[&str] = &[
        "the",
        "gateway",
        "routes",
        "each",
        "request",
        "to",
        "a",
        "provider",
        "and",
        "streams",
        "tokens",
        "back",
        "while",
        "budgets",
        "limits",
        "café",
        "naïve",
        "résumé",
        "latency",
        "over",
        "under",
        "with",
        "retries",
        "fallbacks",
        "cache",
        "hits",
        "—",
        "model",
        "answer",
        "quickly",
        "ünïcode",
        "safely",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut i = seed;
    while out.len() < len {
        if !out.is_empty() {
            out.push_str(if i.is_multiple_of(13) { ". " } else { " " });
        }
        out.push_str(WORDS[i % WORDS.len()]);
        i = i.wrapping_mul(31).wrapping_add(7) % 1009;
    }
    out
}

/// OpenAI function tools with JSON-schema parameters, as agents send them.
fn openai_tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather of a city, in metric units.",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            }, "required": ["city"]}
        }},
        {"type": "function", "function": {
            "name": "search_docs",
            "description": "Full-text search over the internal documentation.",
            "parameters": {"type": "object", "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
                "filters": {"type": "object", "properties": {
                    "team": {"type": "string"},
                    "since": {"type": "string", "format": "date"}
                }}
            }, "required": ["query"]}
        }},
        {"type": "function", "function": {
            "name": "create_ticket",
            "description": "Files a ticket in the issue tracker.",
            "parameters": {"type": "object", "properties": {
                "title": {"type": "string"},
                "body": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "priority": {"type": "string", "enum": ["low", "medium", "high"]}
            }, "required": ["title", "body"]}
        }},
        {"type": "function", "function": {
            "name": "run_sql",
            "description": "Runs a read-only SQL query on the analytics replica.",
            "parameters": {"type": "object", "properties": {
                "sql": {"type": "string"},
                "timeout_ms": {"type": "integer"}
            }, "required": ["sql"]}
        }}
    ])
}

/// `POST /v1/chat/completions`, one user message.
fn openai_request_small() -> Vec<u8> {
    to_bytes(&json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello in French, in one short sentence."}],
        "max_tokens": 256,
        "temperature": 0.7
    }))
}

/// `POST /v1/chat/completions`, 50 messages: a system prompt, 12 rounds of
/// user -> assistant tool calls -> tool result -> assistant answer, a last user message; four
/// tools.
fn openai_request_large() -> Vec<u8> {
    let mut messages = vec![json!({"role": "system", "content": prose(1200, 1)})];
    for round in 0..12 {
        let id = format!("call_{round:02}_aB3xYz9QkLmN");
        messages.push(json!({"role": "user", "content": prose(300, round + 2)}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {
                "name": "search_docs",
                "arguments": format!("{{\"query\":\"rate limits round {round}\",\"limit\":5}}")
            }}
        ]}));
        messages.push(
            json!({"role": "tool", "tool_call_id": id, "content": to_string(&json!({
                "results": [
                    {"title": "Rate limits", "snippet": prose(160, round + 3)},
                    {"title": "Budgets", "snippet": prose(160, round + 4)}
                ]
            }))}),
        );
        messages.push(json!({"role": "assistant", "content": prose(700, round + 5)}));
    }
    messages.push(json!({"role": "user", "content": [
        {"type": "text", "text": prose(200, 99)}
    ]}));
    assert_eq!(messages.len(), 50);
    to_bytes(&json!({
        "model": "gpt-4o",
        "messages": messages,
        "tools": openai_tools(),
        "tool_choice": "auto",
        "max_completion_tokens": 2048,
        "temperature": 0.2,
        "stream": true,
        "stream_options": {"include_usage": true}
    }))
}

fn to_string(value: &Value) -> String {
    serde_json::to_string(value).expect("JSON values serialise")
}

/// The answer text of the responses: one sentence, or about 8 KiB.
fn answer_text(large: bool) -> String {
    if large {
        prose(8 * 1024, 11)
    } else {
        "Bonjour ! Comment allez-vous ?".to_owned()
    }
}

/// An OpenAI chat completion; the large one also calls two tools.
fn openai_response(large: bool) -> Vec<u8> {
    let mut message = json!({"role": "assistant", "content": answer_text(large), "refusal": null});
    if large {
        message["tool_calls"] = json!([
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "search_docs", "arguments": "{\"query\":\"budgets\",\"limit\":5}"}}
        ]);
    }
    to_bytes(&json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1_741_569_952,
        "model": "gpt-4o-2024-08-06",
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": if large { "tool_calls" } else { "stop" }
        }],
        "usage": {
            "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035"
    }))
}

/// An Anthropic Messages response; the large one also uses two tools.
fn anthropic_response(large: bool) -> Vec<u8> {
    let mut content = vec![json!({"type": "text", "text": answer_text(large)})];
    if large {
        content.push(
            json!({"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}),
        );
        content.push(
            json!({"type": "tool_use", "id": "toolu_01B19q90qw90lq917835lq0",
            "name": "search_docs", "input": {"query": "budgets", "limit": 5}}),
        );
    }
    to_bytes(&json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": if large { "tool_use" } else { "end_turn" },
        "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1920}
    }))
}

/// A Gemini `generateContent` response; the large one also calls two functions.
fn gemini_response(large: bool) -> Vec<u8> {
    let mut parts = vec![json!({"text": answer_text(large)})];
    if large {
        parts.push(
            json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "CiQB0e2Kb1cL"}),
        );
        parts.push(json!({"functionCall": {"name": "search_docs",
            "args": {"query": "budgets", "limit": 5}}}));
    }
    to_bytes(&json!({
        "candidates": [{
            "content": {"parts": parts, "role": "model"},
            "finishReason": "STOP",
            "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 2006, "candidatesTokenCount": 300,
            "totalTokenCount": 2306, "cachedContentTokenCount": 1920},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mZVTaOXqK9GU"
    }))
}

/// 20 text pieces of a streamed answer (a few words each, as providers send them).
fn stream_pieces() -> Vec<String> {
    (0..20).map(|i| format!(" {}", prose(18, i + 40))).collect()
}

/// An OpenAI chat-completion stream: 20 `chat.completion.chunk` events (role, 18 content
/// deltas, finish), the usage chunk and `[DONE]`.
fn openai_stream() -> Vec<u8> {
    let chunk = |delta: Value, finish: Value| {
        json!({
            "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1_694_268_190,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "usage": null
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    for piece in stream_pieces().into_iter().take(18) {
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    assert_eq!(events.len(), 20);
    events.push(json!({
        "id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1_694_268_190,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 40, "total_tokens": 49,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
    }));
    let mut out = Vec::new();
    for event in &events {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&to_bytes(event));
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

/// An Anthropic Messages stream: `message_start`, a text block of 16 deltas with a `ping`, a
/// `tool_use` block of 3 `input_json_delta`s, `message_delta` and `message_stop` (27 events).
fn anthropic_stream() -> Vec<u8> {
    let mut events: Vec<(&str, Value)> = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 472, "output_tokens": 2,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": ""}}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    for piece in stream_pieces().into_iter().take(16) {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push((
        "content_block_start",
        json!({"type": "content_block_start", "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather", "input": {}}}),
    ));
    for partial in ["", "{\"city\": \"Pa", "ris\", \"unit\": \"celsius\"}"] {
        events.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": partial}}),
        ));
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 1}),
    ));
    events.push((
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": null},
        "usage": {"output_tokens": 89}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    assert_eq!(events.len(), 27);
    let mut out = Vec::new();
    for (name, data) in &events {
        out.extend_from_slice(format!("event: {name}\ndata: ").as_bytes());
        out.extend_from_slice(&to_bytes(data));
        out.extend_from_slice(b"\n\n");
    }
    out
}

/// A Gemini `streamGenerateContent?alt=sse` stream: 20 chunks, the last with `finishReason`.
fn gemini_stream() -> Vec<u8> {
    let mut out = Vec::new();
    let pieces = stream_pieces();
    for (i, piece) in pieces.iter().enumerate() {
        let mut candidate = json!({"content": {"parts": [{"text": piece}], "role": "model"},
            "index": 0});
        if i + 1 == pieces.len() {
            candidate["finishReason"] = json!("STOP");
        }
        let chunk = json!({
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 2 * (i + 1),
                "totalTokenCount": 12 + 2 * (i + 1)},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "mZVTaOXqK9GU"
        });
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&to_bytes(&chunk));
        out.extend_from_slice(b"\r\n\r\n");
    }
    out
}

/// Canonical events of a streamed answer: `Start`, 18 text deltas, a tool call in 3 pieces,
/// `Finish` and `Usage` (25 events).
fn canonical_events() -> Vec<ChatEvent> {
    let mut events = vec![ChatEvent::Start {
        id: "chatcmpl-123".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        created: 1_694_268_190,
    }];
    for text in stream_pieces().into_iter().take(18) {
        events.push(ChatEvent::TextDelta { choice: 0, text });
    }
    events.push(ChatEvent::ToolCallStart {
        choice: 0,
        index: 0,
        id: "call_1".to_owned(),
        name: "get_weather".to_owned(),
    });
    for arguments in ["{\"city\":", "\"Paris\",", "\"unit\":\"celsius\"}"] {
        events.push(ChatEvent::ToolCallDelta {
            choice: 0,
            index: 0,
            arguments: arguments.to_owned(),
        });
    }
    events.push(ChatEvent::Finish {
        choice: 0,
        reason: FinishReason::ToolCalls,
    });
    events.push(ChatEvent::Usage(Usage {
        input_tokens: 472,
        output_tokens: 89,
        cached_input_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
    }));
    assert_eq!(events.len(), 25);
    events
}

// ---------------------------------------------------------------------------------------------
// Benches
// ---------------------------------------------------------------------------------------------

/// Client request in (OpenAI), provider request bodies out.
fn requests(c: &mut Criterion) {
    for (size, body) in [
        ("small", openai_request_small()),
        ("large", openai_request_large()),
    ] {
        let req = openai::parse_chat_request(&body).unwrap();
        // Sanity: both targets accept the request.
        let anthropic_len =
            anthropic::messages_request_body(&req, "claude-sonnet-4-5", DEFAULT_MAX_TOKENS)
                .unwrap()
                .body
                .len();
        let gemini_len = gemini::generate_content_body(&req).unwrap().body.len();

        let mut group = c.benchmark_group(format!("request/{size}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("parse_openai", |b| {
            b.iter(|| openai::parse_chat_request(black_box(&body)).unwrap());
        });
        group.throughput(Throughput::Bytes(anthropic_len as u64));
        group.bench_function("render_anthropic", |b| {
            b.iter(|| {
                anthropic::messages_request_body(
                    black_box(&req),
                    "claude-sonnet-4-5",
                    DEFAULT_MAX_TOKENS,
                )
                .unwrap()
            });
        });
        group.throughput(Throughput::Bytes(gemini_len as u64));
        group.bench_function("render_gemini", |b| {
            b.iter(|| gemini::generate_content_body(black_box(&req)).unwrap());
        });
        group.finish();
    }
}

/// Provider response in, the other client format out (parse + render in one iteration).
fn responses(c: &mut Criterion) {
    for (size, large) in [("small", false), ("large", true)] {
        let openai_body = Bytes::from(openai_response(large));
        let anthropic_body = Bytes::from(anthropic_response(large));
        let gemini_body = Bytes::from(gemini_response(large));

        let mut group = c.benchmark_group(format!("response/{size}"));
        group.throughput(Throughput::Bytes(openai_body.len() as u64));
        group.bench_function("openai_to_anthropic", |b| {
            b.iter(|| {
                let resp = openai::parse_chat_response(
                    black_box(openai_body.clone()),
                    &ResponseMode::Plain,
                )
                .unwrap();
                anthropic::render_messages_response(&resp)
            });
        });
        group.throughput(Throughput::Bytes(anthropic_body.len() as u64));
        group.bench_function("anthropic_to_openai", |b| {
            b.iter(|| {
                let resp = anthropic::parse_messages_response(
                    black_box(anthropic_body.clone()),
                    &ResponseMode::Plain,
                )
                .unwrap();
                openai::render_chat_response(&resp)
            });
        });
        group.throughput(Throughput::Bytes(gemini_body.len() as u64));
        group.bench_function("gemini_to_openai", |b| {
            b.iter(|| {
                let resp = gemini::parse_generate_response(
                    black_box(gemini_body.clone()),
                    "gemini-2.5-flash",
                )
                .unwrap();
                openai::render_chat_response(&resp)
            });
        });
        group.bench_function("gemini_to_anthropic", |b| {
            b.iter(|| {
                let resp = gemini::parse_generate_response(
                    black_box(gemini_body.clone()),
                    "gemini-2.5-flash",
                )
                .unwrap();
                anthropic::render_messages_response(&resp)
            });
        });
        group.finish();
    }
}

/// Runs a whole upstream stream through the SSE parser and a decoder; returns the number of
/// canonical events.
fn decode_stream(body: &[u8], decoder: &mut dyn StreamDecoder) -> usize {
    let mut parser = SseParser::new();
    let mut count = 0;
    for event in parser.feed(body).iter().chain(parser.finish().iter()) {
        count += decoder.decode(event).unwrap().len();
    }
    count
}

/// SSE bytes from a provider -> canonical events.
fn sse_decode(c: &mut Criterion) {
    let openai_body = openai_stream();
    let anthropic_body = anthropic_stream();
    let gemini_body = gemini_stream();
    // Sanity: each stream decodes to events and reaches its end.
    {
        let mut d = openai::ChatStreamDecoder::new(ResponseMode::Plain);
        assert!(decode_stream(&openai_body, &mut d) >= 20 && d.is_done());
        let mut d = anthropic::MessagesStreamDecoder::new(ResponseMode::Plain);
        assert!(decode_stream(&anthropic_body, &mut d) >= 20 && d.is_done());
        let mut d = gemini::GenerateStreamDecoder::with_created("gemini-2.5-flash", 1);
        assert!(decode_stream(&gemini_body, &mut d) >= 20);
    }

    let mut group = c.benchmark_group("sse_decode");
    group.throughput(Throughput::Bytes(openai_body.len() as u64));
    group.bench_function("openai_20_chunks", |b| {
        b.iter(|| {
            let mut d = openai::ChatStreamDecoder::new(ResponseMode::Plain);
            decode_stream(black_box(&openai_body), &mut d)
        });
    });
    group.throughput(Throughput::Bytes(anthropic_body.len() as u64));
    group.bench_function("anthropic_27_events", |b| {
        b.iter(|| {
            let mut d = anthropic::MessagesStreamDecoder::new(ResponseMode::Plain);
            decode_stream(black_box(&anthropic_body), &mut d)
        });
    });
    group.throughput(Throughput::Bytes(gemini_body.len() as u64));
    group.bench_function("gemini_20_chunks", |b| {
        b.iter(|| {
            let mut d = gemini::GenerateStreamDecoder::with_created("gemini-2.5-flash", 1);
            decode_stream(black_box(&gemini_body), &mut d)
        });
    });
    group.finish();
}

/// Encodes canonical events for a client, as the server does: one `encode` per event, then
/// `finish`. Returns the SSE bytes.
fn encode_stream(events: &[ChatEvent], encoder: &mut dyn StreamEncoder) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        encoder.encode(event, &mut out);
    }
    encoder.finish(&mut out);
    out
}

/// Canonical events -> SSE bytes in a client's format.
fn sse_encode(c: &mut Criterion) {
    let events = canonical_events();
    let mut group = c.benchmark_group("sse_encode");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("openai_25_events", |b| {
        b.iter(|| {
            encode_stream(
                black_box(&events),
                &mut openai::ChatStreamEncoder::new(true),
            )
        });
    });
    group.bench_function("anthropic_25_events", |b| {
        b.iter(|| {
            encode_stream(
                black_box(&events),
                &mut anthropic::MessagesStreamEncoder::new(),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, requests, responses, sse_decode, sse_encode);
criterion_main!(benches);
