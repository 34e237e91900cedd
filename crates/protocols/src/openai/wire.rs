//! Serde shapes of the OpenAI Chat Completions and Embeddings wire format. Private to
//! `openai`: nothing here leaves the module. Inbound shapes (`In*`) are lenient, because they
//! read bodies written by many OpenAI-compatible servers and clients (missing optional fields,
//! explicit `null`s, extra vendor fields); outbound shapes (`Out*`) borrow from the canonical
//! types and write exactly what OpenAI documents.

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Requests, inbound (a client's body).

#[derive(Deserialize)]
pub(super) struct InToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub function: InFunctionCall,
}

#[derive(Deserialize)]
pub(super) struct InFunctionCall {
    pub name: String,
    /// A JSON string per the spec; some clients send an object, which is re-serialised.
    #[serde(default)]
    pub arguments: Value,
}

/// One content part of a message.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: InImageUrl,
    },
    InputAudio {},
    File {},
    /// Assistant messages may carry their refusal as a part.
    Refusal {
        refusal: String,
    },
}

/// `image_url` is an object per the spec; some clients send the URL string directly.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum InImageUrl {
    Object { url: String, detail: Option<String> },
    Url(String),
}

#[derive(Deserialize)]
pub(super) struct InTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: Option<InFunctionDef>,
}

#[derive(Deserialize)]
pub(super) struct InFunctionDef {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum InResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: InJsonSchema },
}

#[derive(Deserialize)]
pub(super) struct InJsonSchema {
    pub name: String,
    pub schema: Option<Value>,
    pub strict: Option<bool>,
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum InStop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub(super) struct InStreamOptions {
    pub include_usage: Option<bool>,
}

/// A chat request's `prompt` reference (the Responses API's shape; `name` is a synonym of `id`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InPrompt {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version: Option<InPromptVersion>,
    pub label: Option<String>,
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The Responses API sends `version` as a string; a number is accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum InPromptVersion {
    Number(u32),
    Text(String),
}

// ---------------------------------------------------------------------------------------------
// Requests, outbound (to an OpenAI-compatible upstream).

#[derive(Serialize)]
pub(super) struct OutRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<OutStreamOptions>,
}

#[derive(Serialize)]
pub(super) struct OutStreamOptions {
    pub include_usage: bool,
}

#[derive(Serialize)]
pub(super) struct OutMessage<'a> {
    pub role: &'static str,
    /// Always written: `null` is the documented value for an assistant turn made only of tool
    /// calls.
    pub content: Option<OutContent<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OutToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum OutContent<'a> {
    Text(String),
    Parts(Vec<OutPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: OutImageUrl<'a> },
}

#[derive(Serialize)]
pub(super) struct OutImageUrl<'a> {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct OutToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunctionCall<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFunctionCall<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

#[derive(Serialize)]
pub(super) struct OutTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunctionDef<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFunctionDef<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Responses and stream chunks, inbound (from an upstream).

#[derive(Deserialize)]
pub(super) struct InResponse {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub choices: Option<Vec<InChoice>>,
    #[serde(default)]
    pub usage: Option<InUsage>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    #[serde(default)]
    pub error: Option<Value>,
}

