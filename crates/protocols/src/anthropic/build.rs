//! Provider side: the body of `POST /v1/messages` for an Anthropic target.
//!
//! Fast path: a request that came in as Anthropic is forwarded as the client wrote it, with only
//! `model` replaced (so `cache_control`, documents, server tools and unknown fields survive).
//! Otherwise the body is built from the canonical request, adapting to Anthropic's rules:
//! system text apart from the turns, strict user/assistant alternation, tool results in a user
//! turn right after the `tool_use` turn, `max_tokens` required, and JSON output emulated with a
//! forced tool (see `ResponseMode::JsonViaTool`). Parameters Anthropic cannot honour are refused
//! with `ConvertError::Unsupported` rather than silently dropped.

use serde_json::{json, Map, Value};
use switchboard_types::{
    ChatRequest, ContentPart, ImageSource, Message, Protocol, RawBody, ResponseFormat, Role,
    ToolChoice,
};

use super::request::unconvertible;
use crate::codec::{ResponseMode, UpstreamBody};
use crate::error::ConvertError;

/// Name of the forced tool that carries `response_format: json_object` output.
const JSON_TOOL: &str = "json_response";

/// Thinking budgets for OpenAI's `reasoning_effort`, used when no explicit budget is given.
/// 1024 is Anthropic's minimum budget; each step up is four times the previous one.
fn effort_budget(effort: &str) -> Result<Option<u32>, ConvertError> {
    match effort {
        "none" => Ok(None),
        "minimal" | "low" => Ok(Some(1024)),
        "medium" => Ok(Some(4096)),
        "high" => Ok(Some(16384)),
        other => Err(ConvertError::unsupported(
            "reasoning_effort",
            format!("reasoning_effort `{other}` is not supported by the target (Anthropic); use low, medium or high."),
        )),
    }
}

/// Builds the upstream body. See the module documentation for the rules.
pub fn messages_request_body(
    req: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<UpstreamBody, ConvertError> {
    if let Some(raw) = req
        .raw
        .as_ref()
        .filter(|r| r.protocol == Protocol::Anthropic)
    {
        return fast_path(raw, req, model, default_max_tokens);
    }
    if let Some(err) = unconvertible(req) {
        return Err(err);
    }
    refuse_unsupported(req)?;

    let mut body = Map::new();
    body.insert("model".into(), json!(model));

    let mut system = system_blocks(&req.system, "system")?;
    let messages = build_messages(&req.messages, &mut system)?;
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));

    let budget = match (req.thinking_budget, req.reasoning_effort.as_deref()) {
        (Some(budget), _) => Some(budget),
        (None, Some(effort)) => effort_budget(effort)?,
        (None, None) => None,
    };
    let mut max_tokens = req.max_tokens.unwrap_or(default_max_tokens);
    if let Some(budget) = budget {
        if req.temperature.is_some_and(|t| t != 1.0) {
            return Err(ConvertError::unsupported(
                "temperature",
                "The target (Anthropic) only accepts temperature 1 when thinking is enabled.",
            ));
        }
        // Anthropic counts thinking inside max_tokens: leave the default room for the answer.
        if req.max_tokens.is_none() && max_tokens <= budget {
            max_tokens = budget.saturating_add(default_max_tokens);
        }
        if max_tokens <= budget {
            return Err(ConvertError::invalid(
                Some("max_tokens".to_owned()),
                format!("max_tokens must be greater than the thinking budget ({budget}) for the target (Anthropic)."),
            ));
        }
        body.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    body.insert("max_tokens".into(), json!(max_tokens));

    let mode = tools_and_choice(req, budget.is_some(), &mut body)?;

    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = req.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    body.insert("stream".into(), json!(req.stream));
    Ok(UpstreamBody {
        body: to_bytes(&Value::Object(body))?,
        mode,
    })
}

