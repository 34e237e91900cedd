//! Parsing a client's Chat Completions request into the canonical [`ChatRequest`] (the
//! upstream body is built in `chat_body`).
//!
//! Parsing reads the top level as a JSON object (kept verbatim in `req.raw` for the fast path),
//! then each known field with its own serde shape, so that every error names the field it is
//! about (`messages[2].content[0]`). An explicit `null` counts as absent, as OpenAI treats it.

use super::wire::{
    InFunctionCall, InImageUrl, InPart, InPrompt, InPromptVersion, InResponseFormat, InStop,
    InStreamOptions, InTool, InToolCall,
};
use crate::error::ConvertError;
use serde::Deserialize;
use serde_json::{json, Value};
use switchboard_types::{
    ChatRequest, ContentPart, ImageSource, Message, PromptRef, Protocol, RawBody, ResponseFormat,
    Role, Tool, ToolCall, ToolChoice,
};

/// Parses a client's `POST /v1/chat/completions` body. Sets `req.raw` to the client's object.
///
/// System and developer messages are collected into `req.system`, in order, wherever they appear:
/// the canonical form keeps instructions apart from the turns (Anthropic and Gemini can only take
/// them there), and a system message in the middle of a conversation is, in practice, an
/// instruction update meant to apply to what follows. The same-protocol fast path forwards the
/// client's original order untouched.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, ConvertError> {
    let object = crate::parse_object(body)?;
    let mut req = ChatRequest::default();
    let (mut max_tokens, mut max_completion_tokens) = (None, None);
    for (key, value) in &object {
        if value.is_null() {
            continue;
        }
        let name = key.as_str();
        match name {
            "model" => req.model = field(name, value)?,
            "messages" => parse_messages(value, &mut req)?,
            "tools" => req.tools = parse_tools(value)?,
            "tool_choice" => req.tool_choice = Some(parse_tool_choice(value)?),
            "parallel_tool_calls" => req.parallel_tool_calls = field(name, value)?,
            "max_tokens" => max_tokens = field(name, value)?,
            "max_completion_tokens" => max_completion_tokens = field(name, value)?,
            "temperature" => req.temperature = field(name, value)?,
            "top_p" => req.top_p = field(name, value)?,
            "stop" => {
                req.stop = match field::<InStop>(name, value)? {
                    InStop::One(s) => vec![s],
                    InStop::Many(v) => v,
                }
            }
            "seed" => req.seed = field(name, value)?,
            "n" => req.n = field(name, value)?,
            "presence_penalty" => req.presence_penalty = field(name, value)?,
            "frequency_penalty" => req.frequency_penalty = field(name, value)?,
            "response_format" => {
                req.response_format = Some(match field::<InResponseFormat>(name, value)? {
                    InResponseFormat::Text => ResponseFormat::Text,
                    InResponseFormat::JsonObject => ResponseFormat::JsonObject,
                    InResponseFormat::JsonSchema { json_schema: s } => ResponseFormat::JsonSchema {
                        name: s.name,
                        schema: s.schema.unwrap_or_else(|| json!({})),
                        strict: s.strict,
                        description: s.description,
                    },
                })
            }
            "logprobs" => req.logprobs = field(name, value)?,
            "top_logprobs" => req.top_logprobs = field(name, value)?,
            "reasoning_effort" => req.reasoning_effort = field(name, value)?,
            "user" => req.user = field(name, value)?,
            "stream" => req.stream = field(name, value)?,
            "prompt" => req.prompt = Some(Box::new(parse_prompt(value)?)),
            "stream_options" => {
                let opts: InStreamOptions = field(name, value)?;
                req.stream_include_usage = opts.include_usage.unwrap_or(false);
            }
            // Legacy function calling: converting it would need the legacy response shape
            // too. Rejected with the replacement, rather than silently ignored.
            "functions" | "function_call" => {
                return Err(ConvertError::unsupported(
                    name,
                    format!(
                        "`{name}` is deprecated and not supported; use `tools` and `tool_choice`."
                    ),
                ))
            }
            _ => {
                req.extra.insert(key.clone(), value.clone());
            }
        }
    }
    // `max_completion_tokens` is the newer name of the same limit; it wins when both are given.
    req.max_tokens = max_completion_tokens.or(max_tokens);
    if req.model.is_empty() {
        return Err(ConvertError::invalid(
            "model".to_owned(),
            "`model` is required: name the model alias to call.",
        ));
    }
    // A stored prompt supplies messages of its own: the client's may then be absent.
    if req.messages.is_empty() && req.system.is_empty() && req.prompt.is_none() {
        return Err(ConvertError::invalid(
            "messages".to_owned(),
            "`messages` must contain at least one message (or reference a stored `prompt`).",
        ));
    }
    req.raw = Some(RawBody {
        protocol: Protocol::OpenAi,
        object,
    });
    Ok(req)
}

