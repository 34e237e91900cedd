//! The HTTP edge: the two chat routes served straight from the connection ([`App::serve`]), the
//! route table for everything else, tower-http's panic catching and the fallbacks that answer
//! unknown routes and wrong methods in the right error format. Handlers live in one file per
//! API family; the chat handler, shared by both families, in `chat.rs`.

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
use axum::body::Body;
use axum::http::{Method, Request};
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use format::ClientFormat;
use futures::FutureExt as _;
use hyper::body::Incoming;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use switchboard_core::{Gateway, GatewayError};
use tower::ServiceExt as _;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// The store and config source behind the gateway (admin API, readiness).
    pub runtime: Arc<Runtime>,
}

/// The whole HTTP application: the two chat routes (see [`App::serve`]), then the route table
/// for everything else.
#[derive(Clone, Debug)]
pub struct App {
    router: Router,
    state: AppState,
}

impl App {
    pub fn new(runtime: Arc<Runtime>) -> App {
        let state = AppState {
            gateway: runtime.gateway.clone(),
            runtime,
        };
        App {
            router: router(state.clone()),
            state,
        }
    }

    /// Serves one request that came from `peer`.
    ///
    /// `POST /v1/chat/completions` and `POST /v1/messages`, nearly all of a gateway's traffic,
    /// go straight to the chat handler: through the router, the route lookup, the clones of
    /// boxed services, the boxed futures and the extension map that carries the peer's address
    /// cost ~6.7k instructions a request (about 7% of the gateway's, `bench/callgrind.sh`).
    /// Everything else goes through the router (which answers other methods on those two paths
    /// with 405); a panic gets the same answer on both paths.
    pub async fn serve(self, req: Request<Incoming>, peer: PeerIp) -> Response {
        let hot = match (req.method(), req.uri().path()) {
            (&Method::POST, "/v1/chat/completions") => Some(ClientFormat::OpenAi),
            (&Method::POST, "/v1/messages") => Some(ClientFormat::Anthropic),
            _ => None,
        };
        let Some(format) = hot else {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(peer);
            return match self.router.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        };
        let (parts, body) = req.into_parts();
        let client = context::client_info(&parts, Some(&peer));
        let handled = chat::handle(format, self.state, parts.headers, client, Body::new(body));
        match AssertUnwindSafe(handled).catch_unwind().await {
            Ok(response) => response,
            Err(panic) => format::panic_response(panic),
        }
    }
}

/// The route table.
fn router(state: AppState) -> Router {
    Router::new()
        // `POST` on the two chat routes never reaches the router (see `App::serve`); other
        // methods get the 405 of their API's format here, with `Allow: POST` (which `any`
        // would leave out).
        .route(
            "/v1/chat/completions",
            openai_post(post(openai_wrong_method)),
        )
        .route("/v1/embeddings", openai_post(post(openai::embeddings)))
        .route(
            "/v1/models",
            get(openai::list_models).fallback(openai_wrong_method),
        )
        .route("/v1/key", get(key::own_key).fallback(openai_wrong_method))
        .route("/v1/messages", anthropic_post(post(anthropic_wrong_method)))
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
