//! The circuit breaker of one target, as a small state machine over explicit time (`now` is
//! passed in, so the machine is pure and tested without clocks). Closed counts consecutive
//! failures; at the policy's threshold it opens for the cooldown; once the cooldown has passed
//! the first request to ask becomes the one probe of the half-open state, and its outcome
//! closes or re-opens the circuit. Outcomes of attempts that were admitted before a state
//! change (not the probe) do not move an open or half-open circuit: they describe the past.

use crate::config::CircuitPolicy;
use tokio::time::Instant;

/// What operators see of a target's circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// Requests skip the target until `until`.
    Open { until: Instant },
    /// The cooldown has passed: one probe request at a time may test the target.
    HalfOpen,
}

/// Whether an admitted attempt is the half-open probe (its outcome decides the circuit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    Normal,
    Probe,
}

/// The live breaker. Kept behind a per-target lock that is never held across an await.
#[derive(Debug)]
pub(crate) struct Circuit {
    state: CircuitState,
    /// Consecutive failures while closed.
    failures: u32,
    /// A half-open probe is in flight: others skip the target.
    probing: bool,
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit {
            state: CircuitState::Closed,
            failures: 0,
            probing: false,
        }
    }
}

impl Circuit {
    /// Whether a request could be admitted now, without changing anything. `Err` carries when
    /// the circuit will let a probe through, if known (`None`: a probe is already in flight).
    pub(crate) fn available(&self, now: Instant) -> Result<(), Option<Instant>> {
        match self.state {
            CircuitState::Closed => Ok(()),
            CircuitState::Open { until } if now >= until => Ok(()),
            CircuitState::Open { until } => Err(Some(until)),
            CircuitState::HalfOpen if self.probing => Err(None),
            CircuitState::HalfOpen => Ok(()),
        }
    }

    /// Admits a request, or refuses it (another request took the probe since `available`).
    pub(crate) fn admit(&mut self, now: Instant) -> Option<Admission> {
        match self.state {
            CircuitState::Closed => Some(Admission::Normal),
            CircuitState::Open { until } if now < until => None,
            CircuitState::HalfOpen if self.probing => None,
            CircuitState::Open { .. } | CircuitState::HalfOpen => {
                self.state = CircuitState::HalfOpen;
                self.probing = true;
                Some(Admission::Probe)
            }
        }
    }

    /// The target answered well.
    pub(crate) fn on_success(&mut self, admission: Admission) {
        match (self.state, admission) {
            (CircuitState::Closed, _) => self.failures = 0,
            (CircuitState::HalfOpen, Admission::Probe) => {
                self.state = CircuitState::Closed;
                self.failures = 0;
                self.probing = false;
            }
            // A request admitted before the circuit opened: stale news, the cooldown runs.
            (CircuitState::Open { .. } | CircuitState::HalfOpen, _) => {}
        }
    }

    /// The target failed in a way that counts against it.
    pub(crate) fn on_failure(
        &mut self,
        admission: Admission,
        policy: &CircuitPolicy,
        now: Instant,
    ) {
        match (self.state, admission) {
            (CircuitState::Closed, _) => {
                self.failures = self.failures.saturating_add(1);
                if self.failures >= policy.failures.max(1) {
                    self.open(policy, now);
                }
            }
            (CircuitState::HalfOpen, Admission::Probe) => self.open(policy, now),
            (CircuitState::Open { .. } | CircuitState::HalfOpen, _) => {}
        }
    }

    /// The attempt ended without saying anything about the target's health (the request was
    /// rejected as invalid, or the client went away): a probe hands its turn to the next request.
    pub(crate) fn on_neutral(&mut self, admission: Admission) {
        if admission == Admission::Probe && self.state == CircuitState::HalfOpen {
            self.probing = false;
        }
    }

    /// The state as operators should read it: an open circuit whose cooldown has passed is
    /// reported half-open (the next request will probe).
    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        match self.state {
            CircuitState::Open { until } if now >= until => CircuitState::HalfOpen,
            state => state,
        }
    }

    fn open(&mut self, policy: &CircuitPolicy, now: Instant) {
        self.state = CircuitState::Open {
            until: now + policy.cooldown,
        };
        self.failures = 0;
        self.probing = false;
    }
}
