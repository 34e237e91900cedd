//! The arithmetic of one counter, apart from where it is stored: what a counter looks like at an
//! instant ([`View`]), whether a demand fits, what taking it leaves, and the [`CounterState`]
//! reported. The Redis scripts in the store crate implement the same rules in Lua; keep them in
//! step (the shared test suite in `crates/store/tests/store/limits.rs` checks that they are).

use crate::limits::backend::{CounterKind, CounterState, Demand};

/// The storage a counter kind lives in; counters of different kinds never share storage even
/// when their keys are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Tag {
    Requests,
    Tokens,
    Concurrent,
    Budget,
}

impl Tag {
    pub(super) fn of(kind: &CounterKind) -> Tag {
        match kind {
            CounterKind::Requests { .. } => Tag::Requests,
            CounterKind::Tokens { .. } => Tag::Tokens,
            CounterKind::Concurrent { .. } => Tag::Concurrent,
            CounterKind::Budget { .. } => Tag::Budget,
        }
    }
}

/// A counter as seen by one call at one instant, after expired parts were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum View {
    /// `count` requests or tokens in window `index` (the current one).
    Window { index: u64, count: u64 },
    /// `live` unexpired leases, `added` of them by this admission into `bucket` (the current
    /// lease bucket).
    Leases { live: u64, bucket: u64, added: u64 },
    /// `exists` is false while the counter has not been created (spent is then the seed).
    Budget {
        spent: i64,
        reserved: i64,
        exists: bool,
    },
}

/// A window length that cannot divide by zero (a zero-length window would be a config error;
/// treating it as 1 ms keeps the backend total rather than panicking).
pub(super) fn window_len(window_ms: u64) -> u64 {
    window_ms.max(1)
}

/// The fixed window `now_ms` falls in, aligned to the epoch.
pub(super) fn window_index(now_ms: u64, window_ms: u64) -> u64 {
    now_ms / window_len(window_ms)
}

/// Milliseconds from `now_ms` to the end of window `index`.
fn reset_ms(now_ms: u64, index: u64, window_ms: u64) -> u64 {
    index
        .saturating_add(1)
        .saturating_mul(window_len(window_ms))
        .saturating_sub(now_ms)
}

/// Counts and limits are u64 in the API but i64 in [`CounterState`]; saturate rather than wrap.
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `n + delta`, never below 0.
pub(super) fn add_delta(n: u64, delta: i64) -> u64 {
    if delta >= 0 {
        n.saturating_add(delta.unsigned_abs())
    } else {
        n.saturating_sub(delta.unsigned_abs())
    }
}

/// What taking `demand` from a counter showing `view` leaves, or `None` when it is full.
pub(super) fn take(kind: &CounterKind, view: View, demand: &Demand<'_>) -> Option<View> {
    match (*kind, view) {
        (CounterKind::Requests { limit, .. }, View::Window { index, count }) => {
            (count.saturating_add(1) <= limit).then_some(View::Window {
                index,
                count: count.saturating_add(1),
            })
        }
        (CounterKind::Tokens { limit, .. }, View::Window { index, count }) => {
            let after = count.saturating_add(demand.tokens);
            (after <= limit).then_some(View::Window {
                index,
                count: after,
            })
        }
        // Every admission takes a slot of its own, whatever its request id (a client repeating
        // an `x-request-id` gets no slot for free).
        (
            CounterKind::Concurrent { limit, .. },
            View::Leases {
                live,
                bucket,
                added,
            },
        ) => (live < limit).then_some(View::Leases {
            live: live.saturating_add(1),
            bucket,
            added: added.saturating_add(1),
        }),
        (
            CounterKind::Budget { limit, enforce, .. },
            View::Budget {
                spent,
                reserved,
                exists,
            },
        ) => {
            // i128 so that extreme limits or costs compare correctly instead of overflowing.
            let total = i128::from(spent) + i128::from(reserved) + i128::from(demand.cost);
            (!enforce || total <= i128::from(limit)).then_some(View::Budget {
                spent,
                reserved: reserved.saturating_add(demand.cost),
                exists,
            })
        }
        // The view is always made from the same kind; a mismatch would be a bug in this module,
        // and refusing would block traffic, so the counter is passed through untouched.
        _ => Some(view),
    }
}

/// The state reported for a counter showing `view` at `now_ms`.
pub(super) fn state(kind: &CounterKind, view: View, now_ms: u64) -> CounterState {
    match (*kind, view) {
        (CounterKind::Requests { limit, window_ms }, View::Window { index, count }) => {
            CounterState {
                limit: signed(limit),
                used: signed(count),
                reset_ms: reset_ms(now_ms, index, window_ms),
                window: 0,
            }
        }
        (CounterKind::Tokens { limit, window_ms }, View::Window { index, count }) => CounterState {
            limit: signed(limit),
            used: signed(count),
            reset_ms: reset_ms(now_ms, index, window_ms),
            window: index,
        },
        (CounterKind::Concurrent { limit, .. }, View::Leases { live, bucket, .. }) => {
            CounterState {
                limit: signed(limit),
                used: signed(live),
                reset_ms: 0,
                window: bucket,
            }
        }
        (
            CounterKind::Budget { limit, .. },
            View::Budget {
                spent, reserved, ..
            },
        ) => CounterState {
            limit,
            used: spent.saturating_add(reserved),
            reset_ms: 0,
            window: 0,
        },
        _ => CounterState::default(),
    }
}

/// When a full counter has room again as far as the backend knows: the window's end for
/// windows, 0 (unknown) for leases and budgets.
pub(super) fn retry_after_ms(kind: &CounterKind, state: &CounterState) -> u64 {
    match kind {
        CounterKind::Requests { .. } | CounterKind::Tokens { .. } => state.reset_ms,
        CounterKind::Concurrent { .. } | CounterKind::Budget { .. } => 0,
    }
}
