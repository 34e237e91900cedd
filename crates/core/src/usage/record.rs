//! The usage record: one row of billing data per request that reached admission, whether it was
//! served, failed or cancelled. Records are built by the [`Meter`](super::Meter) and written
//! asynchronously in batches by the store; this file only says what a record holds.

use serde::{Deserialize, Serialize};
use switchboard_types::{MicroUsd, Usage};

/// How a metered request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole answer reached the client.
    Ok,
    /// The gateway answered with an error (limits, routing, upstream, ...).
    Error,
    /// The client went away before the answer was complete.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "ok" => Some(Outcome::Ok),
            "error" => Some(Outcome::Error),
            "cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }
}

/// Tags the gateway itself sets (prompt and API versions served, workflow steps, context
/// truncation). A client's own values of these in `x-switchboard-tags` are dropped at the edge,
/// so that the versions compared in analytics are the ones really served.
pub const RESERVED_TAGS: [&str; 5] = ["api", "prompt", "step", "workflow", "context"];

/// What kind of call a record is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Chat,
    Embeddings,
    /// A prompt API workflow run as a whole (zero tokens and cost: its steps' own records
    /// carry those, so sums are not counted twice).
    Workflow,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Chat => "chat",
            CallKind::Embeddings => "embeddings",
            CallKind::Workflow => "workflow",
        }
    }

    pub fn parse(text: &str) -> Option<CallKind> {
        match text {
            "chat" => Some(CallKind::Chat),
            "embeddings" => Some(CallKind::Embeddings),
            "workflow" => Some(CallKind::Workflow),
            _ => None,
        }
    }
}

/// Where the token counts of a record come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// The provider reported usage (normalised; see [`Usage`]).
    Reported,
    /// The provider reported none (or the stream was cut before it did): counted by the
    /// gateway's tokenizer, see docs/usage-and-limits.md.
    Estimated,
    /// No upstream call was made (rejected at admission, every target down).
    None,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Reported => "reported",
            UsageSource::Estimated => "estimated",
            UsageSource::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<UsageSource> {
        match text {
            "reported" => Some(UsageSource::Reported),
            "estimated" => Some(UsageSource::Estimated),
            "none" => Some(UsageSource::None),
            _ => None,
        }
    }
}

/// Who made a call, by name and id, as far as the credential tells.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub org: Option<String>,
    pub team: Option<String>,
    pub app: Option<String>,
    /// The virtual key's id (never the key itself).
    pub key_id: Option<String>,
    /// A user's id (key owner) or a JWT subject.
    pub user: Option<String>,
}

/// One request's billing record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub request_id: String,
    /// When the request was admitted, Unix milliseconds.
    pub started_at_ms: i64,
    pub caller: Caller,
    pub kind: CallKind,
    /// The alias the client asked for.
    pub alias: String,
    /// The alias actually served when a budget downgraded the call or a fallback served it.
    pub served_alias: Option<String>,
    /// The provider name of the target that served (or last failed), from the config.
    pub provider: Option<String>,
    /// The upstream model of that target.
    pub model: Option<String>,
    pub stream: bool,
    pub usage: Usage,
    pub usage_source: UsageSource,
    pub cost: MicroUsd,
    /// Whether a price was known for the target (cost is 0 when it was not).
    pub priced: bool,
    /// From admission to the last byte (or the error), milliseconds.
    pub latency_ms: u64,
    /// From admission to the first streamed event; `None` for whole answers and failures.
    pub ttft_ms: Option<u64>,
    pub attempts: u32,
    pub outcome: Outcome,
    /// The HTTP status the client got (200 for a stream that failed after it began).
    pub status: u16,
    /// The stable error code when the outcome is not `ok`.
    pub error_code: Option<String>,
    /// `x-switchboard-tags`, in the order given.
    pub tags: Vec<(String, String)>,
    /// What the call log keeps beyond billing: where the call came from and how it was routed.
    #[serde(default)]
    pub details: CallDetails,
}

/// The call log's part of a record (docs/observability.md): who sent the request, over which
/// route, and each upstream attempt. Empty fields cost nothing to store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDetails {
    /// The client's address (the TCP peer; `x-forwarded-for` is not trusted by default).
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The path the client called, e.g. `/v1/chat/completions`.
    pub route: Option<String>,
    /// Every upstream attempt in order, fallbacks included.
    pub attempts: Vec<AttemptLog>,
    /// `hit` | `miss` | `bypass` once a response cache exists; `None` until then.
    pub cache: Option<String>,
    /// What the guardrails decided (`pass`, `blocked:<rule>`...) once they exist.
    pub guardrail: Option<String>,
    /// The W3C trace id of the request's span (32 hex digits), to find its trace.
    pub trace_id: Option<String>,
}

/// One upstream attempt of a call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptLog {
    /// `provider/model` from the config.
    pub target: String,
    /// The upstream's HTTP status; 0 when no answer came (connect error, timeout).
    pub status: u16,
    /// From sending the request to the answer's head (or the error), milliseconds.
    pub latency_ms: u64,
    /// The gateway's error code for a failed attempt.
    pub error_code: Option<String>,
}
