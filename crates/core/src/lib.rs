//! The data plane without HTTP. `gateway.rs` holds the live configuration snapshot and swaps it
//! atomically on reload; `pipeline.rs` is the request flow, one function per kind of call, that
//! reads top to bottom; the stages live in their own folders (`auth`, `routing`, ...).
//! docs/architecture.md draws the same order.

pub mod alias_metrics;
pub mod apis;
pub mod auth;
mod clock;
pub mod config;
pub mod context;
pub mod error;
pub mod gateway;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod pricing;
pub mod prompts;
pub mod routing;
pub mod tokens;
pub mod trace;
pub mod usage;

pub use error::{Fault, GatewayError};
pub use gateway::{Gateway, ReloadStatus, Snapshot};
pub use pipeline::{Credentials, RequestContext};
