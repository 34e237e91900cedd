//! Client side: an Anthropic Messages (or count_tokens) request body into the canonical
//! `ChatRequest`.
//!
//! The body is walked as a `serde_json::Value` rather than deserialised into structs, so that
//! every error names the exact field path (`messages[1].content[0].source`) the client must fix.
//! The client's object is kept in `req.raw`, so that an Anthropic target receives it untouched
//! (cache_control, documents, server tools and all). Content that has no canonical form
//! (documents, server tools, file sources, ...) does not fail the parse, since the fast path may
//! still serve it; it is recorded under [`UNCONVERTIBLE_KEY`] in `req.extra`, and
//! [`unconvertible`] turns it into the `ConvertError` a non-Anthropic target must answer.

use serde_json::{json, Map, Value};
use switchboard_types::{
    ChatRequest, ContentPart, ImageSource, Message, Protocol, RawBody, Role, Tool, ToolCall,
    ToolChoice,
};

use crate::error::ConvertError;

/// Key in `ChatRequest::extra` under which the parser records the first part of the request
/// that has no canonical form: `{"param": "<path>", "message": "<why>"}`.
pub const UNCONVERTIBLE_KEY: &str = "x-switchboard-unconvertible";

/// Parses a `POST /v1/messages` body. `max_tokens` is required, as Anthropic requires it.
pub fn parse_messages_request(body: &[u8]) -> Result<ChatRequest, ConvertError> {
    parse(body, true)
}

/// Parses a `POST /v1/messages/count_tokens` body: the same shape, without `max_tokens`.
pub fn parse_count_tokens_request(body: &[u8]) -> Result<ChatRequest, ConvertError> {
    parse(body, false)
}

/// The error a target that is not Anthropic must answer for a request that carries content with
/// no canonical form (see [`UNCONVERTIBLE_KEY`]); `None` when the request converts losslessly.
pub fn unconvertible(req: &ChatRequest) -> Option<ConvertError> {
    let note = req.extra.get(UNCONVERTIBLE_KEY)?;
    let param = note
        .get("param")
        .and_then(Value::as_str)
        .unwrap_or("messages");
    let message = note
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("this request uses Anthropic features the target does not support");
    Some(ConvertError::unsupported(param, message))
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> ConvertError {
    ConvertError::invalid(Some(param.into()), message)
}

fn parse(body: &[u8], require_max_tokens: bool) -> Result<ChatRequest, ConvertError> {
    let object = crate::parse_object(body)?;
    let mut parser = Parser::default();
    let mut req = ChatRequest {
        // Anthropic streams always report usage; nothing for the client to opt into.
        stream_include_usage: true,
        ..ChatRequest::default()
    };
    let mut has_model = false;
    let mut has_messages = false;
    for (key, value) in &object {
        // An explicit `null` means "not set" for every optional field.
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" => {
                req.model = string(value, "model")?;
                has_model = true;
            }
            "max_tokens" => req.max_tokens = Some(u32_field(value, "max_tokens")?),
            "system" => req.system = parser.system(value)?,
            "messages" => {
                req.messages = parser.messages(value)?;
                has_messages = true;
            }
            "tools" => req.tools = parser.tools(value)?,
            "tool_choice" => tool_choice(value, &mut req)?,
            "stop_sequences" => req.stop = strings(value, "stop_sequences")?,
            "temperature" => req.temperature = Some(number(value, "temperature")?),
            "top_p" => req.top_p = Some(number(value, "top_p")?),
            "top_k" => req.top_k = Some(u32_field(value, "top_k")?),
            "stream" => {
                req.stream = value
                    .as_bool()
                    .ok_or_else(|| invalid("stream", "`stream` must be a boolean."))?;
            }
            "metadata" => {
                if let Some(user) = value.get("user_id").filter(|v| !v.is_null()) {
                    req.user = Some(string(user, "metadata.user_id")?);
                }
            }
            "thinking" => thinking(value, &mut req)?,
            _ => {
                req.extra.insert(key.clone(), value.clone());
            }
        }
    }
    if !has_model {
        return Err(invalid("model", "`model` is required."));
    }
    if !has_messages {
        return Err(invalid("messages", "`messages` is required."));
    }
    if require_max_tokens && req.max_tokens.is_none() {
        return Err(invalid("max_tokens", "`max_tokens` is required."));
    }
    if let Some((param, message)) = parser.unconvertible {
        req.extra.insert(
            UNCONVERTIBLE_KEY.to_owned(),
            json!({ "param": param, "message": message }),
        );
    }
    req.raw = Some(RawBody {
        protocol: Protocol::Anthropic,
        object,
    });
    Ok(req)
}

