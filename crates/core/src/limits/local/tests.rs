//! Local-only behaviour that needs time to pass (on an injected clock, no sleeps): window
//! rollover, lease and budget expiry, the sweep, and lock ordering under threads. The semantics
//! shared with Redis are tested in `crates/store/tests/store/limits.rs`.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// A backend on a clock the test moves.
fn backend(start: u64) -> (LocalBackend, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(start));
    let clock = now.clone();
    (
        LocalBackend::with_clock(move || clock.load(Ordering::SeqCst)),
        now,
    )
}

fn counter(key: &str, kind: CounterKind) -> Counter {
    Counter {
        key: key.into(),
        kind,
    }
}

fn demand(request_id: &str) -> Demand<'_> {
    Demand {
        request_id,
        tokens: 0,
        cost: 0,
    }
}

fn admitted(v: Verdict) -> Vec<CounterState> {
    match v {
        Verdict::Admitted(states) => states,
        other => panic!("expected admission, got {other:?}"),
    }
}

#[test]
fn requests_window_rolls_over_at_the_epoch_aligned_boundary() {
    let (b, now) = backend(5_500);
    let c = [counter(
        "k",
        CounterKind::Requests {
            limit: 2,
            window_ms: 1_000,
        },
    )];
    assert_eq!(admitted(b.acquire_now(&c, &demand("a")))[0].used, 1);
    assert_eq!(admitted(b.acquire_now(&c, &demand("b")))[0].used, 2);
    match b.acquire_now(&c, &demand("c")) {
        Verdict::Refused {
            index: 0,
            retry_after_ms: 500,
            state,
        } => assert_eq!((state.used, state.reset_ms), (2, 500)),
        other => panic!("{other:?}"),
    }
    now.store(6_000, Ordering::SeqCst);
    let state = admitted(b.acquire_now(&c, &demand("c")))[0];
    assert_eq!((state.used, state.reset_ms), (1, 1_000));
}

#[test]
fn tokens_settle_only_into_the_current_window() {
    let (b, now) = backend(10_000);
    let kind = CounterKind::Tokens {
        limit: 100,
        window_ms: 1_000,
    };
    let c = [counter("t", kind)];
    let d = Demand {
        request_id: "r",
        tokens: 60,
        cost: 0,
    };
    let state = admitted(b.acquire_now(&c, &d))[0];
    assert_eq!((state.used, state.window), (60, 10));
    now.store(11_000, Ordering::SeqCst);
    // Settling into the ended window changes nothing the new window sees.
    b.settle_now(&[Settle {
        counter: c[0].clone(),
        kind: SettleKind::Tokens {
            window: 10,
            delta: 500,
        },
    }]);
    assert_eq!(b.peek_now(&c)[0].used, 0);
    b.settle_now(&[Settle {
        counter: c[0].clone(),
        kind: SettleKind::Tokens {
            window: 11,
            delta: 30,
        },
    }]);
    let state = b.peek_now(&c)[0];
    assert_eq!((state.used, state.window), (30, 11));
}

