//! Building a Chat Completions request body for an OpenAI-compatible upstream: the
//! same-protocol fast path, or a conversion from the canonical [`ChatRequest`].

use super::wire::{
    OutContent, OutFunctionCall, OutFunctionDef, OutImageUrl, OutMessage, OutPart, OutRequest,
    OutStreamOptions, OutTool, OutToolCall,
};
use crate::codec::{ResponseMode, UpstreamBody};
use crate::error::ConvertError;
use serde_json::{json, Map, Value};
use switchboard_types::{
    ChatRequest, ContentPart, ImageSource, Message, Protocol, ResponseFormat, Role, Tool,
    ToolChoice,
};

/// The body for an OpenAI-compatible upstream.
///
/// Fast path: a request parsed from an OpenAI client is forwarded as the client wrote it, every
/// vendor field included, with `model` replaced and `stream` set from `req.stream` (streams
/// always ask for usage, which the gateway needs for billing).
///
/// Otherwise the body is built from canonical. Choices made there:
/// - `max_tokens` is written as `max_tokens`, not `max_completion_tokens`: vLLM, Ollama,
///   llama.cpp and older Azure api-versions only know the former, and OpenAI still accepts it
///   for non-reasoning models.
/// - Thinking parts and `thinking_budget` (from Anthropic clients) are dropped: OpenAI has no
///   field for either, the answer is valid without them, and failing would break every
///   Claude-to-GPT fallback of a client that enables thinking. `reasoning_effort` is forwarded
///   when the client set it.
/// - `top_k` has no OpenAI equivalent and changes sampling, so it is refused (400).
/// - `tool_choice` and `parallel_tool_calls` are sent only with tools: OpenAI rejects them
///   otherwise.
/// - `is_error` of tool results has no OpenAI field; the result text says what failed.
/// - `extra` is not forwarded: it carries no protocol tag, and another format's vendor fields
///   would make the upstream answer 400.
pub fn chat_request_body(req: &ChatRequest, model: &str) -> Result<UpstreamBody, ConvertError> {
    if let Some(raw) = req.raw.as_ref().filter(|r| r.protocol == Protocol::OpenAi) {
        return Ok(fast_path(&raw.object, req.stream, model));
    }
    if let Some(err) = crate::anthropic::unconvertible(req) {
        return Err(err);
    }
    if req.top_k.is_some() {
        return Err(ConvertError::unsupported(
            "top_k",
            "`top_k` is not supported by OpenAI models; remove it or use another model.",
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = system_message(&req.system, "system")? {
        messages.push(system);
    }
    for (i, msg) in req.messages.iter().enumerate() {
        if let Some(m) = out_message(msg, i)? {
            messages.push(m);
        }
    }
    let has_tools = !req.tools.is_empty();
    let out = OutRequest {
        model,
        messages,
        tools: req.tools.iter().map(out_tool).collect(),
        tool_choice: req
            .tool_choice
            .as_ref()
            .filter(|_| has_tools)
            .map(tool_choice_value),
        parallel_tool_calls: req.parallel_tool_calls.filter(|_| has_tools),
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: (!req.stop.is_empty()).then_some(req.stop.as_slice()),
        seed: req.seed,
        n: req.n,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_format: req.response_format.as_ref().map(response_format_value),
        logprobs: req.logprobs,
        top_logprobs: req.top_logprobs,
        reasoning_effort: req.reasoning_effort.as_deref(),
        user: req.user.as_deref(),
        stream: req.stream,
        stream_options: req.stream.then_some(OutStreamOptions {
            include_usage: true,
        }),
    };
    Ok(UpstreamBody {
        body: super::to_json(&out),
        mode: ResponseMode::Plain,
    })
}

fn fast_path(object: &Map<String, Value>, stream: bool, model: &str) -> UpstreamBody {
    UpstreamBody {
        body: super::to_json(&FastPath {
            object,
            stream,
            model,
        }),
        mode: ResponseMode::Plain,
    }
}

/// The client's object written out with `model` replaced and the stream fields set, without
/// cloning the object: this runs on every same-protocol request.
struct FastPath<'a> {
    object: &'a Map<String, Value>,
    stream: bool,
    model: &'a str,
}

impl serde::Serialize for FastPath<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.object {
            if !matches!(key.as_str(), "model" | "stream" | "stream_options") {
                map.serialize_entry(key, value)?;
            }
        }
        map.serialize_entry("model", self.model)?;
        if self.stream {
            map.serialize_entry("stream", &true)?;
            // Keep the client's other stream options; usage is always asked for upstream.
            let client_options = self.object.get("stream_options").and_then(Value::as_object);
            map.serialize_entry("stream_options", &StreamOptions(client_options))?;
        }
        map.end()
    }
}

struct StreamOptions<'a>(Option<&'a Map<String, Value>>);

impl serde::Serialize for StreamOptions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.into_iter().flatten() {
            if key != "include_usage" {
                map.serialize_entry(key, value)?;
            }
        }
        map.serialize_entry("include_usage", &true)?;
        map.end()
    }
}