/// The `prompt` object: which stored prompt, which version or label, and its variables.
fn parse_prompt(value: &Value) -> Result<PromptRef, ConvertError> {
    let prompt: InPrompt = field("prompt", value)?;
    let name = match (prompt.id, prompt.name) {
        (Some(id), Some(name)) if id != name => {
            return Err(ConvertError::invalid(
                "prompt.id".to_owned(),
                "`prompt.id` and `prompt.name` name different prompts; send one of them.",
            ))
        }
        (Some(name), _) | (None, Some(name)) if !name.trim().is_empty() => name,
        _ => {
            return Err(ConvertError::invalid(
                "prompt.id".to_owned(),
                "`prompt.id` is required: name the stored prompt to use.",
            ))
        }
    };
    let version = match prompt.version {
        None => None,
        Some(InPromptVersion::Number(n)) => Some(n),
        Some(InPromptVersion::Text(text)) => Some(text.trim().parse().map_err(|_| {
            ConvertError::invalid(
                "prompt.version".to_owned(),
                format!("`prompt.version` must be a version number, not `{text}`."),
            )
        })?),
    };
    if version == Some(0) {
        return Err(ConvertError::invalid(
            "prompt.version".to_owned(),
            "`prompt.version` starts at 1.",
        ));
    }
    Ok(PromptRef {
        name,
        version,
        label: prompt.label,
        variables: prompt.variables.unwrap_or_default(),
    })
}

/// Reads one field with its serde shape; the error names the field.
fn field<'de, T: Deserialize<'de>>(
    path: impl std::fmt::Display,
    value: &'de Value,
) -> Result<T, ConvertError> {
    T::deserialize(value)
        .map_err(|e| ConvertError::invalid(path.to_string(), format!("`{path}`: {e}.")))
}

