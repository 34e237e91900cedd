//! Routing: which target serves a call, and what happens when it fails. A [`Router`] is built
//! from one config snapshot and never changes; the live state of each target (circuit
//! breaker, latency average, requests in flight) lives in [`TargetStates`], which outlives
//! snapshots so that a reload does not forget that a provider is down.
//!
//! A call to an alias tries up to `1 + retry.attempts` times, on retryable errors only, each
//! time on a target the alias's strategy picks (preferring one this request has not tried),
//! sleeping an exponential backoff with full jitter between tries; then each alias in
//! `fallbacks`, in order, with its own targets, strategy and retry policy. Fallbacks of a
//! fallback are not followed. Requests the provider rejects as invalid stop everything.
//! Streams are retried only before their first event reaches the caller.
//!
//! Files: `route.rs` the loop, `strategy.rs` the choice of a target, `retry.rs` the verdict on
//! an error and the backoff, `circuit.rs` the breaker, `state.rs` the per-target live state,
//! `ops.rs` the three kinds of call (chat, stream, embeddings). Each target carries its price
//! (its own, else its model's, else the built-in catalog's): `cheapest` ranks by it, and
//! [`Router::target_price`] / [`Router::max_price`] answer metering and budget reservations.

mod circuit;
mod ops;
#[cfg(test)]
mod price_tests;
mod retry;
mod route;
mod state;
mod strategy;
#[cfg(test)]
mod tests;

pub use circuit::CircuitState;
pub use state::TargetStates;
pub use switchboard_types::TargetId;

use crate::alias_metrics::AliasMetrics;
use crate::config::{CircuitPolicy, ModelConfig, Price};
use crate::error::GatewayError;
use crate::limits::Admission;
use crate::metrics::{Counter, Histogram};
use ops::{ChatOp, EmbedOp, StreamOp};
use state::TargetState;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use strategy::Candidate;
use switchboard_providers::{ChatEventStream, Provider};
use switchboard_types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse};
use tokio::time::Instant;
use tracing::error;

pub use crate::trace::TraceIds;

/// Per-request facts the router passes upstream.
#[derive(Clone, Copy, Debug)]
pub struct CallInfo<'a> {
    pub request_id: &'a str,
    /// The client's `traceparent`, passed on as is when the request is not traced.
    pub traceparent: Option<&'a str>,
    /// The request's trace when tracing is on: each attempt then gets its own span id, sent
    /// upstream in its `traceparent` (and `traceparent` above is not used).
    pub trace: Option<TraceIds>,
    /// Rate limits per target, checked before each attempt (`None`: no target is limited).
    pub gate: Option<&'a dyn TargetGate>,
}

/// Limits an upstream target has of its own (`scope: target` rules). The router asks before
/// each attempt; a target that is full is passed over like one whose circuit is open, and
/// when every target is full the call fails with the limit's 429.
#[async_trait::async_trait]
pub trait TargetGate: Send + Sync + std::fmt::Debug {
    /// Takes the target's counters for one attempt, or says why not. The admission is held
    /// until the call (the whole stream, for streams) ends.
    async fn enter(&self, alias: &str, target: &TargetId) -> Result<Admission, GatewayError>;
}

/// A successful call and how it was served (for `x-switchboard-target` and
/// `x-switchboard-attempts`).
#[derive(Debug)]
pub struct Routed<T> {
    pub value: T,
    pub target: TargetId,
    /// Upstream attempts made, fallbacks included; at least 1.
    pub attempts: u32,
    /// Each attempt, in order; the last one served.
    pub log: Vec<Attempt>,
    /// The serving target's own limit counters (see [`TargetGate`]), held until the call ends.
    pub held: Admission,
}

/// A failed call: the error for the client, and what was tried (for headers and the log).
#[derive(Debug)]
pub struct RouteFailure {
    pub error: GatewayError,
    /// Upstream attempts made, fallbacks included; 0 if none could be made.
    pub attempts: u32,
    pub last_target: Option<TargetId>,
    /// Each attempt, in order.
    pub log: Vec<Attempt>,
}

