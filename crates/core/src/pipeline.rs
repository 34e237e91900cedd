//! The data plane, in order. Each kind of call is one function that reads top to bottom:
//! who is calling, may they call this model, is the request admissible, then route (with
//! retries, fallbacks and circuit breakers). Handlers in the server parse the client's format,
//! call one of these, and render the result in the client's format.

use crate::auth::Principal;
use crate::context;
use crate::error::GatewayError;
use crate::gateway::Snapshot;
use crate::limits::{Admission, Demand, Plan, Refusal, RequestGate, Who};
use crate::routing::{CallInfo, RouteFailure, Routed, TargetGate, TraceIds};
use crate::tokens;
use crate::trace::{CallTrace, RequestFacts};
use crate::usage::{CallKind, Caller, ClientInfo, Meter, MeterStart};
use std::borrow::Cow;
use switchboard_providers::ChatEventStream;
use switchboard_types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse};
use switchboard_types::{EmbedInput, MicroUsd};

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
    /// `x-switchboard-tags`, for the usage record and analytics.
    pub tags: Vec<(String, String)>,
    /// Peer address, user agent and route, for the call log.
    pub client: ClientInfo,
    /// A prompt API's own context-window policy, over the alias's (set by the API handler).
    pub context_policy: Option<crate::config::prompts::ContextPolicy>,
    /// Set by the pipeline when the request was truncated to fit the context window (for the
    /// `x-switchboard-context` response header).
    pub trimmed: Option<crate::context::Trimmed>,
}

impl RequestContext {
    fn call_info_with<'a>(
        &'a self,
        gate: Option<&'a RequestGate<'a>>,
        trace: Option<TraceIds>,
    ) -> CallInfo<'a> {
        CallInfo {
            request_id: &self.request_id,
            traceparent: self.traceparent.as_deref(),
            trace,
            gate: gate.map(|g| g as &dyn TargetGate),
        }
    }
}

impl From<GatewayError> for RouteFailure {
    fn from(error: GatewayError) -> Self {
        RouteFailure {
            error,
            attempts: 0,
            last_target: None,
            log: Vec::new(),
        }
    }
}

/// A served call and the meter that records it: the handler reports the answer's usage (or
/// the stream's events) to the meter and drops it when the answer is out.
#[derive(Debug)]
pub struct Served<T> {
    pub routed: Routed<T>,
    pub meter: Meter,
}

/// An admitted call: its meter, the alias to route, and its estimated tokens (for target
/// limits).
struct Admitted {
    meter: Meter,
    alias: String,
    tokens: u64,
}

