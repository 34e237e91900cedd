//! The prompt playground: `POST /prompts/{name}/render` renders a version (by number or label)
//! with variables through the live config's prompt library, exactly as a call would, and
//! answers the messages a model would receive. No model is called and nothing is recorded.

use super::dto::{RenderRequest, Rendered};
use crate::admin::auth::Caller;
use crate::admin::config::require_reader;
use crate::admin::error::{ApiError, ApiResult};
use crate::admin::extract::Body;
use crate::admin::openapi::Errors;
use crate::http::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_core::config::prompts::DEFAULT_LABEL;
use switchboard_core::GatewayError;

/// Renders a prompt version with variables (the playground). `version` or `label` (default
/// `production`) picks the version; for a split label, `ab_key` picks the arm as a caller's
/// key would. 400 names the bad variable in `param`.
#[utoipa::path(post, path = "/prompts/{name}/render", tag = "prompts",
    request_body = RenderRequest,
    params(("name" = String, Path, description = "Prompt name (stored or in the server's file)")),
    responses((status = 200, body = Rendered), Errors))]
pub async fn render_prompt(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<RenderRequest>,
) -> ApiResult<Json<Rendered>> {
    require_reader(&caller)?;
    let snapshot = state.gateway.snapshot();
    let library = &snapshot.prompts;
    let (version, label) = match (body.version, body.label) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give `version` or `label`, not both"))
        }
        (Some(version), None) => (version, None),
        (None, label) => {
            let label = label.unwrap_or_else(|| DEFAULT_LABEL.to_owned());
            let sticky = body.ab_key.as_deref().unwrap_or(&caller.actor.id);
            let chosen = library
                .choose(&name, &label, sticky)
                .map_err(|e| gateway_error(&name, e))?;
            (chosen.version, Some(label))
        }
    };
    let rendered = library
        .render(&name, version, &body.variables)
        .map_err(|e| gateway_error(&name, e))?;
    let messages = rendered.messages();
    Ok(Json(Rendered {
        prompt: rendered.prompt,
        version: rendered.version,
        label,
        system: rendered.system,
        user: rendered.user,
        params: rendered.params,
        messages,
    }))
}

/// The library's errors in the admin shape: a bad variable is a 400 naming it.
fn gateway_error(name: &str, err: GatewayError) -> ApiError {
    match err {
        GatewayError::InvalidVariables { variable, message } => {
            if variable.is_empty() {
                let message = format!("The variables are not valid: {message}");
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_variables", message)
                    .with_param("variables")
            } else {
                let message = format!("Variable `{variable}` is not valid: {message}");
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_variables", message)
                    .with_param(variable)
            }
        }
        GatewayError::UnknownPrompt(what) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no prompt `{what}` in the running config (prompt `{name}`, its label or version)"
            ),
        ),
        other => {
            tracing::error!(error = %other, prompt = %name, "Playground render failed.");
            ApiError::internal()
        }
    }
}
