//! The data plane, in order. Each kind of call is one function that reads top to bottom:
//! who is calling, may they call this model, is the request admissible, then route (with
//! retries, fallbacks and circuit breakers). Handlers in the server parse the client's format,
//! call one of these, and render the result in the client's format.

use crate::auth::Principal;
use crate::error::GatewayError;
use crate::gateway::Snapshot;
use crate::routing::{CallInfo, RouteFailure, Routed};
use crate::tokens;
use switchboard_providers::ChatEventStream;
use switchboard_types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse};

/// The key a client presented, from whichever header carried it.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    pub api_key: Option<String>,
}

/// Per-request state that passes through the pipeline.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    pub request_id: String,
    pub traceparent: Option<String>,
    pub credentials: Credentials,
    /// Set by authentication.
    pub principal: Option<Principal>,
}

impl RequestContext {
    fn call_info(&self) -> CallInfo<'_> {
        CallInfo {
            request_id: &self.request_id,
            traceparent: self.traceparent.as_deref(),
        }
    }
}

impl From<GatewayError> for RouteFailure {
    fn from(error: GatewayError) -> Self {
        RouteFailure {
            error,
            attempts: 0,
            last_target: None,
        }
    }
}

impl Snapshot {
    /// A whole chat completion.
    pub async fn chat(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        self.admit_chat(ctx, req)?;
        self.router.chat(req, &ctx.call_info()).await
    }

    /// A streamed chat completion. Resolves when the first event is in hand, so that every
    /// retry and fallback happens before the client sees a byte.
    pub async fn chat_stream(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<Routed<ChatEventStream>, RouteFailure> {
        self.admit_chat(ctx, req)?;
        self.router.chat_stream(req, &ctx.call_info()).await
    }

    pub async fn embed(
        &self,
        ctx: &mut RequestContext,
        req: &EmbedRequest,
    ) -> Result<Routed<EmbedResponse>, RouteFailure> {
        self.authorize(ctx, &req.model)?;
        self.router.embed(req, &ctx.call_info()).await
    }

    /// Input tokens of a request, for `/v1/messages/count_tokens`.
    pub fn count_tokens(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<u64, GatewayError> {
        self.authorize(ctx, &req.model)?;
        Ok(tokens::count_input(req))
    }

    /// The aliases the caller may call, for `GET /v1/models`.
    pub async fn visible_models(
        &self,
        ctx: &mut RequestContext,
    ) -> Result<Vec<String>, GatewayError> {
        let who = self.authenticate(ctx).await?;
        Ok(self
            .router
            .aliases()
            .filter(|alias| {
                let gated = self
                    .router
                    .model(alias)
                    .is_some_and(|m| m.requires_approval);
                self.auth.may_call(&who, alias, gated)
            })
            .map(str::to_owned)
            .collect())
    }

    /// Step 1, who is calling. Handlers call it before parsing the body, so that a client
    /// without a valid key learns that first; later steps reuse the result.
    pub async fn authenticate(&self, ctx: &mut RequestContext) -> Result<Principal, GatewayError> {
        if let Some(who) = &ctx.principal {
            return Ok(who.clone());
        }
        let presented = ctx.credentials.api_key.as_deref();
        let who = self.auth.authenticate(presented).await?; // 1 who is calling (cached lookup)
        ctx.principal = Some(who.clone());
        Ok(who)
    }

    /// Step 2, may the caller (authenticated by the handler) call `alias`.
    fn authorize(&self, ctx: &RequestContext, alias: &str) -> Result<(), GatewayError> {
        let who = ctx.principal.as_ref().ok_or(GatewayError::MissingKey)?;
        let Some(model) = self.router.model(alias) else {
            return Err(GatewayError::UnknownModel(alias.to_owned()));
        };
        self.auth.check_model(who, alias, model.requires_approval) // 2 may they call it
    }

    fn admit_chat(&self, ctx: &mut RequestContext, req: &ChatRequest) -> Result<(), GatewayError> {
        self.authorize(ctx, &req.model)?;
        self.check_context_window(req) // 3 does it fit
    }

    /// 400 when the prompt cannot fit the alias's configured context window. Counting only
    /// happens when the cheap upper bound says it might not fit.
    fn check_context_window(&self, req: &ChatRequest) -> Result<(), GatewayError> {
        let Some(window) = self.router.model(&req.model).and_then(|m| m.context_window) else {
            return Ok(());
        };
        let reserved = u64::from(req.max_tokens.unwrap_or(0));
        if tokens::upper_bound(req) + reserved <= u64::from(window) {
            return Ok(());
        }
        let input = tokens::count_input(req);
        if input + reserved > u64::from(window) {
            return Err(GatewayError::ContextWindowExceeded {
                alias: req.model.clone(),
                input,
                max_tokens: reserved,
                window,
            });
        }
        Ok(())
    }
}
