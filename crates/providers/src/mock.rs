//! The built-in in-process provider for the demo, tests and benchmarks. Deterministic: the answer
//! is `"echo: "` + the last user message's text (or a greeting when there is none), after
//! `latency_ms`; streams split it into `chunks` pieces `chunk_delay_ms` apart. When the request
//! has tools and forces a call (`tool_choice` required or a named tool), the answer is one call
//! to that tool (the first tool for `required`) with arguments `{}`. When the request asks for
//! JSON (`response_format`), the answer is JSON: `{"echo": text}` for JSON mode, and for a JSON
//! schema the simplest instance of the schema (first `enum` value, `const`, the echo text for
//! strings, minimums for numbers, required properties of objects), so that APIs with an output
//! schema work against the demo. Usage is estimated at one
//! token per four characters, rounded up. Embeddings are unit vectors of 8 dimensions (or
//! `dimensions`) derived from a hash of each input.
//!
//! The mock honours the attempt's time limits the way a remote provider would (a latency above
//! `first_byte` is a first-byte timeout, a chunk delay above `idle` an idle timeout), so that the
//! demo can show fallbacks. It speaks OpenAI's protocol for the fast-path decision but never sets
//! raw bytes: there is no upstream body to forward. Delays use `tokio::time::sleep`, so tests can
//! pause time.

use crate::{ChatEventStream, Provider, ProviderError, TimeoutKind, Upstream};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchboard_types::{
    ChatEvent, ChatRequest, ChatResponse, Choice, ContentPart, EmbedInput, EmbedRequest,
    EmbedResponse, Embedding, FinishReason, Message, Protocol, ResponseFormat, Role, ToolCall,
    ToolChoice, Usage,
};
use tokio::time::Instant;

/// The answer when the request has no user text.
const GREETING: &str = "Hello from Switchboard's mock provider.";
const DEFAULT_CHUNKS: u32 = 8;
const DEFAULT_DIMS: usize = 8;
/// Bounds a client-chosen `dimensions`, so that a request cannot make the mock allocate much.
const MAX_DIMS: usize = 4096;

#[derive(Debug)]
pub(crate) struct Mock {
    latency: Duration,
    chunks: u32,
    chunk_delay: Duration,
}

/// What the mock answers to a request.
enum Answer {
    Text(String),
    Tool { name: String },
}

impl Mock {
    pub(crate) fn new(latency_ms: u64, chunks: Option<u32>, chunk_delay_ms: u64) -> Self {
        Mock {
            latency: Duration::from_millis(latency_ms),
            chunks: chunks.unwrap_or(DEFAULT_CHUNKS).max(1),
            chunk_delay: Duration::from_millis(chunk_delay_ms),
        }
    }

    /// Waits `latency`, as a remote provider takes time to its first byte.
    async fn wait_first_byte(&self, call: &Upstream<'_>) -> Result<(), ProviderError> {
        let limit = call.timeouts.first_byte.min(call.timeouts.total);
        if self.latency > limit {
            tokio::time::sleep(limit).await;
            let kind = if call.timeouts.first_byte <= call.timeouts.total {
                TimeoutKind::FirstByte
            } else {
                TimeoutKind::Total
            };
            return Err(ProviderError::Timeout(kind));
        }
        tokio::time::sleep(self.latency).await;
        Ok(())
    }
}

fn answer(req: &ChatRequest) -> Answer {
    let forced = match &req.tool_choice {
        _ if req.tools.is_empty() => None,
        Some(ToolChoice::Required) => req.tools.first().map(|t| t.name.clone()),
        Some(ToolChoice::Tool(name)) => Some(name.clone()),
        Some(ToolChoice::Auto | ToolChoice::None) | None => None,
    };
    if let Some(name) = forced {
        return Answer::Tool { name };
    }
    let last_user = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(Message::text)
        .filter(|t| !t.is_empty());
    let text = match last_user {
        Some(text) => format!("echo: {text}"),
        None => GREETING.to_owned(),
    };
    Answer::Text(match &req.response_format {
        Some(ResponseFormat::JsonObject) => serde_json::json!({ "echo": text }).to_string(),
        Some(ResponseFormat::JsonSchema { schema, .. }) => instance(schema, &text, 0).to_string(),
        Some(ResponseFormat::Text) | None => text,
    })
}

