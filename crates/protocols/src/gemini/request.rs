//! Canonical `ChatRequest` -> Gemini `GenerateContentRequest` body. The model goes in the URL
//! (`models/{model}:generateContent`), and streaming is chosen by the URL too
//! (`:streamGenerateContent?alt=sse`), so the body is the same for both.
//!
//! Decisions where the formats disagree (each also noted where it is made):
//! - Turns must alternate `user`/`model`: consecutive messages that map to the same role are
//!   merged into one `Content`. Tool results become `user` turns.
//! - `Role::System` messages found among the turns are appended to `systemInstruction`.
//! - Thinking parts are dropped: Gemini's thoughts are not replayable text, and signatures from
//!   other providers mean nothing to it.
//! - Tool calls are replayed without `id` (rejected on the request side) and the first call of
//!   each model turn carries the documented placeholder `thoughtSignature`
//!   (`skip_thought_signature_validator`), since canonical tool calls do not keep Gemini's real
//!   signatures and Gemini 3 rejects a replayed call with none.
//! - A tool result needs the function *name*: it is looked up from the assistant tool call with
//!   the same id earlier in the conversation, else the message's `name`, else the request is
//!   invalid. The result text is used as the `response` object when it is a JSON object, else
//!   it is wrapped as `{"content": text}`; a failed tool (`is_error`) is sent as
//!   `{"error": ...}` as Gemini's docs ask.
//! - Images: base64 and `data:` URLs become `inlineData`; other URLs become `fileData` with a
//!   MIME type guessed from the extension, or none (Gemini then sniffs it) when unknown.
//! - `parallel_tool_calls: false` cannot be honoured (Gemini has no switch): unsupported when
//!   tools are present; `true` and absent are Gemini's behaviour anyway.
//! - `reasoning_effort` maps to a `thinkingBudget` as Gemini's OpenAI-compatible endpoint
//!   documents (`none` 0, `minimal` 512, `low` 1024, `medium` 8192, `high` 24576); an explicit
//!   `thinking_budget` (Anthropic) wins and also asks for thoughts to be returned.
//! - `req.extra` is ignored: it holds fields of another protocol. `user` has no Gemini field.

use std::collections::HashMap;

use serde_json::{Map, Value};
use switchboard_types::{
    ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, Role, ToolChoice,
};

use super::schema::to_gemini_schema;
use super::wire::{
    Content, FileData, FunctionCallOut, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponseOut, GenerateContentRequest, GenerationConfig, InlineData, Part,
    SystemInstruction, ThinkingConfig, ToolConfig, ToolDecl,
};
use crate::codec::{ResponseMode, UpstreamBody};
use crate::error::ConvertError;

/// Placeholder signature Gemini documents for function calls it did not produce itself.
const FOREIGN_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Builds the JSON body of a `generateContent` / `streamGenerateContent` call.
pub fn generate_content_body(req: &ChatRequest) -> Result<UpstreamBody, ConvertError> {
    // Anthropic-only content (documents, server tools) has no Gemini form: refuse, don't drop.
    if let Some(err) = crate::anthropic::unconvertible(req) {
        return Err(err);
    }
    let mut system_parts: Vec<Part> = Vec::new();
    for part in &req.system {
        push_content_part(&mut system_parts, part, "system")?;
    }

    let mut contents: Vec<Content> = Vec::new();
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (i, msg) in req.messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let (role, parts) = match msg.role {
            Role::System => {
                for part in &msg.content {
                    push_content_part(&mut system_parts, part, &param)?;
                }
                continue;
            }
            Role::User => ("user", user_parts(msg, &param)?),
            Role::Assistant => {
                for call in &msg.tool_calls {
                    call_names.insert(call.id.as_str(), call.name.as_str());
                }
                ("model", model_parts(msg, &param)?)
            }
            Role::Tool => ("user", tool_result_parts(msg, &call_names, &param)?),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => contents.push(Content { role, parts }),
        }
    }
    if contents.is_empty() {
        return Err(ConvertError::invalid(
            Some("messages".to_owned()),
            "at least one user or assistant message with content is required",
        ));
    }

    if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() {
        return Err(ConvertError::unsupported(
            "parallel_tool_calls",
            "this model's provider (Gemini) cannot disable parallel tool calls",
        ));
    }

    let tools = if req.tools.is_empty() {
        Vec::new()
    } else {
        let function_declarations = req
            .tools
            .iter()
            .map(|tool| FunctionDeclaration {
                name: tool.name.clone(),
                description: tool.description.clone(),
                parameters: parameters_schema(&tool.parameters),
            })
            .collect();
        vec![ToolDecl {
            function_declarations,
        }]
    };

    let body = GenerateContentRequest {
        contents,
        system_instruction: (!system_parts.is_empty()).then_some(SystemInstruction {
            parts: system_parts,
        }),
        tools,
        tool_config: req.tool_choice.as_ref().map(tool_config),
        generation_config: generation_config(req)?,
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| ConvertError::invalid(None, format!("cannot encode request: {e}")))?;
    Ok(UpstreamBody {
        body,
        mode: ResponseMode::Plain,
    })
}

