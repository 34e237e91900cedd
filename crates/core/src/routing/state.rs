//! Live state of each target (circuit, latency average, requests in flight), shared by every
//! config snapshot so that a reload keeps what the gateway has learnt about its upstreams.
//! The map is locked only when a router is built and when operators read it; a request works on
//! the `Arc<TargetState>` its router resolved at build time, whose parts are atomics and one
//! small per-target lock.

use super::circuit::{Admission, Circuit, CircuitState};
use crate::config::CircuitPolicy;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchboard_types::TargetId;
use tokio::time::Instant;

/// Live state of every target ever routed to, keyed by [`TargetId`]. Entries of targets that
/// left the config stay (they are small, and a target that comes back keeps its history).
#[derive(Debug, Default)]
pub struct TargetStates {
    map: RwLock<HashMap<TargetId, Arc<TargetState>>>,
}

impl TargetStates {
    pub fn new() -> Arc<TargetStates> {
        Arc::new(TargetStates::default())
    }

    /// The state of `id`, created on first use. Called when a router is built, not per request.
    pub(crate) fn resolve(&self, id: &TargetId) -> Arc<TargetState> {
        if let Some(state) = self.map.read().get(id) {
            return Arc::clone(state);
        }
        Arc::clone(self.map.write().entry(id.clone()).or_default())
    }

    /// Every target with its circuit and requests in flight, sorted by target, for operators.
    pub fn snapshot(&self) -> Vec<(TargetId, CircuitState, u32)> {
        let now = Instant::now();
        let mut rows: Vec<_> = self
            .map
            .read()
            .iter()
            .map(|(id, state)| (id.clone(), state.circuit_state(now), state.in_flight()))
            .collect();
        rows.sort_by(|a, b| (&a.0.provider, &a.0.model).cmp(&(&b.0.provider, &b.0.model)));
        rows
    }
}

/// No latency sample yet.
const NO_SAMPLE: u64 = u64::MAX;

/// A latency average older than this no longer counts: the target is measured again (by one
/// request at a time). Without it, a target that was slow once would never be picked again
/// under `least_latency`, and so never shown to have recovered.
const LATENCY_STALE: Duration = Duration::from_secs(10);

/// One target's live state.
#[derive(Debug)]
pub(crate) struct TargetState {
    circuit: Mutex<Circuit>,
    in_flight: AtomicU32,
    /// Exponentially weighted moving average of the time to the provider's answer, in
    /// microseconds; [`NO_SAMPLE`] until the first attempt.
    latency_micros: AtomicU64,
    /// When the last sample was taken, in microseconds since `born`.
    sampled_at_micros: AtomicU64,
    born: Instant,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            circuit: Mutex::new(Circuit::default()),
            in_flight: AtomicU32::new(0),
            latency_micros: AtomicU64::new(NO_SAMPLE),
            sampled_at_micros: AtomicU64::new(0),
            born: Instant::now(),
        }
    }
}

impl TargetState {
    pub(crate) fn available(&self, now: Instant) -> Result<(), Option<Instant>> {
        self.circuit.lock().available(now)
    }

    pub(crate) fn circuit_state(&self, now: Instant) -> CircuitState {
        self.circuit.lock().state(now)
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The latency average; `None` while the target has never been tried, or when its
    /// average is stale and no request is measuring it.
    pub(crate) fn latency(&self, now: Instant) -> Option<Duration> {
        let micros = self.latency_micros.load(Ordering::Relaxed);
        if micros == NO_SAMPLE {
            return None;
        }
        let sampled_at =
            self.born + Duration::from_micros(self.sampled_at_micros.load(Ordering::Relaxed));
        if now.saturating_duration_since(sampled_at) > LATENCY_STALE && self.in_flight() == 0 {
            return None;
        }
        Some(Duration::from_micros(micros))
    }

    /// Folds one sample into the average (weight 0.3 for the new sample: recent enough to
    /// follow a slowing provider, smooth enough to ignore one slow answer). A stale average is
    /// replaced rather than mixed: old history says nothing about the target now.
    pub(crate) fn record_latency(&self, sample: Duration) {
        let now = Instant::now();
        let sample = u64::try_from(sample.as_micros())
            .unwrap_or(NO_SAMPLE - 1)
            .min(NO_SAMPLE - 1);
        let stale = now.saturating_duration_since(self.sampled_at()) > LATENCY_STALE;
        let _ = self
            .latency_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == NO_SAMPLE || stale {
                    sample
                } else {
                    let mixed = (u128::from(old) * 7 + u128::from(sample) * 3) / 10;
                    u64::try_from(mixed).unwrap_or(NO_SAMPLE - 1)
                })
            });
        let since_born = now.saturating_duration_since(self.born);
        self.sampled_at_micros.store(
            u64::try_from(since_born.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn sampled_at(&self) -> Instant {
        self.born + Duration::from_micros(self.sampled_at_micros.load(Ordering::Relaxed))
    }

    /// Admits one attempt through the circuit and counts it in flight until the guard ends.
    pub(crate) fn start(
        self: &Arc<Self>,
        policy: CircuitPolicy,
        now: Instant,
    ) -> Option<AttemptGuard> {
        let admission = self.circuit.lock().admit(now)?;
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(AttemptGuard {
            state: Arc::clone(self),
            policy,
            admission,
            settled: false,
        })
    }
}

/// One admitted attempt on a target. Settling it reports the outcome to the circuit; dropping
/// it unsettled (a client that went away mid-stream) says nothing about the target's health.
/// Either way the in-flight count goes down exactly once.
#[derive(Debug)]
pub(crate) struct AttemptGuard {
    state: Arc<TargetState>,
    policy: CircuitPolicy,
    admission: Admission,
    settled: bool,
}

impl AttemptGuard {
    pub(crate) fn success(mut self) {
        self.state.circuit.lock().on_success(self.admission);
        self.settled = true;
    }

    pub(crate) fn failure(mut self) {
        self.state
            .circuit
            .lock()
            .on_failure(self.admission, &self.policy, Instant::now());
        self.settled = true;
    }

    pub(crate) fn neutral(self) {
        drop(self);
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if !self.settled {
            self.state.circuit.lock().on_neutral(self.admission);
        }
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
