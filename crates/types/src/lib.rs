//! The canonical domain of Switchboard. Every client format converts into these types and every
//! provider converts out of them (hub and spoke: N + M converters, not N x M). Nothing here does
//! IO or knows about HTTP, tokio or any wire format.

pub mod calendar;
mod chat;
mod event;
mod ids;
mod money;
mod secret;
mod usage;

pub use chat::{
    ChatRequest, ChatResponse, Choice, ContentPart, EmbedInput, EmbedRequest, EmbedResponse,
    Embedding, FinishReason, ImageSource, Message, PromptRef, Protocol, RawBody, RawBytes,
    ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
pub use event::ChatEvent;
pub use ids::{ModelAlias, TargetId};
pub use money::MicroUsd;
pub use secret::Secret;
pub use usage::Usage;
