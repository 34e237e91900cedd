//! The retry loop: one alias at a time (the requested alias, then each fallback), up to
//! `1 + retry.attempts` tries per alias, each on a target the alias's strategy picks among
//! those whose circuit admits a request (preferring targets this request has not tried yet).
//! A [`Tally`] of every attempt across aliases decides the error when nothing succeeded.

use super::ops::Operation;
use super::retry::{self, Verdict};
use super::state::AttemptGuard;
use super::strategy;
use super::{Attempt, CallInfo, RouteFailure, RouteModel, Routed, Router, TargetId};
use crate::error::GatewayError;
use crate::limits::Admission;
use smallvec::{smallvec, SmallVec};
use std::time::Duration;
use switchboard_providers::{ProviderError, Upstream};
use tokio::time::Instant;
use tracing::{debug, warn};

/// One entry per target of an alias, kept on the stack for the usual few targets: routing runs
/// on every request, and heap vectors here were five allocations per call.
type PerTarget<T> = SmallVec<[T; 8]>;

/// How one alias's turn ended.
enum Step<T> {
    Done(Routed<T>),
    /// Stop routing altogether (the request is at fault, or the answer was unusable).
    Stop(GatewayError),
    /// Tries spent, or no target left to try: on to the next fallback.
    Exhausted,
}

/// Everything that happened in one request's routing, fallbacks included.
#[derive(Debug, Default)]
struct Tally {
    attempts: u32,
    last_target: Option<TargetId>,
    last_error: Option<ProviderError>,
    /// Every failed attempt so far was a timeout.
    only_timeouts: bool,
    /// Some target was skipped because its circuit is open (or its probe is busy).
    blocked: bool,
    /// The soonest time a skipped target's circuit lets a probe through.
    reopens: Option<Instant>,
    /// The first target rate limit that passed a target over.
    limited: Option<GatewayError>,
    /// Every attempt so far, in order.
    log: Vec<Attempt>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            only_timeouts: true,
            ..Tally::default()
        }
    }

    fn note_blocked(&mut self, reopens: Option<Instant>) {
        self.blocked = true;
        if let Some(at) = reopens {
            self.reopens = Some(self.reopens.map_or(at, |soonest| soonest.min(at)));
        }
    }

    fn note_limited(&mut self, error: GatewayError) {
        self.limited.get_or_insert(error);
    }

    fn note_error(&mut self, err: ProviderError) {
        self.only_timeouts &= matches!(err, ProviderError::Timeout(_));
        self.last_error = Some(err);
    }

    fn stop(self, error: GatewayError) -> RouteFailure {
        RouteFailure {
            error,
            attempts: self.attempts,
            last_target: self.last_target,
            log: self.log,
        }
    }

    /// The error once every alias is exhausted: 504 if every attempt timed out, 502 if
    /// attempts failed otherwise, 503 if no attempt could be made for open circuits.
    /// 429 when no attempt could be made because targets were over their own rate limits.
    fn exhausted(mut self) -> RouteFailure {
        let limited = self.limited.take();
        let error = match self.last_error.take() {
            Some(ProviderError::Timeout(kind)) if self.only_timeouts => {
                GatewayError::UpstreamTimeout(kind)
            }
            Some(last) => GatewayError::AllTargetsFailed {
                attempts: self.attempts,
                last,
            },
            None if limited.is_some() && !self.blocked => {
                limited.unwrap_or(GatewayError::Internal("no target admitted the call".into()))
            }
            None if self.blocked => {
                let now = Instant::now();
                GatewayError::AllCircuitsOpen {
                    retry_after: self.reopens.map(|at| at.saturating_duration_since(now)),
                }
            }
            None => GatewayError::Internal("the model has no target to route to".into()),
        };
        self.stop(error)
    }
}

/// The HTTP status of a failed attempt's answer: the error status, 200 when the failure came
/// inside a successful answer (an in-band error, an undecodable or cut body), 0 when no
/// answer came.
fn upstream_status(err: &ProviderError) -> u16 {
    match err {
        ProviderError::Status { status, .. } => *status,
        ProviderError::InBand { .. } | ProviderError::Decode(_) | ProviderError::Closed(_) => 200,
        ProviderError::Connect(_)
        | ProviderError::Timeout(_)
        | ProviderError::Unsupported { .. } => 0,
    }
}