#[test]
fn leases_live_by_bucket_and_a_repeated_request_id_takes_its_own_slot() {
    let (b, now) = backend(1_000);
    // Buckets of 100 / 8 = 12 ms: 1_000 is in bucket 83 (996..=1_007), whose leases expire
    // 100 ms after its last millisecond, at 1_107.
    let c = [counter(
        "c",
        CounterKind::Concurrent {
            limit: 1,
            lease_ms: 100,
        },
    )];
    let state = admitted(b.acquire_now(&c, &demand("r1")))[0];
    assert_eq!((state.used, state.window), (1, 83));
    assert_eq!(lease_expiry(83, 100), 1_107);
    // The same request id again needs a slot of its own (a client repeating `x-request-id`
    // gets none for free).
    assert!(matches!(
        b.acquire_now(&c, &demand("r1")),
        Verdict::Refused {
            retry_after_ms: 0,
            ..
        }
    ));
    let release = |bucket| {
        b.settle_now(&[Settle {
            counter: c[0].clone(),
            kind: SettleKind::Release { bucket },
        }])
    };
    now.store(1_050, Ordering::SeqCst);
    release(83);
    assert_eq!(b.peek_now(&c)[0].used, 0);
    // Taken at 1_050, in bucket 87: live until 1_155, at least the lease's 100 ms.
    assert_eq!(admitted(b.acquire_now(&c, &demand("r2")))[0].window, 87);
    now.store(1_154, Ordering::SeqCst);
    assert_eq!(b.peek_now(&c)[0].used, 1);
    now.store(1_155, Ordering::SeqCst);
    assert_eq!(b.peek_now(&c)[0].used, 0);
    // Releasing the expired lease frees nothing it no longer holds; a release beyond what a
    // bucket holds (a retried settlement) stops at zero.
    release(87);
    let state = admitted(b.acquire_now(&c, &demand("r3")))[0];
    assert_eq!((state.used, state.window), (1, 96));
    release(96);
    release(96);
    assert_eq!(b.peek_now(&c)[0].used, 0);
    assert_eq!(admitted(b.acquire_now(&c, &demand("r4")))[0].used, 1);
}

#[test]
fn budget_expires_at_its_instant_and_is_seeded_again() {
    let (b, now) = backend(0);
    let kind = CounterKind::Budget {
        limit: 1_000,
        enforce: true,
        seed: 100,
        expires_at_ms: 1_000,
    };
    let c = [counter("b", kind)];
    let d = Demand {
        request_id: "r",
        tokens: 0,
        cost: 300,
    };
    assert_eq!(admitted(b.acquire_now(&c, &d))[0].used, 400);
    let change = b.settle_now(&[Settle {
        counter: c[0].clone(),
        kind: SettleKind::Budget {
            reserved: 300,
            actual: 250,
        },
    }]);
    assert_eq!(
        change,
        vec![Some(SpendChange {
            before: 100,
            after: 350
        })]
    );
    now.store(999, Ordering::SeqCst);
    assert_eq!(b.peek_now(&c)[0].used, 350);
    now.store(1_000, Ordering::SeqCst);
    assert_eq!(b.peek_now(&c)[0].used, 100);
    assert_eq!(admitted(b.acquire_now(&c, &d))[0].used, 400);
}

#[test]
fn sweep_drops_expired_entries_of_keys_never_seen_again() {
    let (b, now) = backend(0);
    let kind = CounterKind::Requests {
        limit: 10,
        window_ms: 1_000,
    };
    for i in 0..1_000 {
        admitted(b.acquire_now(&[counter(&format!("old{i}"), kind)], &demand("r")));
    }
    assert_eq!(b.entries(), 1_000);
    now.store(SWEEP_EVERY_MS + 1, Ordering::SeqCst);
    // New keys land in every shard, and each shard sweeps when first locked.
    for i in 0..1_000 {
        admitted(b.acquire_now(&[counter(&format!("new{i}"), kind)], &demand("r")));
    }
    assert_eq!(b.entries(), 1_000);
}

#[test]
fn acquires_over_overlapping_keys_from_many_threads_neither_deadlock_nor_lose_counts() {
    // A stopped clock: no window boundary can fall inside the test.
    let (b, _now) = backend(0);
    let kind = CounterKind::Requests {
        limit: u64::MAX,
        window_ms: 1_000,
    };
    let keys: Vec<Counter> = (0..64).map(|i| counter(&format!("k{i}"), kind)).collect();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (b, keys) = (&b, &keys);
            s.spawn(move || {
                for i in 0..2_000 {
                    // Pairs in both orders, so unordered locking would deadlock.
                    let (x, y) = ((i + t) % 64, (i * 7 + t * 13 + 1) % 64);
                    let pair = [keys[x].clone(), keys[y].clone()];
                    admitted(b.acquire_now(&pair, &demand("r")));
                }
            });
        }
    });
    let total: i64 = b.peek_now(&keys).iter().map(|s| s.used).sum();
    assert_eq!(total, 8 * 2_000 * 2);
}