fn fast_path(
    raw: &RawBody,
    req: &ChatRequest,
    model: &str,
    default_max_tokens: u32,
) -> Result<UpstreamBody, ConvertError> {
    let mut object = raw.object.clone();
    object.insert("model".into(), json!(model));
    // The streaming decision belongs to the gateway (it may differ from the client's body).
    if req.stream || object.contains_key("stream") {
        object.insert("stream".into(), json!(req.stream));
    }
    // A body parsed from count_tokens has no max_tokens; the Messages API requires one.
    if !object.contains_key("max_tokens") {
        let max = req.max_tokens.unwrap_or(default_max_tokens);
        object.insert("max_tokens".into(), json!(max));
    }
    Ok(UpstreamBody {
        body: to_bytes(&Value::Object(object))?,
        mode: ResponseMode::Plain,
    })
}

fn to_bytes(value: &Value) -> Result<Vec<u8>, ConvertError> {
    serde_json::to_vec(value)
        .map_err(|e| ConvertError::invalid(None, format!("The request cannot be encoded: {e}.")))
}

fn unsupported(param: &str, what: &str) -> ConvertError {
    ConvertError::unsupported(
        param,
        format!("{what} is not supported by the target (Anthropic); remove `{param}`."),
    )
}

/// Parameters with no Anthropic equivalent. Penalties of exactly 0 are the OpenAI defaults that
/// many SDKs send unasked; they change nothing, so they are accepted.
fn refuse_unsupported(req: &ChatRequest) -> Result<(), ConvertError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(unsupported("n", "More than one choice (n > 1)"));
    }
    if req.logprobs == Some(true) {
        return Err(unsupported("logprobs", "Log probabilities"));
    }
    if req.top_logprobs.is_some_and(|n| n > 0) {
        return Err(unsupported("top_logprobs", "Log probabilities"));
    }
    if req.seed.is_some() {
        return Err(unsupported("seed", "A sampling seed"));
    }
    if req.presence_penalty.is_some_and(|p| p != 0.0) {
        return Err(unsupported("presence_penalty", "A presence penalty"));
    }
    if req.frequency_penalty.is_some_and(|p| p != 0.0) {
        return Err(unsupported("frequency_penalty", "A frequency penalty"));
    }
    if req.temperature.is_some_and(|t| t > 1.0) {
        return Err(ConvertError::unsupported(
            "temperature",
            "The target (Anthropic) accepts temperature from 0 to 1; lower it to at most 1.",
        ));
    }
    Ok(())
}

fn system_blocks(parts: &[ContentPart], path: &str) -> Result<Vec<Value>, ConvertError> {
    let mut blocks = Vec::new();
    for part in parts {
        match part {
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => blocks.push(json!({"type": "text", "text": text})),
            ContentPart::Image { .. } => {
                return Err(ConvertError::unsupported(
                    path,
                    "Images in system instructions are not supported by the target (Anthropic); put them in a user message.",
                ))
            }
            // Reasoning has no place in instructions.
            ContentPart::Thinking { .. } => {}
        }
    }
    Ok(blocks)
}

/// One Anthropic turn under construction.
struct Turn {
    role: &'static str,
    blocks: Vec<Value>,
}

/// Canonical messages into Anthropic turns. Adjacent messages of the same side are merged
/// (Anthropic requires alternation); `Tool` messages become `tool_result` blocks of a user turn,
/// placed before any other content of that turn as Anthropic requires. `System` messages in the
/// middle of the conversation have no Anthropic equivalent and are moved to `system`.
fn build_messages(
    messages: &[Message],
    system: &mut Vec<Value>,
) -> Result<Vec<Value>, ConvertError> {
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        match message.role {
            Role::System => system.extend(system_blocks(&message.content, &path)?),
            Role::User => {
                let blocks = user_blocks(&message.content, &path)?;
                push_blocks(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let blocks = assistant_blocks(message, &path)?;
                push_blocks(&mut turns, "assistant", blocks);
            }
            Role::Tool => {
                let block = tool_result_block(message, &path)?;
                match turns.last_mut() {
                    Some(turn) if turn.role == "user" => {
                        let at = turn
                            .blocks
                            .iter()
                            .position(|b| b["type"] != "tool_result")
                            .unwrap_or(turn.blocks.len());
                        turn.blocks.insert(at, block);
                    }
                    _ => turns.push(Turn {
                        role: "user",
                        blocks: vec![block],
                    }),
                }
            }
        }
    }
    Ok(turns
        .into_iter()
        .map(|t| json!({"role": t.role, "content": t.blocks}))
        .collect())
}