fn string(value: &Value, path: &str) -> Result<String, ConvertError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(path, format!("`{path}` must be a string.")))
}

fn number(value: &Value, path: &str) -> Result<f64, ConvertError> {
    value
        .as_f64()
        .ok_or_else(|| invalid(path, format!("`{path}` must be a number.")))
}

fn u32_field(value: &Value, path: &str) -> Result<u32, ConvertError> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid(path, format!("`{path}` must be a non-negative integer.")))
}

fn strings(value: &Value, path: &str) -> Result<Vec<String>, ConvertError> {
    let items = value
        .as_array()
        .ok_or_else(|| invalid(path, format!("`{path}` must be an array of strings.")))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| string(v, &format!("{path}[{i}]")))
        .collect()
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ConvertError> {
    value
        .as_object()
        .ok_or_else(|| invalid(path, format!("`{path}` must be an object.")))
}

fn block_type<'a>(block: &'a Map<String, Value>, path: &str) -> Result<&'a str, ConvertError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{path}.type"), "A content block needs a `type`."))
}

fn text_field(block: &Map<String, Value>, path: &str) -> Result<String, ConvertError> {
    let field = format!("{path}.text");
    string(block.get("text").unwrap_or(&Value::Null), &field)
}

fn tool_choice(value: &Value, req: &mut ChatRequest) -> Result<(), ConvertError> {
    let choice = object(value, "tool_choice")?;
    let kind = choice.get("type").and_then(Value::as_str).unwrap_or("");
    req.tool_choice = Some(match kind {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => {
            let name = choice.get("name").unwrap_or(&Value::Null);
            ToolChoice::Tool(string(name, "tool_choice.name")?)
        }
        _ => {
            return Err(invalid(
                "tool_choice.type",
                "`tool_choice.type` must be one of `auto`, `any`, `tool`, `none`.",
            ))
        }
    });
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        req.parallel_tool_calls = Some(false);
    }
    Ok(())
}

fn thinking(value: &Value, req: &mut ChatRequest) -> Result<(), ConvertError> {
    let config = object(value, "thinking")?;
    match config.get("type").and_then(Value::as_str) {
        Some("enabled") => {
            let budget = config.get("budget_tokens").unwrap_or(&Value::Null);
            req.thinking_budget = Some(u32_field(budget, "thinking.budget_tokens")?);
        }
        Some("disabled") => {}
        // A thinking mode without a canonical meaning: the fast path still forwards it.
        _ => {
            req.extra.insert("thinking".to_owned(), value.clone());
        }
    }
    Ok(())
}

#[derive(Default)]
struct Parser {
    /// The first part of the request with no canonical form: (param, message).
    unconvertible: Option<(String, String)>,
}

impl Parser {
    fn note_unconvertible(&mut self, param: &str, what: &str) {
        if self.unconvertible.is_none() {
            self.unconvertible = Some((
                param.to_owned(),
                format!("{what} is only supported when the target is Anthropic."),
            ));
        }
    }

    fn system(&mut self, value: &Value) -> Result<Vec<ContentPart>, ConvertError> {
        match value {
            Value::String(text) if text.is_empty() => Ok(Vec::new()),
            Value::String(text) => Ok(vec![ContentPart::text(text.clone())]),
            Value::Array(blocks) => {
                let mut parts = Vec::new();
                for (i, block) in blocks.iter().enumerate() {
                    let path = format!("system[{i}]");
                    let block = object(block, &path)?;
                    match block_type(block, &path)? {
                        "text" => parts.push(ContentPart::text(text_field(block, &path)?)),
                        other => self.note_unconvertible(
                            &path,
                            &format!("A system block of type `{other}`"),
                        ),
                    }
                }
                Ok(parts)
            }
            _ => Err(invalid(
                "system",
                "`system` must be a string or an array of text blocks.",
            )),
        }
    }