/// Where a value sits in the request (`messages[2].content[0]`), for error messages. Written
/// out only when an error names it: a path string per message and per content part cost an
/// allocation and a format each, on every request, for errors that almost never happen.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root(&'static str),
    Key(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

static MESSAGES: Path<'static> = Path::Root("messages");
static TOOLS: Path<'static> = Path::Root("tools");

fn parse_messages(value: &Value, req: &mut ChatRequest) -> Result<(), ConvertError> {
    let Value::Array(items) = value else {
        return Err(ConvertError::invalid(
            "messages".to_owned(),
            "`messages` must be an array of messages.",
        ));
    };
    for (i, item) in items.iter().enumerate() {
        let path = Path::Index(&MESSAGES, i);
        let content_path = Path::Key(&path, "content");
        match read_message(item, path)? {
            MessageRef::System { content } => {
                req.system.extend(text_parts(content, content_path)?);
            }
            MessageRef::User { content, name } => {
                let mut msg = Message::new(Role::User, user_parts(content, content_path)?);
                msg.name = name;
                req.messages.push(msg);
            }
            MessageRef::Assistant {
                content,
                name,
                tool_calls,
                refusal,
            } => {
                let mut msg = Message::new(Role::Assistant, Vec::new());
                msg.name = name;
                msg.refusal = refusal;
                assistant_content(content, content_path, &mut msg)?;
                let calls_path = Path::Key(&path, "tool_calls");
                for (j, call) in tool_calls.unwrap_or_default().into_iter().enumerate() {
                    msg.tool_calls
                        .push(tool_call(call, Path::Index(&calls_path, j))?);
                }
                req.messages.push(msg);
            }
            MessageRef::Tool {
                content,
                tool_call_id,
            } => {
                let mut msg = Message::new(Role::Tool, text_parts(content, content_path)?);
                msg.tool_call_id = Some(tool_call_id);
                req.messages.push(msg);
            }
        }
    }
    Ok(())
}

/// One message of the request, borrowed from the parsed body. Read by hand rather than as a
/// serde enum tagged by `role`: serde buffers a tagged enum's fields, copying every string of
/// the conversation twice on each request.
enum MessageRef<'a> {
    /// `system` or `developer`. A participant `name` is not kept: canonical system text has none.
    System { content: &'a Value },
    User {
        content: &'a Value,
        name: Option<String>,
    },
    Assistant {
        content: &'a Value,
        name: Option<String>,
        tool_calls: Option<Vec<InToolCall>>,
        refusal: Option<String>,
    },
    Tool {
        content: &'a Value,
        tool_call_id: String,
    },
}

static NULL: Value = Value::Null;

fn read_message<'a>(item: &'a Value, path: Path<'_>) -> Result<MessageRef<'a>, ConvertError> {
    let Value::Object(fields) = item else {
        return Err(ConvertError::invalid(
            path.to_string(),
            format!("`{path}` must be a message object."),
        ));
    };
    let missing = |key: &str| {
        ConvertError::invalid(
            format!("{path}.{key}"),
            format!("`{path}`: missing field `{key}`."),
        )
    };
    let content = |required: bool| match fields.get("content") {
        Some(value) => Ok(value),
        None if !required => Ok(&NULL),
        None => Err(missing("content")),
    };
    let string = |key: &str| match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConvertError::invalid(
            format!("{path}.{key}"),
            format!("`{path}.{key}` must be a string."),
        )),
    };
    let role = match fields.get("role") {
        Some(Value::String(role)) => role.as_str(),
        Some(_) => {
            return Err(ConvertError::invalid(
                format!("{path}.role"),
                format!("`{path}.role` must be a string."),
            ))
        }
        None => return Err(missing("role")),
    };
    match role {
        "system" | "developer" => Ok(MessageRef::System {
            content: content(true)?,
        }),
        "user" => Ok(MessageRef::User {
            content: content(true)?,
            name: string("name")?,
        }),
        "assistant" => Ok(MessageRef::Assistant {
            content: content(false)?,
            name: string("name")?,
            refusal: string("refusal")?,
            tool_calls: match fields.get("tool_calls") {
                None | Some(Value::Null) => None,
                Some(calls) => Some(field(Path::Key(&path, "tool_calls"), calls)?),
            },
        }),
        "tool" => Ok(MessageRef::Tool {
            content: content(true)?,
            tool_call_id: string("tool_call_id")?.ok_or_else(|| missing("tool_call_id"))?,
        }),
        "function" => Err(ConvertError::unsupported(
            format!("{path}.role"),
            "The legacy `function` role is not supported; send tool results as `tool` messages.",
        )),
        other => Err(ConvertError::invalid(
            format!("{path}.role"),
            format!(
                "`{path}.role` is `{other}`; expected one of system, developer, user, assistant, tool."
            ),
        )),
    }
}

/// The parts of a content value: a string is one text part; an array is read part by part.
/// Each comes with its index in the array (none for a string), to name it in an error.
fn parts(content: &Value, path: Path<'_>) -> Result<Vec<(Option<usize>, InPart)>, ConvertError> {
    match content {
        Value::String(s) => Ok(vec![(None, InPart::Text { text: s.clone() })]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, item)| Ok((Some(j), field::<InPart>(Path::Index(&path, j), item)?)))
            .collect(),
        _ => Err(ConvertError::invalid(
            path.to_string(),
            format!("`{path}` must be a string or an array of content parts."),
        )),
    }
}

/// The path of a part that `parts` returned.
fn part_path(path: Path<'_>, index: Option<usize>) -> String {
    match index {
        Some(j) => Path::Index(&path, j).to_string(),
        None => path.to_string(),
    }
}

/// Content of system, developer and tool messages: text only.
fn text_parts(content: &Value, path: Path<'_>) -> Result<Vec<ContentPart>, ConvertError> {
    // The common case, a plain string, without the per-part paths.
    if let Value::String(text) = content {
        return Ok(vec![ContentPart::text(text.as_str())]);
    }
    parts(content, path)?
        .into_iter()
        .map(|(j, part)| match part {
            InPart::Text { text } => Ok(ContentPart::Text { text }),
            _ => {
                let p = part_path(path, j);
                Err(ConvertError::invalid(
                    p.clone(),
                    format!("`{p}`: only `text` parts are allowed in this message."),
                ))
            }
        })
        .collect()
}

