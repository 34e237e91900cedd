//! The wall clock in Unix milliseconds: usage records, budget periods and rate windows are
//! calendar and epoch aligned, so they read the system clock (not a monotonic one).

pub(crate) use switchboard_types::calendar::now_ms;
