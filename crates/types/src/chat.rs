//! Canonical chat and embedding requests and responses.

use serde_json::{Map, Value};

/// Which API family a body is written in. Used to pick the fast path: when the client and the
/// target speak the same protocol, the client's body is forwarded with only `model` replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    OpenAi,
    Anthropic,
    Gemini,
}

/// The client's original JSON body, kept for the same-protocol fast path.
#[derive(Clone, Debug, PartialEq)]
pub struct RawBody {
    pub protocol: Protocol,
    /// The parsed top-level object, exactly as the client sent it.
    pub object: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool call; `Message::tool_call_id` names the call.
    Tool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ImageSource {
    /// An `http(s)` URL, or a `data:` URL as clients send it.
    Url(String),
    /// Inline bytes, base64-encoded.
    Base64 { media_type: String, data: String },
}

#[derive(Clone, Debug, PartialEq)]
pub enum ContentPart {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
        /// OpenAI's `detail` (`low`, `high`, `auto`).
        detail: Option<String>,
    },
    /// Reasoning shown by the model (Anthropic `thinking`). `signature` must be sent back
    /// unchanged to Anthropic in later turns.
    Thinking {
        text: String,
        signature: Option<String>,
    },
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }
}

/// A call the assistant made to a tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, exactly as generated.
    pub arguments: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
    /// Tool calls made by an assistant message.
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the id of the call this message answers.
    pub tool_call_id: Option<String>,
    /// For `Role::Tool`: whether the tool failed (Anthropic `is_error`).
    pub is_error: bool,
    /// OpenAI's participant `name`.
    pub name: Option<String>,
    /// A refusal by the model (OpenAI `refusal`).
    pub refusal: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: Vec<ContentPart>) -> Self {
        Message {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
            name: None,
            refusal: None,
        }
    }

    /// All text parts joined, ignoring images and reasoning.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.content {
            if let ContentPart::Text { text } = part {
                out.push_str(text);
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// OpenAI's `strict` flag for structured tool arguments.
    pub strict: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    /// The model must call some tool (OpenAI `required`, Anthropic `any`).
    Required,
    /// The model must call this tool.
    Tool(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        schema: Value,
        strict: Option<bool>,
        description: Option<String>,
    },
}

/// A chat request in the canonical form. `model` is the alias the client asked for until the
/// router rewrites it to a target's upstream model.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ChatRequest {
    pub model: String,
    /// System instructions, kept apart from the turns (Anthropic and Gemini take them apart;
    /// OpenAI converters emit them as a leading `system` message).
    pub system: Vec<ContentPart>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub n: Option<u32>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub response_format: Option<ResponseFormat>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    /// OpenAI `reasoning_effort` (`low`, `medium`, `high`).
    pub reasoning_effort: Option<String>,
    /// Anthropic extended thinking budget in tokens.
    pub thinking_budget: Option<u32>,
    /// End-user identifier (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    pub stream: bool,
    /// The client asked to see usage in the stream (OpenAI `stream_options.include_usage`).
    /// The gateway always asks upstream for usage; this only controls what the client sees.
    pub stream_include_usage: bool,
    /// Fields of the client's format that have no canonical meaning, by name. Converters to the
    /// same protocol may pass them on; others ignore them.
    pub extra: Map<String, Value>,
    /// The client's body, for the same-protocol fast path.
    pub raw: Option<RawBody>,
    /// A stored prompt the request references (OpenAI format's `prompt` object). The server
    /// renders it into the messages before the pipeline; boxed so that the common request
    /// without one stays small.
    pub prompt: Option<Box<PromptRef>>,
}

/// A reference to a stored prompt in a chat request: `"prompt": {"id": ..., "version": ...,
/// "label": ..., "variables": {...}}`, shaped like the `prompt` of OpenAI's Responses API.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PromptRef {
    /// The prompt's name (`id`, or its synonym `name`).
    pub name: String,
    /// A version asked for by number; it wins over `label`.
    pub version: Option<u32>,
    /// The label to serve (default `production`).
    pub label: Option<String>,
    pub variables: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// Natural end of the turn.
    Stop,
    /// A stop sequence matched; the sequence when the provider says which.
    StopSequence(Option<String>),
    /// `max_tokens` reached.
    Length,
    ToolCalls,
    ContentFilter,
    /// Any other provider-specific reason, kept verbatim.
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    pub finish_reason: Option<FinishReason>,
    /// OpenAI logprobs object, passed through when the provider returns it.
    pub logprobs: Option<Value>,
}

/// A whole (non-streamed) chat response.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatResponse {
    pub id: String,
    /// The upstream model that answered.
    pub model: String,
    pub created: i64,
    /// Empty when the body goes back to a client of the same protocol undecoded (`raw` is then
    /// set and is the answer): stages that need the content decode `raw`.
    pub choices: Vec<Choice>,
    pub usage: Option<crate::Usage>,
    pub system_fingerprint: Option<String>,
    /// The provider's body when it is in `raw.protocol`, for the same-protocol fast path back
    /// to the client.
    pub raw: Option<RawBytes>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EmbedInput {
    Texts(Vec<String>),
    /// Pre-tokenised input (OpenAI accepts arrays of token ids).
    Tokens(Vec<Vec<u32>>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmbedRequest {
    pub model: String,
    pub input: EmbedInput,
    pub dimensions: Option<u32>,
    /// `float` or `base64`.
    pub encoding_format: Option<String>,
    pub user: Option<String>,
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Embedding {
    Float(Vec<f32>),
    /// Base64 of little-endian f32s, as OpenAI returns with `encoding_format: base64`.
    Base64(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmbedResponse {
    pub model: String,
    pub data: Vec<Embedding>,
    pub usage: crate::Usage,
}

/// A provider's response body with the protocol it is written in.
#[derive(Clone, Debug, PartialEq)]
pub struct RawBytes {
    pub protocol: Protocol,
    pub body: bytes::Bytes,
}