    fn tools(&mut self, value: &Value) -> Result<Vec<Tool>, ConvertError> {
        let items = value
            .as_array()
            .ok_or_else(|| invalid("tools", "`tools` must be an array."))?;
        let mut tools = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("tools[{i}]");
            let tool = object(item, &path)?;
            // Server and Anthropic-defined tools (`web_search_20250305`, `bash_...`) carry a
            // `type`; custom tools carry none or `custom`.
            if let Some(kind) = tool.get("type").and_then(Value::as_str) {
                if kind != "custom" {
                    self.note_unconvertible(&path, &format!("The tool type `{kind}`"));
                    continue;
                }
            }
            let name = string(
                tool.get("name").unwrap_or(&Value::Null),
                &format!("{path}.name"),
            )?;
            let description = match tool.get("description") {
                None | Some(Value::Null) => None,
                Some(d) => Some(string(d, &format!("{path}.description"))?),
            };
            let schema_path = format!("{path}.input_schema");
            let parameters = tool.get("input_schema").cloned().unwrap_or(Value::Null);
            object(&parameters, &schema_path)?;
            tools.push(Tool {
                name,
                description,
                parameters,
                strict: tool.get("strict").and_then(Value::as_bool),
            });
        }
        Ok(tools)
    }

    fn messages(&mut self, value: &Value) -> Result<Vec<Message>, ConvertError> {
        let items = value
            .as_array()
            .ok_or_else(|| invalid("messages", "`messages` must be an array."))?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("messages[{i}]");
            let message = object(item, &path)?;
            let content = message
                .get("content")
                .ok_or_else(|| invalid(format!("{path}.content"), "`content` is required."))?;
            match message.get("role").and_then(Value::as_str) {
                Some("user") => self.user_turn(content, &path, &mut out)?,
                Some("assistant") => out.push(self.assistant_turn(content, &path)?),
                _ => {
                    return Err(invalid(
                        format!("{path}.role"),
                        "`role` must be `user` or `assistant`.",
                    ))
                }
            }
        }
        Ok(out)
    }

    /// A user turn: its `tool_result` blocks become canonical `Tool` messages, in order, placed
    /// before a `User` message with the rest of the turn's content.
    fn user_turn(
        &mut self,
        content: &Value,
        path: &str,
        out: &mut Vec<Message>,
    ) -> Result<(), ConvertError> {
        let blocks = match content {
            Value::String(text) => {
                out.push(Message::new(
                    Role::User,
                    vec![ContentPart::text(text.clone())],
                ));
                return Ok(());
            }
            Value::Array(blocks) => blocks,
            _ => return Err(content_shape_error(path)),
        };
        let mut rest = Vec::new();
        let mut results = 0;
        for (j, block) in blocks.iter().enumerate() {
            let block_path = format!("{path}.content[{j}]");
            let block = object(block, &block_path)?;
            match block_type(block, &block_path)? {
                "tool_result" => {
                    out.push(self.tool_result(block, &block_path)?);
                    results += 1;
                }
                "tool_use" => {
                    return Err(invalid(
                        block_path,
                        "`tool_use` blocks belong in assistant messages.",
                    ))
                }
                _ => rest.extend(self.content_part(block, &block_path)?),
            }
        }
        if !rest.is_empty() || results == 0 {
            out.push(Message::new(Role::User, rest));
        }
        Ok(())
    }

    fn assistant_turn(&mut self, content: &Value, path: &str) -> Result<Message, ConvertError> {
        let blocks = match content {
            Value::String(text) => {
                return Ok(Message::new(
                    Role::Assistant,
                    vec![ContentPart::text(text.clone())],
                ))
            }
            Value::Array(blocks) => blocks,
            _ => return Err(content_shape_error(path)),
        };
        let mut message = Message::new(Role::Assistant, Vec::new());
        for (j, block) in blocks.iter().enumerate() {
            let block_path = format!("{path}.content[{j}]");
            let block = object(block, &block_path)?;
            match block_type(block, &block_path)? {
                "tool_use" => {
                    let field = |name: &str| {
                        string(
                            block.get(name).unwrap_or(&Value::Null),
                            &format!("{block_path}.{name}"),
                        )
                    };
                    let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                    message.tool_calls.push(ToolCall {
                        id: field("id")?,
                        name: field("name")?,
                        arguments: input.to_string(),
                    });
                }
                "tool_result" => {
                    return Err(invalid(
                        block_path,
                        "`tool_result` blocks belong in user messages.",
                    ))
                }
                _ => message
                    .content
                    .extend(self.content_part(block, &block_path)?),
            }
        }
        Ok(message)
    }

    /// One block of ordinary content. `None` for blocks that are dropped or have no canonical
    /// form (the latter are noted as unconvertible).
    fn content_part(
        &mut self,
        block: &Map<String, Value>,
        path: &str,
    ) -> Result<Option<ContentPart>, ConvertError> {
        match block_type(block, path)? {
            "text" => Ok(Some(ContentPart::text(text_field(block, path)?))),
            "image" => self.image(block, path),
            "thinking" => {
                let text = string(
                    block.get("thinking").unwrap_or(&Value::Null),
                    &format!("{path}.thinking"),
                )?;
                let signature = block
                    .get("signature")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok(Some(ContentPart::Thinking { text, signature }))
            }
            // Encrypted reasoning only Anthropic can read: other targets cannot use it, and an
            // Anthropic target receives it through the fast path, so it is dropped here.
            "redacted_thinking" => Ok(None),
            other => {
                self.note_unconvertible(path, &format!("A content block of type `{other}`"));
                Ok(None)
            }
        }
    }

    fn image(
        &mut self,
        block: &Map<String, Value>,
        path: &str,
    ) -> Result<Option<ContentPart>, ConvertError> {
        let source_path = format!("{path}.source");
        let source = object(block.get("source").unwrap_or(&Value::Null), &source_path)?;
        let field = |name: &str| {
            string(
                source.get(name).unwrap_or(&Value::Null),
                &format!("{source_path}.{name}"),
            )
        };
        let source = match source.get("type").and_then(Value::as_str) {
            Some("base64") => ImageSource::Base64 {
                media_type: field("media_type")?,
                data: field("data")?,
            },
            Some("url") => ImageSource::Url(field("url")?),
            Some(other) => {
                self.note_unconvertible(&source_path, &format!("An image source `{other}`"));
                return Ok(None);
            }
            None => {
                return Err(invalid(
                    format!("{source_path}.type"),
                    "An image source needs a `type` (`base64` or `url`).",
                ))
            }
        };
        Ok(Some(ContentPart::Image {
            source,
            detail: None,
        }))
    }

    fn tool_result(
        &mut self,
        block: &Map<String, Value>,
        path: &str,
    ) -> Result<Message, ConvertError> {
        let id = string(
            block.get("tool_use_id").unwrap_or(&Value::Null),
            &format!("{path}.tool_use_id"),
        )?;
        let content = match block.get("content") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(text)) => vec![ContentPart::text(text.clone())],
            Some(Value::Array(items)) => {
                let mut parts = Vec::new();
                for (k, item) in items.iter().enumerate() {
                    let item_path = format!("{path}.content[{k}]");
                    let item = object(item, &item_path)?;
                    parts.extend(self.content_part(item, &item_path)?);
                }
                parts
            }
            Some(_) => {
                return Err(invalid(
                    format!("{path}.content"),
                    "`content` of a tool_result must be a string or an array of blocks.",
                ))
            }
        };
        let mut message = Message::new(Role::Tool, content);
        message.tool_call_id = Some(id);
        message.is_error = block.get("is_error").and_then(Value::as_bool) == Some(true);
        Ok(message)
    }
}

fn content_shape_error(path: &str) -> ConvertError {
    invalid(
        format!("{path}.content"),
        "`content` must be a string or an array of content blocks.",
    )
}