/// The simplest value satisfying common JSON Schema keywords, strings filled with `text`.
/// Deep or recursive schemas stop at a fixed depth with `null`.
fn instance(schema: &Value, text: &str, depth: u32) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(value) = schema.get("const") {
        return value.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return instance(first, text, depth + 1);
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "object" => {
            let mut out = serde_json::Map::new();
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (name, sub) in props {
                    if required.is_empty() || required.contains(&name.as_str()) {
                        out.insert(name.clone(), instance(sub, text, depth + 1));
                    }
                }
            }
            Value::Object(out)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let item = schema
                .get("items")
                .map_or(Value::Null, |s| instance(s, text, depth + 1));
            Value::Array((0..min.min(8)).map(|_| item.clone()).collect())
        }
        "integer" | "number" => schema.get("minimum").cloned().unwrap_or(Value::from(0)),
        "boolean" => Value::Bool(false),
        "null" => Value::Null,
        _ => Value::String(text.to_owned()),
    }
}

/// One token per four characters, rounded up.
fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from(chars.div_ceil(4)).unwrap_or(u64::MAX)
}

fn usage(req: &ChatRequest, answer: &Answer) -> Usage {
    let system: usize = req
        .system
        .iter()
        .map(|p| match p {
            ContentPart::Text { text } => text.chars().count(),
            _ => 0,
        })
        .sum();
    let turns: usize = req.messages.iter().map(|m| m.text().chars().count()).sum();
    let output = match answer {
        Answer::Text(text) => text.chars().count(),
        Answer::Tool { name } => name.chars().count() + 2,
    };
    Usage {
        input_tokens: estimate_tokens(system + turns),
        output_tokens: estimate_tokens(output),
        ..Usage::default()
    }
}

