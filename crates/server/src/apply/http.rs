//! The admin API's config-as-code routes, nested at `/admin/v1/config`: `POST /apply` (a YAML
//! document in the body; `?dry_run=true` plans only) and `GET /export` (YAML). Platform admin
//! only: a document spans every tenant.
//!
//! `/apply` answers JSON `{changes, notes, applied, summary}`, or, when the request accepts
//! `application/x-ndjson`, a stream of one JSON event per line: `plan` (the diff, before
//! anything is written), one `applied` per committed change, then `done` or `error`; that is
//! how `switchboard apply` shows progress. Validation and planning failures answer a plain
//! error status before any streaming starts. The run itself is a spawned task: a client that
//! goes away does not stop an apply half way.

use super::{
    apply, export, summary, ApplyError, Change, Document, Outcome, PartialFailure, Plan, ServerFile,
};
use crate::admin::auth::Caller;
use crate::admin::error::ApiError;
use crate::admin::extract::Params;
use crate::http::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use switchboard_core::config::Problem;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes, with their OpenAPI description (nest at `/config`).
pub fn openapi_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apply_config))
        .routes(routes!(export_config))
}

/// The routes as a plain router (nest at `/admin/v1/config`).
pub fn routes() -> axum::Router<AppState> {
    openapi_routes().split_for_parts().0
}

/// The media type of the streamed answer.
pub const NDJSON: &str = "application/x-ndjson";

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplyParams {
    /// Plan only: report the changes, write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// The document's file name, used in problems (default `(document)`).
    pub name: Option<String>,
}

/// The answer of `POST /config/apply`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ApplyResponse {
    /// Every change of the plan, in the order it runs.
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<Change>,
    /// Things to know that are not changes (ignored server settings).
    pub notes: Vec<String>,
    /// False for a dry run.
    pub applied: bool,
    /// `N to create, N to update, N to delete`.
    pub summary: String,
}

impl From<Outcome> for ApplyResponse {
    fn from(outcome: Outcome) -> ApplyResponse {
        ApplyResponse {
            summary: summary(&outcome.changes),
            changes: outcome.changes,
            notes: outcome.notes,
            applied: outcome.applied,
        }
    }
}

/// What the run task reports.
enum Event {
    Planned(Plan),
    Applied(Change),
    Finished(Result<Outcome, ApplyError>),
}

/// Makes the stored providers, models, organisations, teams, apps, rate limits and budgets
/// equal to the YAML document in the body (platform admin). Sections the document leaves out are not touched.
#[utoipa::path(post, path = "/apply", tag = "config", params(ApplyParams),
    request_body(content = String, content_type = "application/yaml",
        description = "A config document: `providers:`, `models:`, `orgs:`, `rate_limits:`, \
            `budgets:`"),
    responses(
        (status = 200, body = ApplyResponse,
            description = "The plan, and whether it was applied (also as NDJSON events)"),
        (status = 400, description = "The document is not valid (`error.problems` lists file, \
            line, column and key of each problem); nothing was changed"),
        (status = 401, description = "No or an unknown credential"),
        (status = 403, description = "Not the platform admin"),
        (status = 500, description = "A step failed after others were applied \
            (`error.applied` lists them), or an internal error"),
    ))]
