//! Anthropic-format routes: token counting (Messages itself is served by `App::serve` through
//! the chat handler), so that Anthropic SDK clients work unchanged against any target.

use super::chat::{prepare, Prepared};
use super::format::{json_body, ClientFormat};
use super::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use switchboard_core::usage::ClientInfo;
use switchboard_protocols::anthropic;

/// `POST /v1/messages/count_tokens`: the gateway's own count (see docs: exact for OpenAI
/// models, an estimate for others).
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let format = ClientFormat::Anthropic;
    let Prepared {
        snapshot,
        mut ctx,
        body: bytes,
    } = match prepare(format, &state, &headers, ClientInfo::default(), body).await {
        Ok(prepared) => prepared,
        Err(response) => return response,
    };
    let request_id = ctx.request_id.clone();
    let req = match anthropic::parse_count_tokens_request(&bytes) {
        Ok(req) => req,
        Err(err) => return format.error_response(&err.into(), &request_id),
    };
    match snapshot.count_tokens(&mut ctx, &req) {
        Ok(tokens) => {
            let mut response = (
                StatusCode::OK,
                json_body(anthropic::render_count_tokens(tokens)),
            )
                .into_response();
            if let Ok(value) = request_id.parse() {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        }
        Err(err) => format.error_response(&err, &request_id),
    }
}