/// One upstream attempt, for the call log, the metrics and the trace.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub target: TargetId,
    /// The upstream's HTTP status: 200 when it answered (an error inside a 200 stream
    /// included), the error status, or 0 when no answer came (connect error, timeout, a
    /// request that could not be converted).
    pub status: u16,
    /// When the attempt was sent.
    pub started: Instant,
    /// From sending to the answer's head (a stream's first event) or the error.
    pub latency: Duration,
    /// The gateway's error code for a failed attempt.
    pub error_code: Option<&'static str>,
    /// The span id sent upstream in `traceparent` when the request is traced, else 0.
    pub span_id: u64,
    /// The API the target speaks (the trace's `gen_ai.provider.name`).
    pub protocol: switchboard_types::Protocol,
}

/// The routing table of one config snapshot.
#[derive(Debug)]
pub struct Router {
    models: BTreeMap<String, RouteModel>,
}

/// One alias with its targets resolved to providers and live state.
#[derive(Debug)]
struct RouteModel {
    config: ModelConfig,
    targets: Vec<RouteTarget>,
    /// `config.fallbacks` that name another known alias, in order, without repeats.
    fallbacks: Vec<String>,
    /// `switchboard_retries_total` and `switchboard_fallbacks_total` for this alias.
    retries: metrics::Counter,
    fallen_back: metrics::Counter,
    /// The per-request series of requests that asked for this alias.
    metrics: Arc<AliasMetrics>,
}

#[derive(Debug)]
struct RouteTarget {
    id: TargetId,
    provider: Arc<dyn Provider>,
    state: Arc<TargetState>,
    /// The model's circuit policy, else the provider's, else the default.
    circuit: CircuitPolicy,
    weight: u32,
    priority: u32,
    /// The target's price, else the model's, else the built-in catalog's for its model.
    price: Option<Price>,
    /// Input plus output price per million tokens, from `price` (for `cheapest`).
    cost: Option<i64>,
    /// `switchboard_upstream_duration_seconds` of this target, ok and error.
    upstream_ok: metrics::Histogram,
    upstream_error: metrics::Histogram,
}

impl RouteTarget {
    fn candidate(&self, index: usize, now: Instant) -> Candidate {
        Candidate {
            index,
            weight: self.weight,
            priority: self.priority,
            cost: self.cost,
            latency: self.state.latency(now),
            in_flight: self.state.in_flight(),
        }
    }
}

impl Router {
    /// Builds the routing table. `models` is validated config; every target's provider should
    /// be in `providers` (a target whose provider is missing is left out and logged, since
    /// building must not fail after validation). `provider_circuits` holds the circuit policy of
    /// each provider that sets one.
    pub fn build(
        models: &BTreeMap<String, ModelConfig>,
        providers: &HashMap<String, Arc<dyn Provider>>,
        states: &Arc<TargetStates>,
        provider_circuits: &HashMap<String, CircuitPolicy>,
    ) -> Router {
        let models = models
            .iter()
            .map(|(alias, config)| {
                let targets = config
                    .targets
                    .iter()
                    .filter_map(|target| {
                        let Some(provider) = providers.get(&target.provider) else {
                            error!(%alias, provider = %target.provider, "Target names an unknown provider; leaving it out.");
                            return None;
                        };
                        let id = TargetId {
                            provider: Arc::from(target.provider.as_str()),
                            model: Arc::from(target.model.as_str()),
                        };
                        let price = target
                            .price
                            .or(config.price)
                            .or_else(|| crate::pricing::builtin().lookup(&target.model));
                        let name = id.to_string();
                        Some(RouteTarget {
                            state: states.resolve(&id),
                            upstream_ok: Histogram::upstream(name.clone(), true),
                            upstream_error: Histogram::upstream(name, false),
                            id,
                            provider: Arc::clone(provider),
                            circuit: config
                                .circuit
                                .or_else(|| provider_circuits.get(&target.provider).copied())
                                .unwrap_or_default(),
                            weight: target.weight,
                            priority: target.priority,
                            price,
                            cost: price.map(|p| p.input_per_mtok.0.saturating_add(p.output_per_mtok.0)),
                        })
                    })
                    .collect();
                let mut fallbacks: Vec<String> = Vec::new();
                for name in &config.fallbacks {
                    if name == alias || fallbacks.contains(name) {
                        continue;
                    }
                    if !models.contains_key(name) {
                        error!(%alias, fallback = %name, "Fallback names an unknown model; leaving it out.");
                        continue;
                    }
                    fallbacks.push(name.clone());
                }
                let model = RouteModel {
                    config: config.clone(),
                    targets,
                    fallbacks,
                    retries: Counter::Retries.handle("alias", alias.clone()),
                    fallen_back: Counter::Fallbacks.handle("alias", alias.clone()),
                    metrics: Arc::new(AliasMetrics::new(alias)),
                };
                (alias.clone(), model)
            })
            .collect();
        Router { models }
    }

