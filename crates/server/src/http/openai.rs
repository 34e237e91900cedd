//! OpenAI-format routes: embeddings and the model list (chat completions are served by
//! `App::serve` through the chat handler).

use super::capture;
use super::chat::{prepare, Prepared};
use super::context::{request_context, Edge};
use super::format::{apply_rate, json_body, CallMeta, ClientFormat};
use super::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_core::pipeline::Served;
use switchboard_protocols::openai;

/// Takes the request whole and moves its headers out: axum's `HeaderMap` extractor would clone
/// them on every call. (Chat completions are served by `App::serve`, before the router.)
pub async fn embeddings(
    State(state): State<AppState>,
    Edge(client): Edge,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let format = ClientFormat::OpenAi;
    let Prepared {
        snapshot,
        mut ctx,
        body: bytes,
    } = match prepare(format, &state, &headers, client, body).await {
        Ok(prepared) => prepared,
        Err(response) => return response,
    };
    let request_id = ctx.request_id.clone();
    let req = match openai::parse_embed_request(&bytes) {
        Ok(req) => req,
        Err(err) => return format.error_response(&err.into(), &request_id),
    };
    let capture = capture::start(&state, &snapshot.config, &ctx, &req.model, &bytes);
    let meta = CallMeta {
        request_id: &request_id,
        alias: &req.model,
        target: None,
        attempts: 0,
    };
    match snapshot.embed(&mut ctx, &req).await {
        Ok(Served { routed, meter }) => {
            let body = bytes::Bytes::from(openai::render_embed_response(&routed.value));
            if let Some(capture) = capture {
                capture.finish(Some(&body));
            }
            let mut response = (StatusCode::OK, json_body(body)).into_response();
            let headers = response.headers_mut();
            CallMeta {
                target: Some(&routed.target),
                attempts: routed.attempts,
                ..meta
            }
            .apply(headers);
            apply_rate(headers, &meter.admission().headers());
            response
        }
        Err(failure) => {
            capture::failed(capture);
            format.failure_response(&failure, &meta)
        }
    }
}

/// `GET /v1/models`: every alias this key may call, chat and embedding alike.
pub async fn list_models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let snapshot = state.gateway.snapshot();
    let mut ctx = request_context(&headers);
    match snapshot.visible_models(&mut ctx).await {
        Ok(aliases) => {
            let data: Vec<_> = aliases
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "switchboard"}))
                .collect();
            let body = json!({"object": "list", "data": data});
            let mut response =
                (StatusCode::OK, json_body(body.to_string().into_bytes())).into_response();
            CallMeta {
                request_id: &ctx.request_id,
                alias: "",
                target: None,
                attempts: 0,
            }
            .apply(response.headers_mut());
            response
        }
        Err(err) => ClientFormat::OpenAi.error_response(&err, &ctx.request_id),
    }
}
