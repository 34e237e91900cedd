//! The one error type of the data plane. Every failure a client can see is a variant here, and
//! three exhaustive matches give its fault, status and stable code. Rendering belongs to the
//! client's format (`switchboard_protocols::{openai,anthropic}::render_error`) through
//! [`GatewayError::to_client`].

use std::time::Duration;
use switchboard_protocols::{ClientError, ConvertError, ErrorKind};
use switchboard_providers::{ProviderError, TimeoutKind};

/// Who is at fault for a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    BadRequest(ConvertError),
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{input} input tokens + {max_tokens} max_tokens exceed the {window} of `{alias}`")]
    ContextWindowExceeded {
        alias: String,
        input: u64,
        max_tokens: u64,
        window: u32,
    },
    #[error("missing credentials")]
    MissingKey,
    #[error("invalid credentials")]
    InvalidKey,
    #[error("this key has expired")]
    KeyExpired,
    #[error("credentials cannot be checked right now")]
    AuthUnavailable,
    #[error("model `{0}` requires an approved subscription")]
    ApprovalRequired(String),
    #[error("the subscription to `{0}` is pending approval")]
    SubscriptionPending(String),
    #[error("the subscription to `{alias}` was rejected")]
    SubscriptionRejected {
        alias: String,
        reason: Option<String>,
    },
    #[error("this key may not call model `{0}`")]
    ModelNotAllowed(String),
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    /// No prompt API of that name (or that version), or only a draft and the caller is not
    /// an admin.
    #[error("unknown API `{0}`")]
    UnknownApi(String),
    #[error("this key may not call API `{0}`")]
    ApiNotAllowed(String),
    /// The API version is retired (410), with the API that replaces it if any.
    #[error("API `{api}` is retired")]
    ApiRetired {
        api: String,
        successor: Option<String>,
    },
    /// A chat request's `prompt` reference names no stored prompt, label or version.
    #[error("unknown prompt `{0}`")]
    UnknownPrompt(String),
    /// The variables of a prompt do not satisfy its schema, or a template could not render
    /// with them. `variable` is the JSON pointer of the bad value (empty for the whole object).
    #[error("variable `{variable}`: {message}")]
    InvalidVariables { variable: String, message: String },
    /// The model's output did not satisfy the API's output schema, even after one repair.
    #[error("the output does not match the API's schema: {0}")]
    InvalidOutput(String),
    /// A workflow step failed; the run stops there.
    #[error("workflow step `{step}` failed: {source}")]
    StepFailed {
        step: String,
        source: Box<GatewayError>,
    },
    #[error("model `{alias}` cannot serve {what}")]
    WrongModelKind { alias: String, what: &'static str },
    #[error("request body over {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A rate limit rule is full. `what` describes it for the client, e.g. "600 requests per
    /// minute for team acme/research".
    #[error("rate limit `{rule}` reached: {what}")]
    RateLimited {
        rule: String,
        what: String,
        retry_after: Option<Duration>,
    },
    /// A hard budget is spent. `what` names it ("$500 per month for team acme/research") and
    /// `resets` says when it starts afresh ("2026-12-01T00:00:00Z", or None for `total`).
    #[error("budget `{rule}` exceeded: {what}")]
    BudgetExceeded {
        rule: String,
        what: String,
        resets: Option<String>,
        retry_after: Option<Duration>,
    },
    /// Shared limit counters (Redis) cannot answer and `limits.on_redis_error` is `reject`.
    #[error("limit counters are unavailable")]
    LimitsUnavailable,
    /// The usage queue is full (storage is behind): new requests are shed so that no billing
    /// record is lost.
    #[error("the usage queue is full")]
    Overloaded,
    /// The target rejected the request as invalid (a non-retryable 4xx other than auth).
    #[error("the provider rejected the request: {message}")]
    UpstreamRejected { status: u16, message: String },
    /// Every target failed; `last` is the last attempt's error (for the log).
    #[error("every target failed after {attempts} attempts; last: {last}")]
    AllTargetsFailed { attempts: u32, last: ProviderError },
    #[error("every target's circuit is open")]
    AllCircuitsOpen { retry_after: Option<Duration> },
    #[error("the provider timed out ({0:?})")]
    UpstreamTimeout(TimeoutKind),
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn fault(&self) -> Fault {
        use GatewayError::*;
        match self {
            BadRequest(_)
            | MalformedJson(_)
            | ContextWindowExceeded { .. }
            | MissingKey
            | InvalidKey
            | KeyExpired
            | ApprovalRequired(_)
            | SubscriptionPending(_)
            | SubscriptionRejected { .. }
            | ModelNotAllowed(_)
            | UnknownModel(_)
            | UnknownApi(_)
            | ApiNotAllowed(_)
            | ApiRetired { .. }
            | UnknownPrompt(_)
            | InvalidVariables { .. }
            | WrongModelKind { .. }
            | BodyTooLarge { .. }
            | RouteNotFound
            | MethodNotAllowed
            | RateLimited { .. }
            | BudgetExceeded { .. }
            | UpstreamRejected { .. } => Fault::Client,
            AllTargetsFailed { .. }
            | AllCircuitsOpen { .. }
            | UpstreamTimeout(_)
            | InvalidOutput(_) => Fault::Upstream,
            StepFailed { source, .. } => source.fault(),
            ShuttingDown | AuthUnavailable | LimitsUnavailable | Overloaded | Internal(_) => {
                Fault::Internal
            }
        }
    }

    pub fn status(&self) -> u16 {
        use GatewayError::*;
        match self {
            BadRequest(_) | MalformedJson(_) | ContextWindowExceeded { .. } => 400,
            InvalidVariables { .. } => 400,
            ApiNotAllowed(_) => 403,
            UnknownApi(_) | UnknownPrompt(_) => 404,
            ApiRetired { .. } => 410,
            InvalidOutput(_) => 502,
            StepFailed { source, .. } => source.status(),
            WrongModelKind { .. } => 400,
            UpstreamRejected { status: 413, .. } => 413,
            UpstreamRejected { .. } => 400,
            MissingKey | InvalidKey | KeyExpired => 401,
            ModelNotAllowed(_)
            | ApprovalRequired(_)
            | SubscriptionPending(_)
            | SubscriptionRejected { .. } => 403,
            UnknownModel(_) | RouteNotFound => 404,
            MethodNotAllowed => 405,
            BodyTooLarge { .. } => 413,
            RateLimited { .. } | BudgetExceeded { .. } => 429,
            AllTargetsFailed { .. } => 502,
            AllCircuitsOpen { .. }
            | ShuttingDown
            | AuthUnavailable
            | LimitsUnavailable
            | Overloaded => 503,
            UpstreamTimeout(_) => 504,
            Internal(_) => 500,
        }
    }

    /// Stable snake_case code, the `code` field of error bodies and the metric label.
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            BadRequest(ConvertError::Invalid { .. }) => "invalid_request",
            BadRequest(ConvertError::Unsupported { .. }) => "unsupported_parameter",
            MalformedJson(_) => "invalid_json",
            ContextWindowExceeded { .. } => "context_length_exceeded",
            MissingKey => "missing_api_key",
            InvalidKey => "invalid_api_key",
            KeyExpired => "expired_api_key",
            AuthUnavailable => "auth_unavailable",
            ApprovalRequired(_) => "approval_required",
            SubscriptionPending(_) => "subscription_pending",
            SubscriptionRejected { .. } => "subscription_rejected",
            ModelNotAllowed(_) => "model_not_allowed",
            UnknownModel(_) => "model_not_found",
            UnknownApi(_) => "api_not_found",
            ApiNotAllowed(_) => "api_not_allowed",
            ApiRetired { .. } => "api_retired",
            UnknownPrompt(_) => "prompt_not_found",
            InvalidVariables { .. } => "invalid_variables",
            InvalidOutput(_) => "invalid_output",
            StepFailed { .. } => "workflow_step_failed",
            WrongModelKind { .. } => "wrong_model_kind",
            BodyTooLarge { .. } => "request_too_large",
            RouteNotFound => "route_not_found",
            MethodNotAllowed => "method_not_allowed",
            RateLimited { .. } => "rate_limit_exceeded",
            BudgetExceeded { .. } => "budget_exceeded",
            LimitsUnavailable => "limits_unavailable",
            Overloaded => "overloaded",
            UpstreamRejected { .. } => "upstream_rejected_request",
            AllTargetsFailed { .. } => "upstream_error",
            AllCircuitsOpen { .. } => "circuit_open",
            UpstreamTimeout(_) => "upstream_timeout",
            ShuttingDown => "shutting_down",
            Internal(_) => "internal_error",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self.status() {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::Permission,
            404 | 405 | 410 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            502 => ErrorKind::Upstream,
            503 => ErrorKind::Overloaded,
            504 => ErrorKind::Timeout,
            500 => ErrorKind::Internal,
            _ => ErrorKind::InvalidRequest,
        }
    }

    /// How long the client should wait before trying again, for `retry-after`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::RateLimited { retry_after, .. }
            | GatewayError::BudgetExceeded { retry_after, .. }
            | GatewayError::AllCircuitsOpen { retry_after } => *retry_after,
            GatewayError::AllTargetsFailed { last, .. } => last.retry_after(),
            GatewayError::StepFailed { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// What the client is told: a message written for it, never internal details (the log
    /// keeps those). `request_id` is appended so that support can find the log line.
    pub fn to_client(&self, request_id: &str) -> ClientError {
        let param = match self {
            GatewayError::BadRequest(e) => e.param().map(str::to_owned),
            GatewayError::InvalidVariables { variable, .. } => Some(variable.clone()),
            _ => None,
        };
        ClientError {
            status: self.status(),
            kind: self.kind(),
            code: self.code(),
            message: format!("{} (request id {request_id})", self.client_message()),
            param,
        }
    }

    fn client_message(&self) -> String {
        use GatewayError::*;
        match self {
            BadRequest(e) => e.to_string(),
            MalformedJson(detail) => format!(
                "The request body is not valid JSON ({detail}). Send a JSON object."
            ),
            ContextWindowExceeded { alias, input, max_tokens, window } => format!(
                "The request has {input} input tokens and asks for up to {max_tokens} output tokens, but model `{alias}` has a context window of {window} tokens. Shorten the messages or lower max_tokens."
            ),
            MissingKey => "No API key was given. Send it as `Authorization: Bearer KEY` (or `x-api-key`, `api-key`, `x-goog-api-key`).".into(),
            InvalidKey => "The API key is unknown, expired or revoked. Check the key, or ask an admin for a new one.".into(),
            KeyExpired => "The API key has expired. Rotate it or ask an admin for a new one.".into(),
            AuthUnavailable => "Credentials cannot be checked right now (the key store or the identity provider is unreachable). Retry shortly.".into(),
            ModelNotAllowed(alias) => format!("This key may not call model `{alias}`. Ask an admin to grant it."),
            ApprovalRequired(alias) => format!("`{alias}` requires an approved subscription. Request one for your app (POST /admin/v1/orgs/{{org}}/subscriptions) and wait for an admin to approve it."),
            SubscriptionPending(alias) => format!("Your app's subscription request for `{alias}` is pending: an org admin has not approved it yet."),
            SubscriptionRejected { alias, reason } => match reason {
                Some(reason) => format!("Your app's subscription to `{alias}` was rejected: {reason}"),
                None => format!("Your app's subscription to `{alias}` was rejected."),
            },
            UnknownModel(alias) => format!("The model `{alias}` does not exist. GET /v1/models lists the models this key may call."),
            UnknownApi(name) => format!("There is no published API `{name}`. GET /apis/openapi.json lists the APIs."),
            ApiNotAllowed(name) => format!("This key may not call API `{name}`. Ask an admin to grant it."),
            ApiRetired { api, successor } => match successor {
                Some(next) => format!("API `{api}` is retired. Use `{next}` instead."),
                None => format!("API `{api}` is retired and has no successor."),
            },
            UnknownPrompt(name) => format!("There is no stored prompt `{name}` (or it has no such label or version)."),
            InvalidVariables { variable, message } => match variable.as_str() {
                "" => format!("The variables are not valid: {message}"),
                name => format!("Variable `{name}` is not valid: {message}"),
            },
            InvalidOutput(detail) => format!("The model's output did not match the API's output schema, even after one repair attempt: {detail}"),
            StepFailed { step, source } => format!("Workflow step `{step}` failed: {}", source.client_message()),
            WrongModelKind { alias, what } => format!("The model `{alias}` cannot serve {what}."),
            BodyTooLarge { limit } => format!("The request body is larger than the limit of {limit} bytes."),
            RouteNotFound => "There is no such route. See the API documentation for the endpoints.".into(),
            MethodNotAllowed => "This route does not accept that HTTP method.".into(),
            RateLimited { rule, what, retry_after } => match retry_after {
                Some(wait) => format!("Rate limit `{rule}` reached: {what}. Retry in {} s (see the retry-after header).", wait.as_secs_f64().ceil()),
                None => format!("Rate limit `{rule}` reached: {what}. Retry when a request in flight has finished."),
            },
            BudgetExceeded { rule, what, resets, .. } => match resets {
                Some(at) => format!("Budget `{rule}` is spent: {what}. It resets at {at}; ask an admin to raise it."),
                None => format!("Budget `{rule}` is spent: {what}. It does not reset; ask an admin to raise it."),
            },
            LimitsUnavailable => "Rate limits cannot be checked right now (the shared counter store is unreachable). Retry shortly.".into(),
            Overloaded => "The gateway is overloaded (usage records are not being written fast enough). Retry shortly.".into(),
            UpstreamRejected { status, message } => format!("The provider rejected the request ({status}): {message}"),
            AllTargetsFailed { attempts, last } => format!(
                "Every provider for this model failed ({attempts} attempts). Last error: {}. Try again later.",
                summarise(last)
            ),
            AllCircuitsOpen { .. } => "Every provider for this model is failing and temporarily disabled (circuit open). Try again later.".into(),
            UpstreamTimeout(kind) => format!("The provider did not answer in time ({}).", timeout_name(*kind)),
            ShuttingDown => "The gateway is shutting down. Retry on another instance.".into(),
            Internal(_) => "Internal error in the gateway.".into(),
        }
    }
}

fn timeout_name(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::Connect => "connect timeout",
        TimeoutKind::FirstByte => "first byte timeout",
        TimeoutKind::Total => "total timeout",
        TimeoutKind::Idle => "idle timeout between stream chunks",
    }
}

/// A one-line summary of an upstream failure that is safe to show a client: the status or the
/// kind of failure and the provider's own message (already summarised and key-free).
fn summarise(err: &ProviderError) -> String {
    match err {
        ProviderError::Connect(_) => "could not connect to the provider".into(),
        ProviderError::Timeout(kind) => timeout_name(*kind).into(),
        ProviderError::Status {
            status, message, ..
        } => format!("HTTP {status}: {message}"),
        ProviderError::Decode(_) => "the provider's answer could not be understood".into(),
        ProviderError::InBand { kind, message, .. } => format!("{kind}: {message}"),
        ProviderError::Unsupported { message, .. } => message.clone(),
        ProviderError::Closed(_) => "the provider closed the connection early".into(),
    }
}

impl From<ConvertError> for GatewayError {
    fn from(err: ConvertError) -> Self {
        GatewayError::BadRequest(err)
    }
}