fn user_parts(msg: &Message, param: &str) -> Result<Vec<Part>, ConvertError> {
    let mut parts = Vec::new();
    for part in &msg.content {
        push_content_part(&mut parts, part, param)?;
    }
    Ok(parts)
}

fn model_parts(msg: &Message, param: &str) -> Result<Vec<Part>, ConvertError> {
    let mut parts = Vec::new();
    for part in &msg.content {
        push_content_part(&mut parts, part, param)?;
    }
    if parts.is_empty() {
        // A refusal is what the model said in that turn; keep it in the history.
        if let Some(refusal) = msg.refusal.as_ref().filter(|r| !r.is_empty()) {
            parts.push(text_part(refusal.clone()));
        }
    }
    for (j, call) in msg.tool_calls.iter().enumerate() {
        let args = parse_arguments(&call.arguments).ok_or_else(|| {
            ConvertError::invalid(
                Some(format!("{param}.tool_calls[{j}].function.arguments")),
                format!(
                    "the arguments of tool call `{}` must be a JSON object",
                    call.id
                ),
            )
        })?;
        parts.push(Part {
            function_call: Some(FunctionCallOut {
                name: call.name.clone(),
                args,
            }),
            thought_signature: (j == 0).then(|| FOREIGN_THOUGHT_SIGNATURE.to_owned()),
            ..Part::default()
        });
    }
    Ok(parts)
}

/// Arguments as a JSON object; empty text means no arguments.
fn parse_arguments(text: &str) -> Option<Map<String, Value>> {
    if text.trim().is_empty() {
        return Some(Map::new());
    }
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn tool_result_parts(
    msg: &Message,
    call_names: &HashMap<&str, &str>,
    param: &str,
) -> Result<Vec<Part>, ConvertError> {
    let id = msg.tool_call_id.as_deref().unwrap_or_default();
    let name = call_names
        .get(id)
        .map(|name| (*name).to_owned())
        .or_else(|| msg.name.clone())
        .ok_or_else(|| {
            ConvertError::invalid(
                Some(format!("{param}.tool_call_id")),
                format!(
                    "{param} answers tool call `{id}`, but no earlier assistant message made that call"
                ),
            )
        })?;
    let text = msg.text();
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Value::Object(map),
        _ => Value::String(text),
    };
    let response = match (msg.is_error, value) {
        (false, Value::Object(map)) => map,
        (is_error, value) => {
            let key = if is_error { "error" } else { "content" };
            let mut map = Map::new();
            map.insert(key.to_owned(), value);
            map
        }
    };
    let mut parts = vec![Part {
        function_response: Some(FunctionResponseOut { name, response }),
        ..Part::default()
    }];
    // Images a tool returned travel as ordinary parts of the same user turn.
    for part in &msg.content {
        if let ContentPart::Image { .. } = part {
            push_content_part(&mut parts, part, param)?;
        }
    }
    Ok(parts)
}

fn text_part(text: String) -> Part {
    Part {
        text: Some(text),
        ..Part::default()
    }
}

