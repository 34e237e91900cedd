//! The strategies that pick one target among those an attempt may use (the router has already
//! removed targets whose circuit is open and, when it can, targets this request already
//! tried). Each strategy ranks the candidates by one key; candidates tied on the best key share
//! the traffic by weight, so that equal targets are load-balanced rather than the first in the
//! list taking everything.

use crate::config::Strategy;
use rand::Rng;
use std::time::Duration;

/// What a strategy knows of one candidate target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// The target's position in its alias.
    pub index: usize,
    pub weight: u32,
    pub priority: u32,
    /// Input plus output price per million tokens in micro-dollars, if known.
    pub cost: Option<i64>,
    /// Average time to the provider's answer; `None` if never tried.
    pub latency: Option<Duration>,
    pub in_flight: u32,
}

/// The index of the chosen candidate, `None` only when `pool` is empty.
pub(crate) fn pick(strategy: Strategy, pool: &[Candidate], rng: &mut impl Rng) -> Option<usize> {
    match strategy {
        Strategy::Weighted => weighted(pool.iter(), rng),
        Strategy::Priority => best_by(pool, rng, |c| c.priority),
        // Untried targets first (so that every target gets measured), then the fastest.
        Strategy::LeastLatency => best_by(pool, rng, |c| match c.latency {
            None => (false, Duration::ZERO),
            Some(latency) => (true, latency),
        }),
        Strategy::LeastBusy => best_by(pool, rng, |c| c.in_flight),
        // Targets without a known price come after every priced one.
        Strategy::Cheapest => best_by(pool, rng, |c| match c.cost {
            Some(cost) => (false, cost),
            None => (true, 0),
        }),
    }
}

/// Among the candidates with the smallest `key`, one chosen by weight.
fn best_by<K: Ord>(
    pool: &[Candidate],
    rng: &mut impl Rng,
    key: impl Fn(&Candidate) -> K,
) -> Option<usize> {
    let best = pool.iter().map(&key).min()?;
    weighted(pool.iter().filter(|c| key(c) == best), rng)
}

/// One candidate at random, each with probability weight / total weight. Weights are
/// validated positive; if they all were zero the choice would be uniform.
fn weighted<'a>(
    pool: impl Iterator<Item = &'a Candidate> + Clone,
    rng: &mut impl Rng,
) -> Option<usize> {
    let total: u64 = pool.clone().map(|c| u64::from(c.weight)).sum();
    if total == 0 {
        let count = pool.clone().count();
        if count == 0 {
            return None;
        }
        return pool
            .clone()
            .nth(rng.random_range(0..count))
            .map(|c| c.index);
    }
    let mut ticket = rng.random_range(0..total);
    let mut last = None;
    for candidate in pool {
        let weight = u64::from(candidate.weight);
        if ticket < weight {
            return Some(candidate.index);
        }
        ticket -= weight;
        last = Some(candidate.index);
    }
    last
}