impl Router {
    /// Routes one call: the alias's targets with retries, then its fallbacks.
    pub(super) async fn route<O: Operation>(
        &self,
        alias: &str,
        call: &CallInfo<'_>,
        op: &O,
    ) -> Result<Routed<O::Output>, RouteFailure> {
        let Some(primary) = self.models.get(alias) else {
            return Err(RouteFailure {
                error: GatewayError::UnknownModel(alias.to_owned()),
                attempts: 0,
                last_target: None,
                log: Vec::new(),
            });
        };
        let mut tally = Tally::new();
        // Fallbacks of fallbacks are not followed: one level keeps the worst case bounded
        // and readable from the config of the alias asked for.
        let fallbacks = primary
            .fallbacks
            .iter()
            .filter_map(|name| self.models.get(name.as_str()));
        for model in std::iter::once(primary).chain(fallbacks) {
            if !std::ptr::eq(model, primary) {
                debug!(alias, fallback = %model.config.alias, attempts = tally.attempts, "Trying a fallback model.");
                primary.fallen_back.increment(1);
            }
            match self.route_alias(model, call, op, &mut tally).await {
                Step::Done(routed) => return Ok(routed),
                Step::Stop(error) => return Err(tally.stop(error)),
                Step::Exhausted => {}
            }
        }
        Err(tally.exhausted())
    }

    async fn route_alias<O: Operation>(
        &self,
        model: &RouteModel,
        call: &CallInfo<'_>,
        op: &O,
        tally: &mut Tally,
    ) -> Step<O::Output> {
        let count = model.targets.len();
        let mut tried: PerTarget<bool> = smallvec![false; count];
        // Targets that refused the gateway's credentials: no use asking them again now.
        let mut skipped: PerTarget<bool> = smallvec![false; count];
        let mut wait = Duration::ZERO;
        for try_index in 0..=model.config.retry.attempts {
            if try_index > 0 && !wait.is_zero() {
                // Waiting only helps if some target could take the retry.
                if !self.any_available(model, &skipped, tally) {
                    return Step::Exhausted;
                }
                tokio::time::sleep(wait).await;
            }
            // A target over its own rate limit is passed over without counting an attempt.
            let (index, guard, held) = loop {
                let Some((index, guard)) = self.admit(model, &tried, &skipped, tally) else {
                    return Step::Exhausted;
                };
                let Some(gate) = call.gate else {
                    break (index, guard, Admission::none());
                };
                match gate
                    .enter(&model.config.alias, &model.targets[index].id)
                    .await
                {
                    Ok(held) => break (index, guard, held),
                    Err(error) => {
                        guard.neutral();
                        skipped[index] = true;
                        tally.note_limited(error);
                    }
                }
            };
            tried[index] = true;
            let target = &model.targets[index];
            tally.attempts = tally.attempts.saturating_add(1);
            tally.last_target = Some(target.id.clone());
            if try_index > 0 {
                model.retries.increment(1);
            }
            // A traced request gives each attempt its own span, the parent of whatever the
            // provider records.
            let span_id = call.trace.map_or(0, |_| crate::trace::new_span_id());
            let traceparent = call.trace.map(|trace| trace.traceparent(span_id));
            let upstream = Upstream {
                model: &target.id.model,
                timeouts: model.config.timeouts,
                default_max_tokens: model.config.default_max_tokens,
                request_id: call.request_id,
                traceparent: traceparent.as_deref().or(call.traceparent),
            };
            let started = Instant::now();
            let mut attempt = Attempt {
                target: target.id.clone(),
                status: 200,
                started,
                latency: Duration::ZERO,
                error_code: None,
                span_id,
                protocol: target.provider.protocol(),
            };
            let result = op.call(target.provider.as_ref(), &upstream).await;
            attempt.latency = started.elapsed();
            let err = match result {
                Ok(answer) => {
                    target.state.record_latency(attempt.latency);
                    target.upstream_ok.record(attempt.latency.as_secs_f64());
                    tally.log.push(attempt);
                    return Step::Done(Routed {
                        value: O::settle(answer, guard),
                        target: target.id.clone(),
                        attempts: tally.attempts,
                        log: std::mem::take(&mut tally.log),
                        held,
                    });
                }
                Err(err) => err,
            };
            target.upstream_error.record(attempt.latency.as_secs_f64());
            attempt.status = upstream_status(&err);
            // A failed attempt weighs like waiting out the first-byte timeout, so that under
            // `least_latency` a failing target looks slow rather than untried or fast.
            let penalty = attempt.latency.max(model.config.timeouts.first_byte);
            let verdict = retry::classify(&err);
            attempt.error_code = Some(match (&verdict, &err) {
                (Verdict::Reject(error), _) => error.code(),
                (_, ProviderError::Timeout(_)) => "upstream_timeout",
                _ => "upstream_error",
            });
            tally.log.push(attempt);
            match verdict {
                Verdict::Retry => {
                    debug!(target = %target.id, error = %err, "Upstream attempt failed; retrying if allowed.");
                    guard.failure();
                    target.state.record_latency(penalty);
                    wait = retry::backoff(
                        &model.config.retry,
                        try_index + 1,
                        err.retry_after(),
                        &mut rand::rng(),
                    );
                }
                Verdict::Misconfigured => {
                    warn!(target = %target.id, error = %err, "The provider refused the gateway (check its key, base URL and model); trying another target.");
                    guard.failure();
                    target.state.record_latency(penalty);
                    skipped[index] = true;
                    wait = Duration::ZERO;
                }
                Verdict::Reject(error) => {
                    guard.neutral();
                    return Step::Stop(error);
                }
                Verdict::Fail => {
                    warn!(target = %target.id, error = %err, "The provider's answer could not be used.");
                    guard.neutral();
                    return Step::Stop(GatewayError::AllTargetsFailed {
                        attempts: tally.attempts,
                        last: err,
                    });
                }
            }
            tally.note_error(err);
        }
        Step::Exhausted
    }