/// Appends the Gemini form of one canonical part. Empty text is skipped (Gemini rejects empty
/// parts); thinking is dropped (see the module doc).
fn push_content_part(
    out: &mut Vec<Part>,
    part: &ContentPart,
    param: &str,
) -> Result<(), ConvertError> {
    match part {
        ContentPart::Text { text } if text.is_empty() => {}
        ContentPart::Text { text } => out.push(text_part(text.clone())),
        ContentPart::Thinking { .. } => {}
        ContentPart::Image { source, .. } => out.push(image_part(source, param)?),
    }
    Ok(())
}

fn image_part(source: &ImageSource, param: &str) -> Result<Part, ConvertError> {
    match source {
        ImageSource::Base64 { media_type, data } => Ok(Part {
            inline_data: Some(InlineData {
                mime_type: media_type.clone(),
                data: data.clone(),
            }),
            ..Part::default()
        }),
        ImageSource::Url(url) if url.starts_with("data:") => {
            let (mime_type, data) = parse_data_url(url).ok_or_else(|| {
                ConvertError::invalid(
                    Some(param.to_owned()),
                    "image data URLs must have the form data:<mime type>;base64,<data>",
                )
            })?;
            Ok(Part {
                inline_data: Some(InlineData { mime_type, data }),
                ..Part::default()
            })
        }
        ImageSource::Url(url) => Ok(Part {
            file_data: Some(FileData {
                mime_type: guess_mime(url).map(str::to_owned),
                file_uri: url.clone(),
            }),
            ..Part::default()
        }),
    }
}

fn parse_data_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    if mime.is_empty() || data.is_empty() {
        return None;
    }
    Some((mime.to_owned(), data.to_owned()))
}

/// MIME type from the URL path's extension (query and fragment ignored).
fn guess_mime(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let (_, ext) = file.rsplit_once('.')?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// Gemini rejects an `OBJECT` schema with no properties, so a tool without arguments sends no
/// `parameters` at all.
fn parameters_schema(parameters: &Value) -> Option<Value> {
    let schema = to_gemini_schema(parameters);
    let has_properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    if is_object && !has_properties || schema.as_object().is_some_and(Map::is_empty) {
        return None;
    }
    Some(schema)
}

fn tool_config(choice: &ToolChoice) -> ToolConfig {
    let (mode, allowed_function_names) = match choice {
        ToolChoice::Auto => ("AUTO", Vec::new()),
        ToolChoice::None => ("NONE", Vec::new()),
        ToolChoice::Required => ("ANY", Vec::new()),
        ToolChoice::Tool(name) => ("ANY", vec![name.clone()]),
    };
    ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names,
        },
    }
}

fn generation_config(req: &ChatRequest) -> Result<GenerationConfig, ConvertError> {
    let seed = req
        .seed
        .map(|seed| {
            i32::try_from(seed).map_err(|_| {
                ConvertError::invalid(
                    Some("seed".to_owned()),
                    "seed must fit in a signed 32-bit integer for this model",
                )
            })
        })
        .transpose()?;
    let (response_mime_type, response_json_schema) = match &req.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        // `responseJsonSchema` takes plain JSON Schema (unlike `responseSchema`), so the
        // client's schema goes as written.
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            (Some("application/json"), Some(schema.clone()))
        }
    };
    Ok(GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        max_output_tokens: req.max_tokens,
        stop_sequences: req.stop.clone(),
        candidate_count: req.n,
        seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_logprobs: req.logprobs.filter(|on| *on),
        logprobs: req.top_logprobs.filter(|_| req.logprobs != Some(false)),
        response_mime_type,
        response_json_schema,
        thinking_config: thinking_config(req)?,
    })
}

fn thinking_config(req: &ChatRequest) -> Result<Option<ThinkingConfig>, ConvertError> {
    if let Some(budget) = req.thinking_budget {
        return Ok(Some(ThinkingConfig {
            thinking_budget: budget,
            include_thoughts: (budget > 0).then_some(true),
        }));
    }
    let Some(effort) = req.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    let thinking_budget = match effort {
        "none" => 0,
        "minimal" => 512,
        "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        other => {
            return Err(ConvertError::invalid(
                Some("reasoning_effort".to_owned()),
                format!("unknown reasoning_effort `{other}`"),
            ))
        }
    };
    Ok(Some(ThinkingConfig {
        thinking_budget,
        include_thoughts: None,
    }))
}
