//! The chat handler shared by both API families: read the body, parse it in the client's
//! format, run the pipeline, render the answer (JSON or SSE) in the same format.

use super::capture::{self, StreamCapture};
use super::context::request_context;
use super::format::{apply_rate, json_body, CallMeta, ClientFormat};
use super::{sse, AppState};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use switchboard_core::pipeline::Served;
use switchboard_core::prompts::reference;
use switchboard_core::usage::ClientInfo;
use switchboard_core::{GatewayError, RequestContext, Snapshot};
use switchboard_protocols::ConvertError;
use switchboard_types::ChatRequest;

/// A request that passed the steps every data-plane route shares: the snapshot it will use,
/// an authenticated context, and its body (within the size limit).
pub struct Prepared {
    pub snapshot: Arc<Snapshot>,
    pub ctx: RequestContext,
    pub body: Bytes,
}

/// Authenticates first (a client without a valid key learns that before anything about its
/// body), then reads the body. Errors come back as finished responses in `format`.
pub async fn prepare(
    format: ClientFormat,
    state: &AppState,
    headers: &HeaderMap,
    client: ClientInfo,
    body: Body,
) -> Result<Prepared, Response> {
    let snapshot = state.gateway.snapshot();
    let mut ctx = request_context(headers);
    ctx.client = client;
    if let Err(err) = snapshot.authenticate(&mut ctx).await {
        return Err(format.error_response(&err, &ctx.request_id));
    }
    match read_body(body, snapshot.config.limits.max_body_bytes).await {
        Ok(body) => Ok(Prepared {
            snapshot,
            ctx,
            body,
        }),
        Err(err) => Err(format.error_response(&err, &ctx.request_id)),
    }
}

pub async fn handle(
    format: ClientFormat,
    state: AppState,
    headers: HeaderMap,
    client: ClientInfo,
    body: Body,
) -> Response {
    let Prepared {
        snapshot,
        mut ctx,
        body: bytes,
    } = match prepare(format, &state, &headers, client, body).await {
        Ok(prepared) => prepared,
        Err(response) => return response,
    };
    let request_id = ctx.request_id.clone();
    let mut req = match format.parse_chat(&bytes) {
        Ok(req) => req,
        Err(err) => return format.error_response(&err.into(), &request_id),
    };
    // Only a request that references a stored prompt pays for rendering it.
    let mut prompt_version = None;
    if req.prompt.is_some() {
        match render_prompt(&snapshot, &mut ctx, &headers, req) {
            Ok((rendered, version)) => {
                req = rendered;
                prompt_version = Some(version);
            }
            Err(err) => return format.error_response(&err, &request_id),
        }
    }
    let alias = req.model.clone();
    let capture = capture::start(&state, &snapshot.config, &ctx, &alias, &bytes);
    let meta = CallMeta {
        request_id: &request_id,
        alias: &alias,
        target: None,
        attempts: 0,
    };

    if req.stream {
        let Served { routed, meter } = match snapshot.chat_stream(&mut ctx, &req).await {
            Ok(served) => served,
            Err(failure) => {
                capture::failed(capture);
                return format.failure_response(&failure, &meta);
            }
        };
        let rate = meter.admission().headers();
        let body = sse::body(
            routed.value,
            format.encoder(&req),
            request_id.clone(),
            routed.attempts,
            meter,
            StreamCapture::new(capture),
        );
        let mut response = sse::response(body);
        let headers = response.headers_mut();
        CallMeta {
            target: Some(&routed.target),
            attempts: routed.attempts,
            ..meta
        }
        .apply(headers);
        apply_rate(headers, &rate);
        apply_notes(headers, &ctx, prompt_version.as_deref());
        response
    } else {
        let Served {
            mut routed,
            mut meter,
        } = match snapshot.chat(&mut ctx, &req).await {
            Ok(served) => served,
            Err(failure) => {
                capture::failed(capture);
                return format.failure_response(&failure, &meta);
            }
        };
        if routed.value.created == 0 {
            routed.value.created = switchboard_protocols::unix_now();
        }
        let rendered = format.render_chat(&routed.value);
        if let Some(capture) = capture {
            capture.finish(Some(&rendered));
        }
        let mut response = (StatusCode::OK, json_body(rendered)).into_response();
        meter.finish();
        let headers = response.headers_mut();
        CallMeta {
            target: Some(&routed.target),
            attempts: routed.attempts,
            ..meta
        }
        .apply(headers);
        apply_rate(headers, &meter.admission().headers());
        apply_notes(headers, &ctx, prompt_version.as_deref());
        response
    }
}

const X_SWITCHBOARD_CONTEXT: HeaderName = HeaderName::from_static("x-switchboard-context");
const X_SWITCHBOARD_PROMPT_VERSION: HeaderName =
    HeaderName::from_static("x-switchboard-prompt-version");
/// Which arm of a split prompt label a caller gets, when not the key's own.
pub(super) const X_SWITCHBOARD_AB_KEY: &str = "x-switchboard-ab-key";

/// Renders the stored prompt `req` references (see `switchboard_core::prompts::reference`)
/// and tags the call `prompt=<name>@<version>` for the usage record, the log and analytics.
/// Returns the rendered request and `<name>@<version>`.
fn render_prompt(
    snapshot: &Snapshot,
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    req: ChatRequest,
) -> Result<(ChatRequest, String), GatewayError> {
    let ab_key = headers
        .get(X_SWITCHBOARD_AB_KEY)
        .and_then(|v| v.to_str().ok());
    let sticky = switchboard_core::apis::sticky_key(ab_key, ctx);
    let (req, version) = reference::resolve(&snapshot.prompts, req, &sticky)?;
    // A client's own `prompt=` tag was dropped at the edge (`usage::RESERVED_TAGS`).
    ctx.tags.push(("prompt".to_owned(), version.clone()));
    Ok((req, version))
}

/// Headers about what the gateway did to the request: `x-switchboard-prompt-version` when it
/// rendered a stored prompt, `x-switchboard-context` when it truncated the conversation to fit
/// the context window.
pub(super) fn apply_notes(
    headers: &mut HeaderMap,
    ctx: &RequestContext,
    prompt_version: Option<&str>,
) {
    if let Some(trimmed) = &ctx.trimmed {
        if let Ok(value) = HeaderValue::from_str(&trimmed.header_value()) {
            headers.insert(X_SWITCHBOARD_CONTEXT, value);
        }
    }
    if let Some(version) = prompt_version {
        if let Ok(value) = HeaderValue::from_str(version) {
            headers.insert(X_SWITCHBOARD_PROMPT_VERSION, value);
        }
    }
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    match switchboard_providers::body::collect(http_body_util::Limited::new(body, limit)).await {
        Ok(bytes) => Ok(bytes),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(GatewayError::BodyTooLarge { limit })
        }
        Err(err) => Err(GatewayError::BadRequest(ConvertError::invalid(
            None,
            format!("The request body could not be read: {err}"),
        ))),
    }
}