    /// Whether any target of `model` not skipped could be admitted now.
    fn any_available(&self, model: &RouteModel, skipped: &[bool], tally: &mut Tally) -> bool {
        let now = Instant::now();
        let mut any = false;
        for (target, _) in model.targets.iter().zip(skipped).filter(|(_, s)| !**s) {
            match target.state.available(now) {
                Ok(()) => any = true,
                Err(reopens) => tally.note_blocked(reopens),
            }
        }
        any
    }

    /// Picks a target and admits an attempt on it. Among targets whose circuit admits a
    /// request, the strategy chooses from those not tried yet in this request if there are
    /// any, else from all. Losing a half-open probe to a concurrent request removes that
    /// target and picks again.
    fn admit(
        &self,
        model: &RouteModel,
        tried: &[bool],
        skipped: &[bool],
        tally: &mut Tally,
    ) -> Option<(usize, AttemptGuard)> {
        let now = Instant::now();
        let mut refused: PerTarget<bool> = smallvec![false; model.targets.len()];
        loop {
            let mut fresh: PerTarget<_> = SmallVec::new();
            let mut all: PerTarget<_> = SmallVec::new();
            for (index, target) in model.targets.iter().enumerate() {
                if skipped[index] || refused[index] {
                    continue;
                }
                match target.state.available(now) {
                    Ok(()) => {
                        let candidate = target.candidate(index, now);
                        all.push(candidate);
                        if !tried[index] {
                            fresh.push(candidate);
                        }
                    }
                    Err(reopens) => tally.note_blocked(reopens),
                }
            }
            let pool = if fresh.is_empty() { &all } else { &fresh };
            let index = strategy::pick(model.config.strategy, pool, &mut rand::rng())?;
            let target = &model.targets[index];
            match target.state.start(target.circuit, now) {
                Some(guard) => return Some((index, guard)),
                None => {
                    refused[index] = true;
                    tally.note_blocked(None);
                }
            }
        }
    }
}
