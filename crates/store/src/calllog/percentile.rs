//! Percentiles from the rollups' latency buckets (`lat_00`..`lat_29`, bounds in
//! `core::usage::LATENCY_BUCKETS_MS`): the bucket holding the rank is found by counting, and the
//! value interpolated linearly inside it, so the answer is within one bucket's width of the
//! exact percentile.

use switchboard_core::usage::LATENCY_BUCKETS_MS;

/// The `p`-th percentile (0 < p <= 1) of the latencies counted in `counts` (one per bucket);
/// `None` when nothing was counted. Values in the open last bucket are reported as its lower
/// bound (the rollups cannot say more).
pub fn percentile_ms(counts: &[i64], p: f64) -> Option<f64> {
    let total: i64 = counts.iter().map(|c| (*c).max(0)).sum();
    if total == 0 {
        return None;
    }
    let rank = (p.clamp(0.0, 1.0) * total as f64).max(f64::MIN_POSITIVE);
    let mut below = 0.0;
    for (i, count) in counts.iter().enumerate() {
        let count = (*count).max(0) as f64;
        if count > 0.0 && below + count >= rank {
            let lower = if i == 0 {
                0.0
            } else {
                LATENCY_BUCKETS_MS.get(i - 1).copied().unwrap_or(0) as f64
            };
            let Some(upper) = LATENCY_BUCKETS_MS.get(i).map(|u| *u as f64) else {
                return Some(lower);
            };
            return Some(lower + (upper - lower) * (rank - below) / count);
        }
        below += count;
    }
    // Unreachable with a positive total; the last bound is the honest answer.
    LATENCY_BUCKETS_MS.last().map(|b| *b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::usage::bucket_index;

    fn counts(latencies: &[u64]) -> Vec<i64> {
        let mut c = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        for l in latencies {
            c[bucket_index(*l)] += 1;
        }
        c
    }

    #[test]
    fn nothing_counted_has_no_percentile() {
        assert_eq!(percentile_ms(&[0; 30], 0.5), None);
    }

    #[test]
    fn interpolated_percentiles_are_within_a_bucket_of_the_exact_value() {
        let latencies: Vec<u64> = (1..=1000).map(|i| i * 7 % 2900 + 1).collect();
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        let c = counts(&latencies);
        for p in [0.5, 0.9, 0.95, 0.99] {
            let exact = sorted[((p * 1000.0) as usize).saturating_sub(1)];
            let got = percentile_ms(&c, p).unwrap();
            let b = bucket_index(exact);
            let lower = if b == 0 { 0 } else { LATENCY_BUCKETS_MS[b - 1] };
            let upper = LATENCY_BUCKETS_MS[b];
            let width = (upper - lower) as f64;
            assert!(
                (got - exact as f64).abs() <= width,
                "p{p}: got {got}, exact {exact}"
            );
        }
    }

    #[test]
    fn the_open_bucket_reports_its_lower_bound() {
        let c = counts(&[500_000]);
        assert_eq!(percentile_ms(&c, 0.99), Some(120_000.0));
    }
}