/// A `system` message from text parts (thinking dropped, images refused). `None` when nothing
/// remains.
fn system_message<'a>(
    parts: &'a [ContentPart],
    path: &str,
) -> Result<Option<OutMessage<'a>>, ConvertError> {
    let mut texts = Vec::new();
    for part in parts {
        match part {
            ContentPart::Text { text } => texts.push(OutPart::Text { text }),
            ContentPart::Thinking { .. } => {}
            ContentPart::Image { .. } => {
                return Err(ConvertError::unsupported(
                    path,
                    "OpenAI system messages take text only, not images.",
                ))
            }
        }
    }
    if texts.is_empty() {
        return Ok(None);
    }
    Ok(Some(plain_message("system", simplify(texts))))
}

fn plain_message<'a>(role: &'static str, content: OutContent<'a>) -> OutMessage<'a> {
    OutMessage {
        role,
        content: Some(content),
        name: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
        refusal: None,
    }
}

/// A single text part is sent as a plain string, the form every compatible server accepts.
fn simplify(mut parts: Vec<OutPart<'_>>) -> OutContent<'_> {
    if let [OutPart::Text { text }] = parts.as_slice() {
        return OutContent::Text((*text).to_owned());
    }
    if parts.is_empty() {
        return OutContent::Text(String::new());
    }
    OutContent::Parts(std::mem::take(&mut parts))
}

/// Text of an assistant or tool message, joined; images refused, thinking dropped.
fn joined_text(msg: &Message, path: &str) -> Result<String, ConvertError> {
    let mut text = String::new();
    for part in &msg.content {
        match part {
            ContentPart::Text { text: t } => text.push_str(t),
            ContentPart::Thinking { .. } => {}
            ContentPart::Image { .. } => {
                return Err(ConvertError::unsupported(
                    path,
                    "OpenAI takes images only in user messages.",
                ))
            }
        }
    }
    Ok(text)
}

fn out_message(msg: &Message, i: usize) -> Result<Option<OutMessage<'_>>, ConvertError> {
    let path = format!("messages[{i}].content");
    let mut out = match msg.role {
        // Canonical keeps system apart; tolerate one in the turns and keep it in place.
        Role::System => return system_message(&msg.content, &path),
        Role::User => {
            let mut parts = Vec::with_capacity(msg.content.len());
            for part in &msg.content {
                match part {
                    ContentPart::Text { text } => parts.push(OutPart::Text { text }),
                    ContentPart::Image { source, detail } => parts.push(OutPart::ImageUrl {
                        image_url: OutImageUrl {
                            url: match source {
                                ImageSource::Url(url) => url.clone(),
                                ImageSource::Base64 { media_type, data } => {
                                    format!("data:{media_type};base64,{data}")
                                }
                            },
                            detail: detail.as_deref(),
                        },
                    }),
                    ContentPart::Thinking { .. } => {}
                }
            }
            plain_message("user", simplify(parts))
        }
        Role::Assistant => {
            let text = joined_text(msg, &path)?;
            // `null` content is the documented form for a turn of tool calls (or a refusal)
            // only; otherwise OpenAI wants a string, even empty.
            let content =
                if text.is_empty() && (!msg.tool_calls.is_empty() || msg.refusal.is_some()) {
                    None
                } else {
                    Some(OutContent::Text(text))
                };
            OutMessage {
                role: "assistant",
                content,
                name: None,
                tool_calls: msg
                    .tool_calls
                    .iter()
                    .map(|c| OutToolCall {
                        id: &c.id,
                        kind: "function",
                        function: OutFunctionCall {
                            name: &c.name,
                            arguments: &c.arguments,
                        },
                    })
                    .collect(),
                tool_call_id: None,
                refusal: msg.refusal.as_deref(),
            }
        }
        Role::Tool => {
            let Some(id) = msg.tool_call_id.as_deref() else {
                return Err(ConvertError::invalid(
                    format!("messages[{i}].tool_call_id"),
                    format!("`messages[{i}]` is a tool result without `tool_call_id`."),
                ));
            };
            let mut out = plain_message("tool", OutContent::Text(joined_text(msg, &path)?));
            out.tool_call_id = Some(id);
            out
        }
    };
    out.name = msg.name.as_deref();
    Ok(Some(out))
}

fn out_tool(tool: &Tool) -> OutTool<'_> {
    OutTool {
        kind: "function",
        function: OutFunctionDef {
            name: &tool.name,
            description: tool.description.as_deref(),
            parameters: &tool.parameters,
            strict: tool.strict,
        },
    }
}

fn tool_choice_value(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

fn response_format_value(format: &ResponseFormat) -> Value {
    match format {
        ResponseFormat::Text => json!({"type": "text"}),
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema {
            name,
            schema,
            strict,
            description,
        } => {
            let mut s = Map::new();
            s.insert("name".to_owned(), json!(name));
            if let Some(d) = description {
                s.insert("description".to_owned(), json!(d));
            }
            s.insert("schema".to_owned(), schema.clone());
            if let Some(strict) = strict {
                s.insert("strict".to_owned(), json!(strict));
            }
            json!({"type": "json_schema", "json_schema": s})
        }
    }
}