    /// The cached metric series of requests that ask for `alias` (see the meter's drop).
    pub fn alias_metrics(&self, alias: &str) -> Option<Arc<AliasMetrics>> {
        self.models
            .get(alias)
            .map(|model| Arc::clone(&model.metrics))
    }

    /// The config of an alias.
    pub fn model(&self, alias: &str) -> Option<&ModelConfig> {
        self.models.get(alias).map(|model| &model.config)
    }

    /// The price of `target` as served for `alias`: the target's configured price, else its
    /// model's, else the built-in catalog's. The target may belong to one of the alias's
    /// fallbacks, so `alias` is searched first, then its fallbacks in order, then every alias.
    pub fn target_price(&self, alias: &str, target: &TargetId) -> Option<Price> {
        fn find<'a>(model: &'a RouteModel, target: &TargetId) -> Option<&'a RouteTarget> {
            model.targets.iter().find(|t| t.id == *target)
        }
        let own = self.models.get(alias);
        let fallbacks = own
            .into_iter()
            .flat_map(|model| model.fallbacks.iter())
            .filter_map(|name| self.models.get(name));
        own.into_iter()
            .chain(fallbacks)
            .chain(self.models.values())
            .find_map(|model| find(model, target))
            .and_then(|t| t.price)
    }

    /// The field-wise maximum price over every target that may serve `alias`: its own and
    /// those of its fallbacks (see [`crate::pricing::max_of`]). A budget reserves a call's
    /// worst case with it. `None` if the alias is unknown or no such target has a price;
    /// targets without a price are skipped.
    pub fn max_price(&self, alias: &str) -> Option<Price> {
        let model = self.models.get(alias)?;
        std::iter::once(model)
            .chain(
                model
                    .fallbacks
                    .iter()
                    .filter_map(|name| self.models.get(name)),
            )
            .flat_map(|m| m.targets.iter())
            .filter_map(|t| t.price)
            .reduce(|worst, p| crate::pricing::max_of(&worst, &p))
    }

    /// Every alias, in order.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    /// A whole chat completion for `req.model` (an alias).
    pub async fn chat(
        &self,
        req: &ChatRequest,
        call: &CallInfo<'_>,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        self.chat_as(&req.model, req, call).await
    }

    /// [`Router::chat`] for `alias` instead of `req.model` (a budget downgraded the call).
    pub async fn chat_as(
        &self,
        alias: &str,
        req: &ChatRequest,
        call: &CallInfo<'_>,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        self.route(alias, call, &ChatOp(req)).await
    }

    /// A streamed chat completion. Resolves once a target's first event is in hand; retries
    /// and fallbacks happen only before that. The stream reports its end (or its drop) to the
    /// target's live state.
    pub async fn chat_stream(
        &self,
        req: &ChatRequest,
        call: &CallInfo<'_>,
    ) -> Result<Routed<ChatEventStream>, RouteFailure> {
        self.chat_stream_as(&req.model, req, call).await
    }

    /// [`Router::chat_stream`] for `alias` instead of `req.model`.
    pub async fn chat_stream_as(
        &self,
        alias: &str,
        req: &ChatRequest,
        call: &CallInfo<'_>,
    ) -> Result<Routed<ChatEventStream>, RouteFailure> {
        self.route(alias, call, &StreamOp(req)).await
    }

    /// Embeddings for `req.model` (an alias).
    pub async fn embed(
        &self,
        req: &EmbedRequest,
        call: &CallInfo<'_>,
    ) -> Result<Routed<EmbedResponse>, RouteFailure> {
        self.embed_as(&req.model, req, call).await
    }

    /// [`Router::embed`] for `alias` instead of `req.model`.
    pub async fn embed_as(
        &self,
        alias: &str,
        req: &EmbedRequest,
        call: &CallInfo<'_>,
    ) -> Result<Routed<EmbedResponse>, RouteFailure> {
        self.route(alias, call, &EmbedOp(req)).await
    }
}
