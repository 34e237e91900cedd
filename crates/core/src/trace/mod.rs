//! Request tracing: W3C trace context ids ([`TraceIds`]) and, when `telemetry.otlp` is
//! configured, the export of one span per request with a child span per upstream attempt
//! (OpenTelemetry GenAI semantic conventions), built when the request ends.

mod ids;

pub use ids::{new_span_id, parse_traceparent, TraceIds};
mod export;
mod span;

pub use export::{Telemetry, TelemetryError};
pub use span::{CallTrace, RequestFacts};