pub async fn apply_config(
    State(state): State<AppState>,
    caller: Caller,
    Params(params): Params<ApplyParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(err) = caller.require_platform() {
        return err.into_response();
    }
    let doc = match document(&params, &body) {
        Ok(doc) => doc,
        Err(err) => return err.into_response(),
    };
    let server = match ServerFile::from_source(&state.runtime.source) {
        Ok(server) => server,
        Err(err) => return error_response(err),
    };
    let streaming = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(NDJSON));
    let store = state.runtime.store.clone();
    let runtime = state.runtime.clone();
    let dry_run = params.dry_run;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Spawned, so that a client going away does not cancel an apply between two steps.
    tokio::spawn(async move {
        let events = tx.clone();
        let mut on_plan = |plan: &Plan| {
            let _ = events.send(Event::Planned(plan.clone()));
        };
        let progress_tx = tx.clone();
        let mut progress = |change: &Change| {
            let _ = progress_tx.send(Event::Applied(change.clone()));
        };
        let result = apply(&store, &server, &doc, dry_run, &mut on_plan, &mut progress).await;
        let wrote = match &result {
            Ok(outcome) => outcome.applied && !outcome.changes.is_empty(),
            Err(err) => {
                log_failure(err);
                matches!(err, ApplyError::Partial(p) if !p.applied.is_empty())
            }
        };
        if wrote {
            // Live on this instance when the answer arrives (others follow the change feed).
            if let Err(why) = runtime.reload().await {
                tracing::warn!(%why, "Config rebuild after apply was refused.");
            }
        }
        let _ = tx.send(Event::Finished(result));
    });

    // Until the plan exists, failures get their own status.
    let plan = loop {
        match rx.recv().await {
            Some(Event::Planned(plan)) => break plan,
            Some(Event::Applied(_)) => continue,
            Some(Event::Finished(Ok(outcome))) => {
                return axum::Json(ApplyResponse::from(outcome)).into_response()
            }
            Some(Event::Finished(Err(err))) => return error_response(err),
            None => return ApiError::internal().into_response(),
        }
    };
    if !streaming {
        while let Some(event) = rx.recv().await {
            if let Event::Finished(result) = event {
                return match result {
                    Ok(outcome) => axum::Json(ApplyResponse::from(outcome)).into_response(),
                    Err(err) => error_response(err),
                };
            }
        }
        return ApiError::internal().into_response();
    }
    let first = line(&json!({
        "event": "plan",
        "changes": plan.changes,
        "notes": plan.notes,
        "summary": summary(&plan.changes),
        "dry_run": dry_run,
    }));
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let text = match event {
            Event::Planned(_) => return Some((Bytes::new(), rx)),
            Event::Applied(change) => line(&json!({"event": "applied", "change": change})),
            Event::Finished(Ok(outcome)) => line(&json!({
                "event": "done",
                "applied": outcome.applied,
                "summary": summary(&outcome.changes),
            })),
            Event::Finished(Err(err)) => {
                let (_, body) = error_body(err);
                line(&json!({"event": "error", "error": body["error"]}))
            }
        };
        Some((text, rx))
    });
    let stream = futures::StreamExt::map(
        futures::StreamExt::chain(futures::stream::iter([first]), rest),
        Ok::<Bytes, std::convert::Infallible>,
    );
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The body as a document: UTF-8 YAML, not empty.
fn document(params: &ApplyParams, body: &Bytes) -> Result<Document, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the document must be UTF-8 text (YAML)"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the request needs a YAML document in its body (`providers:`, `models:`, `orgs:`)",
        ));
    }
    let name = params.name.as_deref().unwrap_or("(document)");
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "`name` must be 1-256 characters without control characters",
        ));
    }
    Ok(Document {
        name: name.to_owned(),
        text: text.to_owned(),
    })
}

fn log_failure(err: &ApplyError) {
    match err {
        ApplyError::Invalid { .. } => {}
        ApplyError::Partial(partial) => {
            tracing::error!(error = %partial.error, %err, "Config apply stopped part way.")
        }
        other => tracing::error!(error = %other, "Config apply failed."),
    }
}

/// The status and JSON error body of a failed apply or export.
fn error_body(err: ApplyError) -> (StatusCode, Value) {
    let message = err.to_string();
    match err {
        ApplyError::Invalid { context, problems } => {
            let problems: Vec<Value> = problems.iter().map(problem_json).collect();
            let body = json!({"error": {
                "message": message,
                "type": "invalid_request_error",
                "code": "invalid_config",
                "param": null,
                "context": context,
                "problems": problems,
            }});
            (StatusCode::BAD_REQUEST, body)
        }
        ApplyError::Store(store) => {
            let api = ApiError::from(store);
            (api.status, api_json(&api))
        }
        ApplyError::Partial(partial) => {
            let PartialFailure {
                applied,
                failed,
                not_attempted,
                error,
            } = *partial;
            let cause = ApiError::from(error);
            let message = format!(
                "apply stopped at `{failed}`: {}. {} change(s) were applied before it and {} \
                 were not attempted; fix the cause and apply again to finish",
                cause.message,
                applied.len(),
                not_attempted
            );
            let body = json!({"error": {
                "message": message,
                "type": "server_error",
                "code": "apply_incomplete",
                "param": null,
                "applied": applied,
                "failed": failed,
                "not_attempted": not_attempted,
            }});
            (StatusCode::INTERNAL_SERVER_ERROR, body)
        }
        ApplyError::Server(message) => {
            let api = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message);
            (api.status, api_json(&api))
        }
    }
}

fn api_json(api: &ApiError) -> Value {
    serde_json::to_value(api.body()).unwrap_or(Value::Null)
}

fn error_response(err: ApplyError) -> Response {
    let (status, body) = error_body(err);
    (status, axum::Json(body)).into_response()
}

fn problem_json(p: &Problem) -> Value {
    json!({
        "file": p.file,
        "line": p.line,
        "column": p.column,
        "key": p.key,
        "message": p.message,
    })
}

/// The stored providers, models, organisations, teams, apps, rate limits and budgets as a YAML
/// document that
/// `POST /config/apply` accepts (platform admin). Provider API keys are never exported.
#[utoipa::path(get, path = "/export", tag = "config",
    responses(
        (status = 200, content_type = "application/yaml", body = String),
        (status = 401, description = "No or an unknown credential"),
        (status = 403, description = "Not the platform admin"),
    ))]
pub async fn export_config(State(state): State<AppState>, caller: Caller) -> Response {
    if let Err(err) = caller.require_platform() {
        return err.into_response();
    }
    let result = match ServerFile::from_source(&state.runtime.source) {
        Ok(server) => export(&state.runtime.store, &server).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(yaml) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            )],
            yaml,
        )
            .into_response(),
        Err(err) => {
            log_failure(&err);
            error_response(err)
        }
    }
}
