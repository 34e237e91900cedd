//! The latency buckets of the analytics rollups (`usage_rollups.lat_00` .. `lat_29`): one
//! definition for the writer that fills them and the queries that read percentiles from them.
//! Bounds grow by about 1.5x, so a percentile interpolated inside a bucket is within a bucket's
//! width of the exact value (docs/observability.md).

/// Inclusive upper bounds, in milliseconds, of the first 29 buckets; the 30th takes the rest.
pub const LATENCY_BUCKETS_MS: [u64; 29] = [
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000,
    3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
];

/// The bucket (0..=29) a latency falls in.
pub fn bucket_index(latency_ms: u64) -> usize {
    LATENCY_BUCKETS_MS.partition_point(|&bound| bound < latency_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_the_last_bucket_is_open() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(1), 0);
        assert_eq!(bucket_index(2), 1);
        assert_eq!(bucket_index(4), 3);
        assert_eq!(bucket_index(120_000), 28);
        assert_eq!(bucket_index(120_001), 29);
        assert_eq!(bucket_index(u64::MAX), 29);
    }
}