fn user_parts(content: &Value, path: Path<'_>) -> Result<Vec<ContentPart>, ConvertError> {
    if let Value::String(text) = content {
        return Ok(vec![ContentPart::text(text.as_str())]);
    }
    parts(content, path)?
        .into_iter()
        .map(|(j, part)| match part {
            InPart::Text { text } => Ok(ContentPart::Text { text }),
            InPart::ImageUrl { image_url } => {
                let (url, detail) = match image_url {
                    InImageUrl::Object { url, detail } => (url, detail),
                    InImageUrl::Url(url) => (url, None),
                };
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("data:"))
                {
                    let p = part_path(path, j);
                    return Err(ConvertError::invalid(
                        format!("{p}.image_url.url"),
                        format!("`{p}.image_url.url` must be an http(s) URL or a data: URL."),
                    ));
                }
                Ok(ContentPart::Image {
                    source: ImageSource::Url(url),
                    detail,
                })
            }
            InPart::InputAudio {} | InPart::File {} => {
                let p = part_path(path, j);
                Err(ConvertError::unsupported(
                    p.clone(),
                    format!("`{p}`: audio and file content parts are not supported."),
                ))
            }
            InPart::Refusal { .. } => {
                let p = part_path(path, j);
                Err(ConvertError::invalid(
                    p.clone(),
                    format!("`{p}`: `refusal` parts are only allowed in assistant messages."),
                ))
            }
        })
        .collect()
}

fn assistant_content(
    content: &Value,
    path: Path<'_>,
    msg: &mut Message,
) -> Result<(), ConvertError> {
    if content.is_null() {
        return Ok(());
    }
    for (j, part) in parts(content, path)? {
        match part {
            // An empty string next to tool calls means "no text": other providers reject empty
            // text blocks, so it is not kept.
            InPart::Text { text } if text.is_empty() => {}
            InPart::Text { text } => msg.content.push(ContentPart::Text { text }),
            InPart::Refusal { refusal } => msg.refusal = Some(refusal),
            _ => {
                let p = part_path(path, j);
                return Err(ConvertError::invalid(
                    p.clone(),
                    format!("`{p}`: assistant messages take `text` and `refusal` parts only."),
                ));
            }
        }
    }
    Ok(())
}

fn tool_call(call: InToolCall, path: Path<'_>) -> Result<ToolCall, ConvertError> {
    if call.kind.as_deref().is_some_and(|k| k != "function") {
        return Err(ConvertError::unsupported(
            format!("{path}.type"),
            format!("`{path}.type`: only `function` tool calls are supported."),
        ));
    }
    Ok(ToolCall {
        id: call.id,
        name: call.function.name.clone(),
        arguments: arguments_text(call.function),
    })
}

/// Tool call arguments as JSON text: a string is kept as generated; an object some clients send
/// is serialised; nothing at all is the empty object.
pub(super) fn arguments_text(function: InFunctionCall) -> String {
    match function.arguments {
        Value::String(s) => s,
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

fn parse_tools(value: &Value) -> Result<Vec<Tool>, ConvertError> {
    let items: Vec<Value> = field("tools", value)?;
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = Path::Index(&TOOLS, i);
        let tool: InTool = field(path, item)?;
        if tool.kind != "function" {
            return Err(ConvertError::unsupported(
                format!("{path}.type"),
                format!(
                    "`{path}.type`: only `function` tools are supported, not `{}`.",
                    tool.kind
                ),
            ));
        }
        let Some(f) = tool.function else {
            return Err(ConvertError::invalid(
                format!("{path}.function"),
                format!("`{path}.function` is required."),
            ));
        };
        tools.push(Tool {
            name: f.name,
            description: f.description,
            // Omitted parameters mean a function without arguments.
            parameters: f
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            strict: f.strict,
        });
    }
    Ok(tools)
}

fn parse_tool_choice(value: &Value) -> Result<ToolChoice, ConvertError> {
    let bad = || {
        ConvertError::invalid(
            "tool_choice".to_owned(),
            "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}.",
        )
    };
    match value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad()),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|n| ToolChoice::Tool(n.to_owned()))
                .ok_or_else(bad),
            Some(other) => Err(ConvertError::unsupported(
                "tool_choice",
                format!("`tool_choice` of type `{other}` is not supported."),
            )),
            None => Err(bad()),
        },
        _ => Err(bad()),
    }
}
