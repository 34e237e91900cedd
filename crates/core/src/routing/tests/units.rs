//! Unit tests of the pure parts: the circuit state machine, the backoff, the strategies.

use super::super::circuit::{Admission, Circuit, CircuitState};
use super::super::retry::backoff;
use super::super::strategy::{pick, Candidate};
use crate::config::{CircuitPolicy, RetryPolicy, Strategy};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;
use tokio::time::Instant;

const POLICY: CircuitPolicy = CircuitPolicy {
    failures: 3,
    cooldown: Duration::from_secs(10),
};

#[test]
fn circuit_walks_closed_open_half_open_closed() {
    let now = Instant::now();
    let mut circuit = Circuit::default();
    for _ in 0..2 {
        assert_eq!(circuit.admit(now), Some(Admission::Normal));
        circuit.on_failure(Admission::Normal, &POLICY, now);
    }
    assert_eq!(circuit.state(now), CircuitState::Closed);
    circuit.on_failure(Admission::Normal, &POLICY, now);
    let until = now + POLICY.cooldown;
    assert_eq!(circuit.state(now), CircuitState::Open { until });
    assert_eq!(circuit.available(now), Err(Some(until)));
    assert_eq!(circuit.admit(now), None);

    let later = until;
    assert_eq!(circuit.available(later), Ok(()));
    assert_eq!(circuit.admit(later), Some(Admission::Probe));
    assert_eq!(circuit.available(later), Err(None));
    assert_eq!(circuit.admit(later), None);
    // A request admitted before the circuit opened reports late: it changes nothing.
    circuit.on_success(Admission::Normal);
    assert_eq!(circuit.state(later), CircuitState::HalfOpen);
    circuit.on_success(Admission::Probe);
    assert_eq!(circuit.state(later), CircuitState::Closed);
}

#[test]
fn neutral_probe_hands_its_turn_over() {
    let now = Instant::now();
    let mut circuit = Circuit::default();
    let policy = CircuitPolicy {
        failures: 1,
        ..POLICY
    };
    circuit.on_failure(Admission::Normal, &policy, now);
    let later = now + policy.cooldown;
    assert_eq!(circuit.admit(later), Some(Admission::Probe));
    circuit.on_neutral(Admission::Probe);
    assert_eq!(circuit.admit(later), Some(Admission::Probe));
    circuit.on_failure(Admission::Probe, &policy, later);
    assert_eq!(
        circuit.state(later),
        CircuitState::Open {
            until: later + policy.cooldown
        }
    );
}

#[test]
fn backoff_grows_with_full_jitter_under_the_cap() {
    let policy = RetryPolicy {
        attempts: 5,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(1_000),
    };
    let mut rng = StdRng::seed_from_u64(7);
    for (retry, ceiling) in [
        (1, 100),
        (2, 200),
        (3, 400),
        (4, 800),
        (5, 1_000),
        (40, 1_000),
    ] {
        let waits: Vec<Duration> = (0..200)
            .map(|_| backoff(&policy, retry, None, &mut rng))
            .collect();
        let ceiling = Duration::from_millis(ceiling);
        assert!(waits.iter().all(|w| *w <= ceiling));
        // Full jitter: the draws cover the whole range, not just its top.
        assert!(waits.iter().any(|w| *w < ceiling / 4));
        assert!(waits.iter().any(|w| *w > ceiling * 3 / 4));
    }
    let asked = backoff(&policy, 1, Some(Duration::from_millis(700)), &mut rng);
    assert!(asked >= Duration::from_millis(700));
    let capped = backoff(&policy, 1, Some(Duration::from_secs(60)), &mut rng);
    assert_eq!(capped, Duration::from_millis(1_000));
}

fn candidate(index: usize) -> Candidate {
    Candidate {
        index,
        weight: 1,
        priority: 0,
        cost: None,
        latency: None,
        in_flight: 0,
    }
}

#[test]
fn strategies_rank_by_their_key() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut pool = [candidate(0), candidate(1), candidate(2)];
    pool[0].priority = 2;
    pool[1].priority = 1;
    pool[2].priority = 3;
    assert_eq!(pick(Strategy::Priority, &pool, &mut rng), Some(1));

    pool[0].in_flight = 4;
    pool[1].in_flight = 2;
    pool[2].in_flight = 0;
    assert_eq!(pick(Strategy::LeastBusy, &pool, &mut rng), Some(2));

    pool[0].latency = Some(Duration::from_millis(30));
    pool[1].latency = Some(Duration::from_millis(10));
    pool[2].latency = None;
    assert_eq!(pick(Strategy::LeastLatency, &pool, &mut rng), Some(2));
    pool[2].latency = Some(Duration::from_millis(20));
    assert_eq!(pick(Strategy::LeastLatency, &pool, &mut rng), Some(1));

    pool[0].cost = Some(100);
    pool[1].cost = None;
    pool[2].cost = Some(300);
    assert_eq!(pick(Strategy::Cheapest, &pool, &mut rng), Some(0));

    assert_eq!(pick(Strategy::Weighted, &[], &mut rng), None);
}

#[test]
fn ties_are_shared_by_weight() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut pool = [candidate(0), candidate(1), candidate(2)];
    pool[0].weight = 1;
    pool[1].weight = 3;
    pool[2].priority = 9;
    pool[2].weight = 100;
    let mut counts = [0u32; 3];
    for _ in 0..4_000 {
        let index = pick(Strategy::Priority, &pool, &mut rng).unwrap();
        counts[index] += 1;
    }
    assert_eq!(counts[2], 0);
    let share = f64::from(counts[1]) / 4_000.0;
    assert!((0.70..0.80).contains(&share), "{share}");
}