/// Appends blocks to the last turn when it is on the same side, else starts a turn. Messages
/// left without any block (e.g. only empty text) are skipped: Anthropic rejects empty content.
fn push_blocks(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(turn) if turn.role == role => turn.blocks.extend(blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

fn user_blocks(parts: &[ContentPart], path: &str) -> Result<Vec<Value>, ConvertError> {
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        match part {
            // Anthropic rejects empty text blocks.
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => blocks.push(json!({"type": "text", "text": text})),
            ContentPart::Image { source, .. } => {
                blocks.push(image_block(source, &format!("{path}.content[{j}]"))?)
            }
            // Reasoning is only meaningful in assistant turns.
            ContentPart::Thinking { .. } => {}
        }
    }
    Ok(blocks)
}

fn assistant_blocks(message: &Message, path: &str) -> Result<Vec<Value>, ConvertError> {
    let mut blocks = Vec::new();
    for (j, part) in message.content.iter().enumerate() {
        match part {
            ContentPart::Text { text } if text.is_empty() => {}
            ContentPart::Text { text } => blocks.push(json!({"type": "text", "text": text})),
            ContentPart::Image { source, .. } => {
                blocks.push(image_block(source, &format!("{path}.content[{j}]"))?)
            }
            // Anthropic verifies the signature of thinking sent back; reasoning without one
            // (from another provider) would be rejected, so it is left out.
            ContentPart::Thinking {
                text,
                signature: Some(signature),
            } => blocks.push(json!({"type": "thinking", "thinking": text, "signature": signature})),
            ContentPart::Thinking { .. } => {}
        }
    }
    if blocks.is_empty() {
        if let Some(refusal) = message.refusal.as_deref().filter(|r| !r.is_empty()) {
            blocks.push(json!({"type": "text", "text": refusal}));
        }
    }
    for (k, call) in message.tool_calls.iter().enumerate() {
        let input = tool_input(
            &call.arguments,
            &format!("{path}.tool_calls[{k}].arguments"),
        )?;
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    Ok(blocks)
}

/// Tool call arguments (JSON text) as the `input` object Anthropic wants. Empty text, which
/// some models produce for tools without parameters, is `{}`.
fn tool_input(arguments: &str, path: &str) -> Result<Value, ConvertError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(ConvertError::invalid(
            Some(path.to_owned()),
            format!("The arguments of the tool call at `{path}` must be a JSON object."),
        )),
    }
}

fn tool_result_block(message: &Message, path: &str) -> Result<Value, ConvertError> {
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        ConvertError::invalid(
            Some(format!("{path}.tool_call_id")),
            "A tool message needs the id of the call it answers.",
        )
    })?;
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    let content = user_blocks(&message.content, path)?;
    if !content.is_empty() {
        block["content"] = Value::Array(content);
    }
    if message.is_error {
        block["is_error"] = json!(true);
    }
    Ok(block)
}