/// The parts of a `chat.completion` the gateway needs when it passes the body on untouched:
/// everything but the choices, which are skipped without being decoded.
#[derive(Deserialize)]
pub(super) struct InResponseHead {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub choices: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub usage: Option<InUsage>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct InChoice {
    #[serde(default)]
    pub index: u32,
    pub message: Option<InRespMessage>,
    pub finish_reason: Option<String>,
    pub logprobs: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct InRespMessage {
    /// A string per the spec; some servers return an array of text parts.
    #[serde(default)]
    pub content: Value,
    pub tool_calls: Option<Vec<InToolCall>>,
    pub refusal: Option<String>,
    /// Legacy single function call (`finish_reason: function_call`).
    pub function_call: Option<InFunctionCall>,
    /// Reasoning text of DeepSeek, vLLM and others (`reasoning` on some of them).
    pub reasoning_content: Option<String>,
    pub reasoning: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct InUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<InPromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<InCompletionDetails>,
    /// DeepSeek reports cache hits here instead of `prompt_tokens_details`.
    #[serde(default)]
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(super) struct InPromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(super) struct InCompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct InChunk {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub choices: Option<Vec<InChunkChoice>>,
    #[serde(default)]
    pub usage: Option<InUsage>,
    #[serde(default)]
    pub error: Option<Value>,
    /// Azure's prompt annotations (first chunk, empty `choices`): a known shape, not an unknown
    /// one.
    #[serde(default)]
    pub prompt_filter_results: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct InChunkChoice {
    #[serde(default)]
    pub index: u32,
    /// Absent in Azure's content-filter annotation chunks.
    #[serde(default)]
    pub delta: Option<InDelta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct InDelta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub reasoning: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<InToolCallDelta>>,
}

#[derive(Deserialize)]
pub(super) struct InToolCallDelta {
    /// Required by the spec; a few servers omit it when there is a single call.
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<InFunctionDelta>,
}

#[derive(Deserialize)]
pub(super) struct InFunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Responses and stream chunks, outbound (to a client).

#[derive(Serialize)]
pub(super) struct OutResponse<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: i64,
    pub model: &'a str,
    pub choices: Vec<OutChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OutUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct OutChoice<'a> {
    pub index: u32,
    pub message: OutRespMessage<'a>,
    pub logprobs: Option<&'a Value>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct OutRespMessage<'a> {
    pub role: &'static str,
    pub content: Option<String>,
    /// Reasoning from providers that show it (Anthropic thinking), under the field name
    /// DeepSeek and vLLM use; clients that do not know it ignore it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<OutToolCall<'a>>,
    pub refusal: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct OutUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: OutPromptDetails,
    pub completion_tokens_details: OutCompletionDetails,
}

#[derive(Serialize)]
pub(super) struct OutPromptDetails {
    pub cached_tokens: u64,
}

#[derive(Serialize)]
pub(super) struct OutCompletionDetails {
    pub reasoning_tokens: u64,
}

#[derive(Serialize)]
pub(super) struct OutChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: i64,
    pub model: &'a str,
    pub choices: Vec<OutChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<OutUsage>,
}

#[derive(Serialize)]
pub(super) struct OutChunkChoice<'a> {
    pub index: u32,
    pub delta: OutDelta<'a>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
pub(super) struct OutDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[OutToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
pub(super) struct OutToolCallDelta<'a> {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub function: OutFunctionDelta<'a>,
}

#[derive(Serialize)]
pub(super) struct OutFunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[derive(Serialize)]
pub(super) struct OutErrorBody<'a> {
    pub error: OutError<'a>,
}

#[derive(Serialize)]
pub(super) struct OutError<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'a str,
    pub param: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------------
// Embeddings.

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum InEmbedInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum OutEmbedInput<'a> {
    Texts(&'a [String]),
    Tokens(&'a [Vec<u32>]),
}

#[derive(Serialize)]
pub(super) struct OutEmbedRequest<'a> {
    pub model: &'a str,
    pub input: OutEmbedInput<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(flatten)]
    pub extra: &'a serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
pub(super) struct InEmbedResponse {
    #[serde(default)]
    pub data: Option<Vec<InEmbedding>>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: Option<InEmbedUsage>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct InEmbedding {
    #[serde(default)]
    pub index: u32,
    pub embedding: InEmbeddingValue,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum InEmbeddingValue {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Deserialize, Default)]
pub(super) struct InEmbedUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
}

#[derive(Serialize)]
pub(super) struct OutEmbedResponse<'a> {
    pub object: &'static str,
    pub data: Vec<OutEmbedding<'a>>,
    pub model: &'a str,
    pub usage: OutEmbedUsage,
}

#[derive(Serialize)]
pub(super) struct OutEmbedding<'a> {
    pub object: &'static str,
    pub index: usize,
    pub embedding: OutEmbeddingValue<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum OutEmbeddingValue<'a> {
    Float(&'a [f32]),
    Base64(&'a str),
}

#[derive(Serialize)]
pub(super) struct OutEmbedUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}
