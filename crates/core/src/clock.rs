//! The wall clock in Unix milliseconds: usage records, budget periods and rate windows are
//! calendar and epoch aligned, so they read the system clock (not a monotonic one).

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