fn image_block(source: &ImageSource, path: &str) -> Result<Value, ConvertError> {
    let source = match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url(url) if url.starts_with("data:") => {
            // `data:<media type>;base64,<data>`: already base64, only split apart.
            let rest = url.strip_prefix("data:").unwrap_or_default();
            let (meta, data) = rest.split_once(',').unwrap_or(("", ""));
            let Some(media_type) = meta.strip_suffix(";base64").filter(|m| !m.is_empty()) else {
                return Err(ConvertError::invalid(
                    Some(path.to_owned()),
                    "An image data URL must be of the form `data:<media type>;base64,<data>`.",
                ));
            };
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url(url) if url.starts_with("https://") || url.starts_with("http://") => {
            json!({"type": "url", "url": url})
        }
        ImageSource::Url(_) => {
            return Err(ConvertError::unsupported(
                path,
                "The target (Anthropic) takes images as http(s) URLs, data URLs or base64 data.",
            ))
        }
    };
    Ok(json!({"type": "image", "source": source}))
}

/// `tools` and `tool_choice`, including the forced tool that emulates JSON output.
fn tools_and_choice(
    req: &ChatRequest,
    thinking: bool,
    body: &mut Map<String, Value>,
) -> Result<ResponseMode, ConvertError> {
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| {
            let schema = if t.parameters.is_object() {
                t.parameters.clone()
            } else {
                json!({"type": "object", "properties": {}})
            };
            let mut tool = json!({"name": t.name, "input_schema": schema});
            if let Some(d) = &t.description {
                tool["description"] = json!(d);
            }
            tool
        })
        .collect();

    let json_tool = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            Some((JSON_TOOL.to_owned(), json!({"type": "object"}), None))
        }
        Some(ResponseFormat::JsonSchema {
            name,
            schema,
            description,
            ..
        }) => Some((tool_name(name), object_schema(schema)?, description.clone())),
    };

    if let Some((name, schema, description)) = json_tool {
        if !req.tools.is_empty() {
            return Err(ConvertError::unsupported(
                "response_format",
                "JSON response_format together with tools is not supported by the target (Anthropic); use one or the other.",
            ));
        }
        if thinking {
            return Err(ConvertError::unsupported(
                "response_format",
                "JSON response_format together with reasoning is not supported by the target (Anthropic).",
            ));
        }
        let description = description.unwrap_or_else(|| {
            "Respond by calling this tool with the answer as its input.".to_owned()
        });
        tools.push(json!({"name": name, "description": description, "input_schema": schema}));
        body.insert("tools".into(), Value::Array(tools));
        body.insert("tool_choice".into(), json!({"type": "tool", "name": name}));
        return Ok(ResponseMode::JsonViaTool { tool_name: name });
    }

    if tools.is_empty() {
        // tool_choice and parallel_tool_calls mean nothing without tools.
        return Ok(ResponseMode::Plain);
    }
    body.insert("tools".into(), Value::Array(tools));
    let no_parallel = req.parallel_tool_calls == Some(false);
    let mut choice = match &req.tool_choice {
        None if no_parallel => json!({"type": "auto"}),
        None => return Ok(ResponseMode::Plain),
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Tool(name)) => json!({"type": "tool", "name": name}),
        Some(ToolChoice::None) => json!({"type": "none"}),
    };
    if no_parallel && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = json!(true);
    }
    body.insert("tool_choice".into(), choice);
    Ok(ResponseMode::Plain)
}

/// A tool name Anthropic accepts (`^[a-zA-Z0-9_-]{1,64}$`) from a schema name.
fn tool_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        JSON_TOOL.to_owned()
    } else {
        cleaned
    }
}

/// Tool input schemas must describe an object; a schema without `type` gets one.
fn object_schema(schema: &Value) -> Result<Value, ConvertError> {
    let mut schema = match schema {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    match schema.get("type") {
        None => {
            schema.insert("type".into(), json!("object"));
        }
        Some(t) if t == "object" => {}
        Some(_) => {
            return Err(ConvertError::unsupported(
                "response_format",
                "The target (Anthropic) only supports JSON schemas whose top level is an object.",
            ))
        }
    }
    Ok(Value::Object(schema))
}
