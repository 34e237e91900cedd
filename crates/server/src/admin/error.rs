//! The admin API's errors: the OpenAI error shape `{"error":{"message","type","code","param"}}`
//! that the data plane uses too, with a status per failure. Storage errors are mapped here, in
//! one place; database details go to the log and never into a response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_core::auth::roles::Action;
use switchboard_store::StoreError;
use utoipa::ToSchema;

/// A failed admin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable snake_case code, e.g. `not_found`, `forbidden`.
    pub code: &'static str,
    /// What was wrong and what to do, for a person.
    pub message: String,
    /// The request field the error is about, when there is one.
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            param: None,
        }
    }

    /// The error is about this request field.
    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    /// 400: the request is malformed or a value is not acceptable.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400 about one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::bad_request(message).with_param(field)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403 with a message that says what is needed.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 for a person whose role is too low: names the least role that would do.
    pub fn role_needed(action: Action, scope: &str) -> ApiError {
        ApiError::forbidden(format!(
            "to {action} you need the role `{}` or higher on {scope}",
            action.min_role()
        ))
    }

    /// 403 for what only the bootstrap `admin_key` may do.
    pub fn platform_only() -> ApiError {
        ApiError::forbidden(
            "only the platform admin (the `admin_key` of the server's config) may do this",
        )
    }

    /// 404 for an object of `kind` called `name`; also what another tenant's objects give.
    pub fn not_found(kind: &str, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} `{name}` not found"),
        )
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 500 with nothing of the cause (which the caller logs).
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the server log has the details",
        )
    }

    /// The OpenAI `type` for the status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            409 => "conflict_error",
            503 => "service_unavailable_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind().to_owned(),
                code: self.code.to_owned(),
                param: self.param.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// `{"error": {...}}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error`, `conflict_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    /// The request field the error is about.
    pub param: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound { kind, name } => ApiError::not_found(kind, &name),
            StoreError::Conflict(message) => ApiError::conflict(message),
            err @ StoreError::Managed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "managed_by_apply", err.to_string())
            }
            err @ StoreError::Immutable(_) => {
                ApiError::new(StatusCode::CONFLICT, "version_immutable", err.to_string())
            }
            StoreError::Invalid(message) => ApiError::bad_request(message),
            // The operator's setup (no or a wrong SWITCHBOARD_SECRET_KEY): the message says how
            // to fix it and holds no secret.
            StoreError::Crypto(message) => {
                tracing::warn!(%message, "Cannot encrypt or decrypt a stored secret.");
                ApiError::new(StatusCode::BAD_REQUEST, "encryption_unavailable", message)
            }
            err @ (StoreError::Database(_) | StoreError::Sqlite(_) | StoreError::Migrate(_)) => {
                tracing::error!(error = %err, "Admin API storage failure.");
                ApiError::internal()
            }
        }
    }
}

/// What admin handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
