//! The one error type of upstream calls.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutKind {
    Connect,
    FirstByte,
    Total,
    /// Between two chunks of a stream.
    Idle,
}

/// A failed upstream attempt. Messages are summaries for logs: no secrets, no raw bodies.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("could not connect to the provider: {0}")]
    Connect(String),
    #[error("provider timed out ({0:?})")]
    Timeout(TimeoutKind),
    /// The provider answered with a non-success status.
    #[error("provider answered {status}: {message}")]
    Status {
        status: u16,
        /// The provider's own error message, summarised (at most a few hundred characters).
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider's body or stream could not be understood.
    #[error("could not decode the provider's answer: {0}")]
    Decode(String),
    /// The provider reported an error inside a stream or a success body.
    #[error("provider error {kind}: {message}")]
    InBand {
        kind: String,
        message: String,
        retryable: bool,
    },
    /// The request asks for something this provider cannot honour (answers 400 to the client).
    #[error("{message}")]
    Unsupported {
        param: Option<String>,
        message: String,
    },
    /// The connection broke or the stream ended before its terminal event.
    #[error("the provider closed the connection early: {0}")]
    Closed(String),
}

impl ProviderError {
    /// The router's question: may another attempt (same or other target) succeed?
    /// 408, 409, 429, 5xx, connect errors, timeouts and transient in-band errors: yes.
    /// Other 4xx, decode errors and unsupported parameters: no.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Connect(_) | ProviderError::Timeout(_) | ProviderError::Closed(_) => {
                true
            }
            ProviderError::Status { status, .. } => {
                matches!(status, 408 | 409 | 429) || *status >= 500
            }
            ProviderError::InBand { retryable, .. } => *retryable,
            ProviderError::Decode(_) | ProviderError::Unsupported { .. } => false,
        }
    }

    /// A wait the provider asked for (`retry-after`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether this failure counts against the target's circuit breaker: the target is unwell,
    /// as opposed to the request being bad.
    pub fn counts_against_target(&self) -> bool {
        self.is_retryable()
    }
}

impl From<switchboard_protocols::DecodeError> for ProviderError {
    fn from(err: switchboard_protocols::DecodeError) -> Self {
        match err {
            switchboard_protocols::DecodeError::Malformed(m) => ProviderError::Decode(m),
            switchboard_protocols::DecodeError::Upstream {
                kind,
                message,
                retryable,
            } => ProviderError::InBand {
                kind,
                message,
                retryable,
            },
        }
    }
}

impl From<switchboard_protocols::ConvertError> for ProviderError {
    fn from(err: switchboard_protocols::ConvertError) -> Self {
        ProviderError::Unsupported {
            param: err.param().map(str::to_owned),
            message: err.to_string(),
        }
    }
}