impl Snapshot {
    /// A whole chat completion.
    pub async fn chat(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<Served<ChatResponse>, RouteFailure> {
        self.authorize(ctx, &req.model)?; // 2 may they call it
        self.chat_granted(ctx, req).await
    }

    /// A whole chat completion of a caller already entitled to the model: a prompt API is the
    /// grant (its model is called on the caller's behalf, so step 2 is skipped), while the
    /// context window, limits, budgets and routing apply exactly as to any chat.
    pub async fn chat_granted(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<Served<ChatResponse>, RouteFailure> {
        let (req, bound) = self.fit_context_window(ctx, req)?; // 3 does it fit
        let req = req.as_ref();
        let Admitted {
            mut meter,
            alias,
            tokens,
        } = self.admit(ctx, req, bound, CallKind::Chat).await?; // 4 limits, budgets
        let gate = self.gate(ctx, tokens);
        let trace = self.start_trace(ctx, &mut meter, || RequestFacts::chat(req));
        let mut result = self
            .router
            .chat_as(&alias, req, &ctx.call_info_with(gate.as_ref(), trace))
            .await; // 5 route
        self.note_route(&mut meter, &alias, &mut result);
        result.map(|mut routed| {
            meter.hold(std::mem::take(&mut routed.held));
            meter.usage(routed.value.usage.as_ref());
            meter.response(&routed.value);
            Served { routed, meter }
        })
    }

    /// A streamed chat completion. Resolves when the first event is in hand, so that every
    /// retry and fallback happens before the client sees a byte.
    pub async fn chat_stream(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<Served<ChatEventStream>, RouteFailure> {
        self.authorize(ctx, &req.model)?;
        self.chat_stream_granted(ctx, req).await
    }

    /// [`Self::chat_stream`] for a caller already entitled to the model (a prompt API).
    pub async fn chat_stream_granted(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<Served<ChatEventStream>, RouteFailure> {
        let (req, bound) = self.fit_context_window(ctx, req)?;
        let req = req.as_ref();
        let Admitted {
            mut meter,
            alias,
            tokens,
        } = self.admit(ctx, req, bound, CallKind::Chat).await?;
        let gate = self.gate(ctx, tokens);
        let trace = self.start_trace(ctx, &mut meter, || RequestFacts::chat(req));
        let call = ctx.call_info_with(gate.as_ref(), trace);
        let mut result = self.router.chat_stream_as(&alias, req, &call).await;
        self.note_route(&mut meter, &alias, &mut result);
        result.map(|mut routed| {
            meter.hold(std::mem::take(&mut routed.held));
            Served { routed, meter }
        })
    }

    pub async fn embed(
        &self,
        ctx: &mut RequestContext,
        req: &EmbedRequest,
    ) -> Result<Served<EmbedResponse>, RouteFailure> {
        self.authorize(ctx, &req.model)?;
        let Admitted {
            mut meter,
            alias,
            tokens,
        } = self.admit_embed(ctx, req).await?;
        let gate = self.gate(ctx, tokens);
        let trace = self.start_trace(ctx, &mut meter, RequestFacts::embeddings);
        let call = ctx.call_info_with(gate.as_ref(), trace);
        let mut result = self.router.embed_as(&alias, req, &call).await;
        self.note_route(&mut meter, &alias, &mut result);
        result.map(|mut routed| {
            meter.hold(std::mem::take(&mut routed.held));
            meter.usage(Some(&routed.value.usage));
            meter.finish();
            Served { routed, meter }
        })
    }

    /// The per-attempt target limits of a call, when some `scope: target` rule exists.
    fn gate<'a>(&'a self, ctx: &'a RequestContext, tokens: u64) -> Option<RequestGate<'a>> {
        self.limiter.limits_targets().then_some(RequestGate {
            limiter: &self.limiter,
            request_id: &ctx.request_id,
            tokens,
        })
    }

    /// Starts the request's trace when tracing is configured, and returns its ids for the
    /// router (each attempt's `traceparent`). Without tracing, the call log still keeps the
    /// trace id of the client's `traceparent`.
    fn start_trace(
        &self,
        ctx: &RequestContext,
        meter: &mut Meter,
        facts: impl FnOnce() -> RequestFacts,
    ) -> Option<TraceIds> {
        let parent = ctx.traceparent.as_deref();
        let Some(telemetry) = &self.telemetry else {
            if let Some((trace_id, _, _)) = parent.and_then(crate::trace::parse_traceparent) {
                meter.set_trace_id(trace_id);
            }
            return None;
        };
        let trace = CallTrace::start(telemetry.clone(), parent, facts());
        let ids = trace.ids();
        meter.trace(trace);
        Some(ids)
    }

    /// Where the request came from, for its call-log row; `None` when `logging.metadata` is
    /// off, which also keeps the meter from recording attempts and the trace id.
    pub(crate) fn call_log_client(&self, ctx: &RequestContext) -> Option<ClientInfo> {
        self.config.logging.metadata.then(|| ctx.client.clone())
    }

    /// Tells the meter how routing went (and hands it the attempts). On failure the handler
    /// gets the error back and the meter is dropped, which records the failed request.
    fn note_route<T>(
        &self,
        meter: &mut Meter,
        alias: &str,
        result: &mut Result<Routed<T>, RouteFailure>,
    ) {
        let attempts = match result {
            Ok(routed) => std::mem::take(&mut routed.log),
            Err(failure) => std::mem::take(&mut failure.log),
        };
        meter.attempts(attempts);
        if let Some(series) = self.router.alias_metrics(meter.alias()) {
            meter.set_metrics(series);
        }
        match result {
            Ok(routed) => {
                let price = self.router.target_price(alias, &routed.target);
                meter.served(&routed.target, routed.attempts, price);
            }
            Err(failure) => meter.fail(
                &failure.error,
                failure.attempts,
                failure.last_target.as_ref(),
                failure.error.status(),
            ),
        }
    }

    /// Step 4: a usage slot, then the limits and budgets that apply. Returns the meter and the
    /// alias to route (a `downgrade` budget may have replaced the one asked for). A refused
    /// request is recorded too. `bound` is [`tokens::upper_bound`] of `req` (computed once per
    /// request).
    async fn admit(
        &self,
        ctx: &RequestContext,
        req: &ChatRequest,
        bound: u64,
        kind: CallKind,
    ) -> Result<Admitted, GatewayError> {
        let estimate = |alias: &str, plan: &Plan| self.chat_demand(alias, req, plan);
        let start = MeterStart {
            request_id: ctx.request_id.clone(),
            caller: caller(ctx.principal.as_ref()),
            kind,
            alias: req.model.clone(),
            stream: req.stream,
            tags: ctx.tags.clone(),
            input_bytes: bound,
            client: self.call_log_client(ctx),
        };
        self.admit_with(ctx, start, estimate).await
    }

    async fn admit_embed(
        &self,
        ctx: &RequestContext,
        req: &EmbedRequest,
    ) -> Result<Admitted, GatewayError> {
        let bytes: u64 = match &req.input {
            EmbedInput::Texts(texts) => texts.iter().map(|t| t.len() as u64).sum(),
            // About four bytes of text per token, the estimate used everywhere else.
            EmbedInput::Tokens(ids) => ids.iter().map(|t| t.len() as u64 * 4).sum(),
        };
        let estimate = |alias: &str, plan: &Plan| {
            let tokens = bytes.div_ceil(4);
            let cost = match (plan.needs_cost(), self.router.max_price(alias)) {
                (true, Some(price)) => MicroUsd::for_tokens(tokens, price.input_per_mtok.0).0,
                _ => 0,
            };
            (tokens, cost)
        };
        let start = MeterStart {
            request_id: ctx.request_id.clone(),
            caller: caller(ctx.principal.as_ref()),
            kind: CallKind::Embeddings,
            alias: req.model.clone(),
            stream: false,
            tags: ctx.tags.clone(),
            input_bytes: bytes,
            client: self.call_log_client(ctx),
        };
        self.admit_with(ctx, start, estimate).await
    }

    async fn admit_with(
        &self,
        ctx: &RequestContext,
        start: MeterStart,
        estimate: impl Fn(&str, &Plan) -> (u64, i64),
    ) -> Result<Admitted, GatewayError> {
        let slot = match &self.usage {
            Some(queue) => match queue.reserve() {
                Some(slot) => Some(slot),
                None => {
                    crate::metrics::Counter::UsageShed.increment();
                    return Err(GatewayError::Overloaded);
                }
            },
            None => None,
        };
        let Some(who) = ctx.principal.as_ref() else {
            return Err(GatewayError::MissingKey);
        };
        let who = Who::of(who);
        let mut alias = start.alias.clone();
        let mut downgraded = false;
        loop {
            let plan = self.limiter.plan(&who, &alias, downgraded).await;
            let counts = plan.needs_tokens() || self.limiter.counts_target_tokens();
            let (tokens, cost) = if counts || plan.needs_cost() {
                estimate(&alias, &plan)
            } else {
                (0, 0)
            };
            let demand = Demand {
                request_id: &ctx.request_id,
                tokens,
                cost,
            };
            match self.limiter.admit(plan, &demand, downgraded).await {
                Ok(admission) => {
                    let mut meter = Meter::start(slot, start, admission);
                    meter.set_served_alias(&alias);
                    return Ok(Admitted {
                        meter,
                        alias,
                        tokens,
                    });
                }
                Err(Refusal::Downgrade(to)) if !downgraded => {
                    alias = to;
                    downgraded = true;
                }
                Err(Refusal::Downgrade(_)) => {
                    // validation forbids a downgrade chain; refuse rather than loop
                    let error = GatewayError::Internal("budget downgrade loop".into());
                    Meter::start(slot, start, Admission::none()).fail(&error, 0, None, 500);
                    return Err(error);
                }
                Err(Refusal::Error(error)) => {
                    let mut meter = Meter::start(slot, start, Admission::none());
                    meter.fail(&error, 0, None, error.status());
                    return Err(error);
                }
            }
        }
    }

    /// The tokens and worst-case cost a chat request may use, as far as the plan needs them:
    /// input tokens counted for the alias's first target model, plus `max_tokens` (else the
    /// alias's `default_max_tokens`) at the highest price any of its targets may charge.
    fn chat_demand(&self, alias: &str, req: &ChatRequest, plan: &Plan) -> (u64, i64) {
        let Some(model) = self.router.model(alias) else {
            return (0, 0);
        };
        let upstream = model.targets.first().map_or("", |t| t.model.as_str());
        let input = tokens::count_input_for(upstream, req).tokens;
        if !plan.needs_cost() {
            return (input, 0);
        }
        let Some(price) = self.router.max_price(alias) else {
            return (input, 0);
        };
        let output = u64::from(req.max_tokens.unwrap_or(model.default_max_tokens));
        let worst = switchboard_types::Usage {
            input_tokens: input,
            output_tokens: output,
            ..Default::default()
        };
        let cost = crate::pricing::cost(&worst, &price).0;
        (input, cost)
    }

    /// Input tokens of a request, for `/v1/messages/count_tokens`.
    pub fn count_tokens(
        &self,
        ctx: &mut RequestContext,
        req: &ChatRequest,
    ) -> Result<u64, GatewayError> {
        self.authorize(ctx, &req.model)?;
        let upstream = self
            .router
            .model(&req.model)
            .and_then(|m| m.targets.first())
            .map_or("", |t| t.model.as_str());
        Ok(tokens::count_input_for(upstream, req).tokens)
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

    /// Step 3: the request as it fits the alias's context window (see [`crate::context`]),
    /// with its [`tokens::upper_bound`]. Under `truncate_oldest` or `middle_out` a request too
    /// long becomes a copy without some turns, recorded on `ctx` (`trimmed`, and a `context`
    /// tag for the usage record); otherwise it is borrowed as is. The policy is the API's
    /// (`ctx.context_policy`), else the alias's.
    fn fit_context_window<'r>(
        &self,
        ctx: &mut RequestContext,
        req: &'r ChatRequest,
    ) -> Result<(Cow<'r, ChatRequest>, u64), GatewayError> {
        let bound = tokens::upper_bound(req);
        let Some(model) = self.router.model(&req.model) else {
            return Ok((Cow::Borrowed(req), bound));
        };
        let Some(window) = model.context_window else {
            return Ok((Cow::Borrowed(req), bound));
        };
        let window = context::Window {
            alias: &req.model,
            upstream: model.targets.first().map_or("", |t| t.model.as_str()),
            tokens: window,
            policy: ctx.context_policy.unwrap_or(model.context_policy),
        };
        let (fitted, trimmed) = context::fit(req, bound, window)?;
        let Some(trimmed) = trimmed else {
            return Ok((fitted, bound));
        };
        tracing::info!(
            request_id = %ctx.request_id,
            alias = %req.model,
            policy = context::policy_name(trimmed.policy),
            dropped = trimmed.dropped,
            input_before = trimmed.input_before,
            input_after = trimmed.input_after,
            "Truncated the conversation to fit the context window."
        );
        // One `context` tag per record: a context reused for a second call (an API's repair)
        // may carry the first call's.
        ctx.tags.retain(|(key, _)| key != "context");
        ctx.tags
            .push(("context".to_owned(), trimmed.action().to_owned()));
        ctx.trimmed = Some(trimmed);
        let bound = tokens::upper_bound(&fitted);
        Ok((fitted, bound))
    }
}

/// The names of who made a call, for the usage record.
pub(crate) fn caller(principal: Option<&Principal>) -> Caller {
    match principal {
        Some(Principal::Key(grant)) => Caller {
            org: Some(grant.org.clone()),
            team: grant.team.clone(),
            app: grant.app.clone(),
            key_id: Some(grant.key_id.clone()),
            user: grant.user_id.clone(),
        },
        Some(Principal::User(user)) => Caller {
            user: Some(user.subject.clone()),
            ..Caller::default()
        },
        Some(Principal::Admin) | None => Caller::default(),
    }
}
