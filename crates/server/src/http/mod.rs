//! The HTTP edge: the route table, tower-http layers (panic catching, tracing) and the
//! fallbacks that answer unknown routes and wrong methods in the right error format.
//! Handlers live in one file per API family.

mod anthropic;
mod apis;
mod capture;
mod chat;
mod context;
pub use context::PeerIp;
mod format;
mod health;
mod key;
pub mod metrics;
mod openai;
mod sse;

use crate::runtime::Runtime;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use format::ClientFormat;
use std::sync::Arc;
use switchboard_core::{Gateway, GatewayError};

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// The store and config source behind the gateway (admin API, readiness).
    pub runtime: Arc<Runtime>,
}

/// The whole HTTP application.
pub fn router(runtime: Arc<Runtime>) -> Router {
    let state = AppState {
        gateway: runtime.gateway.clone(),
        runtime,
    };
    Router::new()
        .route(
            "/v1/chat/completions",
            openai_post(post(openai::chat_completions)),
        )
        .route("/v1/embeddings", openai_post(post(openai::embeddings)))
        .route(
            "/v1/models",
            get(openai::list_models).fallback(openai_wrong_method),
        )
        .route("/v1/key", get(key::own_key).fallback(openai_wrong_method))
        .route("/v1/messages", anthropic_post(post(anthropic::messages)))
        .route(
            "/v1/messages/count_tokens",
            anthropic_post(post(anthropic::count_tokens)),
        )
        .route(
            "/apis/openapi.json",
            get(apis::openapi_all).fallback(openai_wrong_method),
        )
        .route("/apis/{name}", openai_post(post(apis::call)))
        .route(
            "/apis/{name}/openapi.json",
            get(apis::openapi_one).fallback(openai_wrong_method),
        )
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::render))
        .route("/readyz", get(health::readyz))
        .nest(crate::admin::PREFIX, crate::admin::router())
        .fallback(not_found)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            format::panic_response,
        ))
        .with_state(state)
}

fn openai_post(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(openai_wrong_method)
}

fn anthropic_post(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(anthropic_wrong_method)
}

async fn openai_wrong_method() -> axum::response::Response {
    ClientFormat::OpenAi.error_response(&GatewayError::MethodNotAllowed, &context::new_request_id())
}

async fn anthropic_wrong_method() -> axum::response::Response {
    ClientFormat::Anthropic
        .error_response(&GatewayError::MethodNotAllowed, &context::new_request_id())
}

/// Unknown routes: Anthropic's error shape under `/v1/messages`, OpenAI's everywhere else.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    let format = if uri.path().starts_with("/v1/messages") {
        ClientFormat::Anthropic
    } else {
        ClientFormat::OpenAi
    };
    format.error_response(&GatewayError::RouteNotFound, &context::new_request_id())
}