fn response_id(call: &Upstream<'_>) -> String {
    format!("chatcmpl-mock-{}", call.request_id)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

const TOOL_CALL_ID: &str = "call_mock_0";

/// The reply cut into at most `chunks` pieces of nearly equal length (never an empty piece).
fn split(text: &str, chunks: u32) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars
        .len()
        .div_ceil(usize::try_from(chunks).unwrap_or(1).max(1))
        .max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[async_trait]
impl Provider for Mock {
    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }

    async fn chat(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        self.wait_first_byte(call).await?;
        let answer = answer(req);
        let usage = usage(req, &answer);
        let (message, finish) = match answer {
            Answer::Text(text) => (
                Message::new(Role::Assistant, vec![ContentPart::text(text)]),
                FinishReason::Stop,
            ),
            Answer::Tool { name } => {
                let mut message = Message::new(Role::Assistant, Vec::new());
                message.tool_calls.push(ToolCall {
                    id: TOOL_CALL_ID.into(),
                    name,
                    arguments: "{}".into(),
                });
                (message, FinishReason::ToolCalls)
            }
        };
        Ok(ChatResponse {
            id: response_id(call),
            model: call.model.to_owned(),
            created: now_secs(),
            choices: vec![Choice {
                index: 0,
                message,
                finish_reason: Some(finish),
                logprobs: None,
            }],
            usage: Some(usage),
            system_fingerprint: None,
            raw: None,
        })
    }

    async fn chat_stream(
        &self,
        call: &Upstream<'_>,
        req: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError> {
        let deadline = Instant::now() + call.timeouts.total;
        self.wait_first_byte(call).await?;
        let answer = answer(req);
        let usage = usage(req, &answer);
        // Each event with the wait before it. Start, the content, Finish, Usage: the canonical
        // order (usage last, as OpenAI's include_usage chunk comes last).
        let mut steps = VecDeque::new();
        steps.push_back((
            Duration::ZERO,
            ChatEvent::Start {
                id: response_id(call),
                model: call.model.to_owned(),
                created: now_secs(),
            },
        ));
        let finish = match answer {
            Answer::Text(text) => {
                for (i, piece) in split(&text, self.chunks).into_iter().enumerate() {
                    let wait = if i == 0 {
                        Duration::ZERO
                    } else {
                        self.chunk_delay
                    };
                    steps.push_back((
                        wait,
                        ChatEvent::TextDelta {
                            choice: 0,
                            text: piece,
                        },
                    ));
                }
                FinishReason::Stop
            }
            Answer::Tool { name } => {
                steps.push_back((
                    Duration::ZERO,
                    ChatEvent::ToolCallStart {
                        choice: 0,
                        index: 0,
                        id: TOOL_CALL_ID.into(),
                        name,
                    },
                ));
                steps.push_back((
                    Duration::ZERO,
                    ChatEvent::ToolCallDelta {
                        choice: 0,
                        index: 0,
                        arguments: "{}".into(),
                    },
                ));
                FinishReason::ToolCalls
            }
        };
        steps.push_back((
            Duration::ZERO,
            ChatEvent::Finish {
                choice: 0,
                reason: finish,
            },
        ));
        steps.push_back((Duration::ZERO, ChatEvent::Usage(usage)));
        let idle = call.timeouts.idle;
        let stream = futures::stream::unfold(Some(steps), move |steps| async move {
            let mut steps = steps?;
            let (wait, event) = steps.pop_front()?;
            if !wait.is_zero() {
                let now = Instant::now();
                let bound = (now + idle).min(deadline);
                if now + wait > bound {
                    tokio::time::sleep_until(bound).await;
                    let kind = if bound >= deadline {
                        TimeoutKind::Total
                    } else {
                        TimeoutKind::Idle
                    };
                    return Some((Err(ProviderError::Timeout(kind)), None));
                }
                tokio::time::sleep(wait).await;
            }
            Some((Ok(event), Some(steps)))
        });
        Ok(stream.boxed())
    }

    async fn embed(
        &self,
        call: &Upstream<'_>,
        req: &EmbedRequest,
    ) -> Result<EmbedResponse, ProviderError> {
        self.wait_first_byte(call).await?;
        let dims = req
            .dimensions
            .and_then(|d| usize::try_from(d).ok())
            .unwrap_or(DEFAULT_DIMS)
            .clamp(1, MAX_DIMS);
        let (data, tokens) = match &req.input {
            EmbedInput::Texts(texts) => (
                texts.iter().map(|t| vector(t.as_bytes(), dims)).collect(),
                texts
                    .iter()
                    .map(|t| estimate_tokens(t.chars().count()))
                    .sum(),
            ),
            EmbedInput::Tokens(inputs) => (
                inputs
                    .iter()
                    .map(|ids| {
                        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
                        vector(&bytes, dims)
                    })
                    .collect(),
                inputs
                    .iter()
                    .map(|ids| u64::try_from(ids.len()).unwrap_or(u64::MAX))
                    .sum(),
            ),
        };
        Ok(EmbedResponse {
            model: call.model.to_owned(),
            data,
            usage: Usage {
                input_tokens: tokens,
                ..Usage::default()
            },
        })
    }
}

/// A deterministic unit vector from the input's FNV-1a hash, expanded with splitmix64: stable
/// across runs, platforms and Rust versions (unlike `DefaultHasher`).
fn vector(input: &[u8], dims: usize) -> Embedding {
    let mut state = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut values: Vec<f32> = (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // The top 24 bits as a fraction in [0, 1), then into [-1, 1).
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            unit * 2.0 - 1.0
        })
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|v| *v /= norm);
    }
    Embedding::Float(values)
}

#[cfg(test)]
mod tests;
