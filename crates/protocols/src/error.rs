//! Errors of conversion and decoding, and the client-facing error description that each format
//! renders in its own shape.

/// The category of a client-facing error. Each format maps it to its own `type` string (OpenAI
/// `invalid_request_error`, Anthropic `invalid_request_error`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    /// The upstream failed (502).
    Upstream,
    /// No target can take the request now (503).
    Overloaded,
    Timeout,
    Internal,
}

/// What a client is told about a failure, independent of the format it is rendered in. Never
/// carries internal details: `message` is written for the client.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientError {
    pub status: u16,
    pub kind: ErrorKind,
    /// Stable snake_case code, e.g. `model_not_found`.
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

/// A client's request cannot be converted: malformed, or asks for something the target cannot
/// honour. Both answer 400.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConvertError {
    #[error("{message}")]
    Invalid {
        param: Option<String>,
        message: String,
    },
    #[error("{message}")]
    Unsupported { param: String, message: String },
}

impl ConvertError {
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        ConvertError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
    pub fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        ConvertError::Unsupported {
            param: param.into(),
            message: message.into(),
        }
    }
    pub fn param(&self) -> Option<&str> {
        match self {
            ConvertError::Invalid { param, .. } => param.as_deref(),
            ConvertError::Unsupported { param, .. } => Some(param),
        }
    }
}

/// A provider's response or stream could not be understood, or reported an error in-band.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed upstream body: {0}")]
    Malformed(String),
    /// The provider sent an error inside a stream or a 200 body. `kind` is the provider's own
    /// error type string, `message` its message (for the log, not the client).
    #[error("upstream error {kind}: {message}")]
    Upstream {
        kind: String,
        message: String,
        /// Whether the provider's error type is transient (overloaded, rate limited, 5xx).
        retryable: bool,
    },
}
