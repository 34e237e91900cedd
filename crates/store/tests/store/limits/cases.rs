//! The suite both backends pass: each `async fn(&Shared)` here runs as `name::local` and
//! `name::redis`.

use super::*;

suite!(
    requests_fill_a_window,
    tokens_fill_a_window_and_settle,
    concurrency_leases_and_release,
    expired_leases_do_not_count,
    budget_reserves_and_settles,
    budget_seed_applies_only_at_creation,
    unenforced_budget_never_refuses,
    acquire_is_all_or_nothing,
    a_counter_listed_twice_is_taken_twice,
    peek_of_missing_counters,
    settle_ignores_entries_that_do_not_fit,
    budget_holds_under_concurrent_requests,
    requests_limit_is_exact_across_instances,
    a_batch_settles_each_request_as_alone,
    token_settlements_in_a_batch_clamp_as_if_alone,
    concurrent_acquires_are_decided_as_alone,
);

/// The settle worker sends many requests' settlements in one call: each is settled as if it
/// were alone (its own lease released, its own budget change reported, in order).
async fn a_batch_settles_each_request_as_alone(shared: &Shared) {
    let b = shared.instance().await;
    let k = [
        concurrent("bc", 3, 60_000),
        budget("bb", 1_000, 0),
        tokens("bt", 1_000),
    ];
    let (mut bucket, mut window) = (0, 0);
    for id in ["r1", "r2", "r3"] {
        let states = admitted(b.acquire(&k, &demand(id, 30, 100)).await.unwrap());
        (bucket, window) = (states[0].window, states[2].window);
    }
    let entries = |actual, delta| {
        vec![
            settle(&k[0], SettleKind::Release { bucket }),
            settle(
                &k[1],
                SettleKind::Budget {
                    reserved: 100,
                    actual,
                },
            ),
            settle(&k[2], SettleKind::Tokens { window, delta }),
        ]
    };
    // r1 gives back more tokens than the window holds (the count stops at zero, as when
    // settled alone), then r2 adds some.
    let (one, two) = (entries(10, -100), entries(20, 15));
    let changes = b
        .settle_many(&[("r1", one.as_slice()), ("r2", two.as_slice())])
        .await
        .unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[0],
        vec![
            None,
            Some(SpendChange {
                before: 0,
                after: 10
            }),
            None
        ]
    );
    assert_eq!(
        changes[1],
        vec![
            None,
            Some(SpendChange {
                before: 10,
                after: 30
            }),
            None
        ]
    );
    // r3 still holds its lease and its reservation.
    assert_eq!(used(&*b, &k).await, vec![1, 130, 15]);
}

/// Many requests settling one token window in a batch: give-backs in a row take the count to
/// zero and no further, then additions count from there, exactly as one by one (Redis gets
/// each run of same-signed deltas as one; a sum of the whole batch would end elsewhere).
async fn token_settlements_in_a_batch_clamp_as_if_alone(shared: &Shared) {
    let b = shared.instance().await;
    let k = [tokens("tc", 1_000)];
    let mut window = 0;
    for id in ["r1", "r2", "r3"] {
        window = admitted(b.acquire(&k, &demand(id, 30, 0)).await.unwrap())[0].window;
    }
    // 90 -> 30 -> 0 (not -10) -> 0 -> 25 -> 45 -> 5
    let deltas = [-60, -40, -100, 25, 20, -40];
    let settles: Vec<Vec<Settle>> = deltas
        .iter()
        .map(|&delta| vec![settle(&k[0], SettleKind::Tokens { window, delta })])
        .collect();
    let ids: Vec<String> = (0..deltas.len()).map(|i| format!("s{i}")).collect();
    let jobs: Vec<(&str, &[Settle])> = ids
        .iter()
        .zip(&settles)
        .map(|(id, s)| (id.as_str(), s.as_slice()))
        .collect();
    b.settle_many(&jobs).await.unwrap();
    assert_eq!(used(&*b, &k).await, vec![5]);
}

async fn requests_fill_a_window(shared: &Shared) {
    let b = shared.instance().await;
    let k = [requests("rq", 3)];
    for n in 1..=3 {
        let s = admitted(b.acquire(&k, &demand("r", 0, 0)).await.unwrap())[0];
        assert_eq!((s.limit, s.used, s.window), (3, n, 0));
        assert!(s.reset_ms > 0 && s.reset_ms <= HOUR, "{s:?}");
    }
    let (index, retry, state) = refused(b.acquire(&k, &demand("r", 0, 0)).await.unwrap());
    assert_eq!((index, state.used, state.limit), (0, 3, 3));
    assert_eq!(retry, state.reset_ms);
    assert!(retry > 0 && retry <= HOUR);
    assert_eq!(state.remaining(), 0);
}

async fn tokens_fill_a_window_and_settle(shared: &Shared) {
    let b = shared.instance().await;
    let k = [tokens("tk", 100)];
    let s = admitted(b.acquire(&k, &demand("r1", 60, 0)).await.unwrap())[0];
    assert_eq!((s.limit, s.used), (100, 60));
    let window = s.window;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // The backend's clock (Redis's when shared) is close to ours: same hour, give or take one.
    assert!(window.abs_diff(wall / HOUR) <= 1, "window {window}");

    let (index, retry, state) = refused(b.acquire(&k, &demand("r2", 60, 0)).await.unwrap());
    assert_eq!((index, state.used), (0, 60));
    assert_eq!(retry, state.reset_ms);
    assert_eq!(state.window, window);
    assert_eq!(
        admitted(b.acquire(&k, &demand("r3", 40, 0)).await.unwrap())[0].used,
        100
    );

    // Actual usage below the estimate gives tokens back; never below zero.
    let changes = b
        .settle(
            "r1",
            &[settle(&k[0], SettleKind::Tokens { window, delta: -50 })],
        )
        .await
        .unwrap();
    assert_eq!(changes, vec![None]);
    let s = b.peek(&k).await.unwrap()[0];
    assert_eq!((s.used, s.window), (50, window));
    b.settle(
        "r3",
        &[settle(
            &k[0],
            SettleKind::Tokens {
                window,
                delta: -1_000,
            },
        )],
    )
    .await
    .unwrap();
    assert_eq!(used(&*b, &k).await, vec![0]);

    // A demand larger than the whole limit never fits; retry when the window resets.
    let (_, retry, state) = refused(b.acquire(&k, &demand("r4", 150, 0)).await.unwrap());
    assert_eq!((retry, state.used), (state.reset_ms, 0));
}

async fn concurrency_leases_and_release(shared: &Shared) {
    let b = shared.instance().await;
    let k = [concurrent("cc", 2, 60_000)];
    let d = |id| demand(id, 0, 0);
    let s1 = admitted(b.acquire(&k, &d("r1")).await.unwrap())[0];
    assert_eq!(s1.used, 1);
    let s = admitted(b.acquire(&k, &d("r2")).await.unwrap())[0];
    // The lease bucket (of 60 s / 8), to release the lease with.
    assert_eq!((s.used, s.limit, s.reset_ms), (2, 2, 0));
    assert!(s.window > 0);
    let (index, retry, state) = refused(b.acquire(&k, &d("r3")).await.unwrap());
    assert_eq!((index, retry, state.used), (0, 0, 2));
    // A request id that holds a lease gets no second slot for free (a client repeating its
    // `x-request-id` is counted once per request).
    refused(b.acquire(&k, &d("r2")).await.unwrap());

    let release = |bucket| [settle(&k[0], SettleKind::Release { bucket })];
    assert_eq!(
        b.settle("r1", &release(s1.window)).await.unwrap(),
        vec![None]
    );
    assert_eq!(used(&*b, &k).await, vec![1]);
    let s3 = admitted(b.acquire(&k, &d("r3")).await.unwrap())[0];
    assert_eq!(s3.used, 2);
    b.settle("r2", &release(s.window)).await.unwrap();
    b.settle("r3", &release(s3.window)).await.unwrap();
    assert_eq!(used(&*b, &k).await, vec![0]);
    // A release beyond what a bucket holds (a settlement retried after it was applied) stops
    // at zero: the next request counts as one.
    b.settle("r3", &release(s3.window)).await.unwrap();
    assert_eq!(used(&*b, &k).await, vec![0]);
    assert_eq!(admitted(b.acquire(&k, &d("r4")).await.unwrap())[0].used, 1);
}

async fn expired_leases_do_not_count(shared: &Shared) {
    let b = shared.instance().await;
    // A zero-length lease has expired by the next call: no sleep needed to see expiry.
    let k = [concurrent("cx", 1, 0)];
    assert_eq!(
        admitted(b.acquire(&k, &demand("r1", 0, 0)).await.unwrap())[0].used,
        1
    );
    assert_eq!(
        admitted(b.acquire(&k, &demand("r2", 0, 0)).await.unwrap())[0].used,
        1
    );
    assert_eq!(used(&*b, &k).await, vec![0]);
}

async fn budget_reserves_and_settles(shared: &Shared) {
    let b = shared.instance().await;
    let k = [budget("bg", 1_000, 200)];
    assert_eq!(used(&*b, &k).await, vec![200]);
    let s = admitted(b.acquire(&k, &demand("r1", 0, 500)).await.unwrap())[0];
    assert_eq!((s.limit, s.used, s.reset_ms, s.window), (1_000, 700, 0, 0));
    let (index, retry, state) = refused(b.acquire(&k, &demand("r2", 0, 400)).await.unwrap());
    assert_eq!((index, retry, state.used), (0, 0, 700));

    let changes = b
        .settle(
            "r1",
            &[settle(
                &k[0],
                SettleKind::Budget {
                    reserved: 500,
                    actual: 300,
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        changes,
        vec![Some(SpendChange {
            before: 200,
            after: 500
        })]
    );
    assert_eq!(used(&*b, &k).await, vec![500]);
    // Exactly at the limit fits.
    assert_eq!(
        admitted(b.acquire(&k, &demand("r3", 0, 500)).await.unwrap())[0].used,
        1_000
    );
    // Releasing more than is reserved leaves the reservation at zero, not below.
    let changes = b
        .settle(
            "r3",
            &[settle(
                &k[0],
                SettleKind::Budget {
                    reserved: 9_999,
                    actual: 0,
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        changes,
        vec![Some(SpendChange {
            before: 500,
            after: 500
        })]
    );
    assert_eq!(used(&*b, &k).await, vec![500]);
}

async fn budget_seed_applies_only_at_creation(shared: &Shared) {
    let b = shared.instance().await;
    let first = [budget("bs", 1_000, 200)];
    let later = [budget("bs", 1_000, 900)];
    assert_eq!(
        admitted(b.acquire(&first, &demand("r1", 0, 0)).await.unwrap())[0].used,
        200
    );
    assert_eq!(
        admitted(b.acquire(&later, &demand("r2", 0, 0)).await.unwrap())[0].used,
        200
    );
    assert_eq!(used(&*b, &later).await, vec![200]);
    // A peek creates nothing: the counter is seeded by whoever creates it.
    let fresh = [budget("bs2", 1_000, 77)];
    assert_eq!(used(&*b, &fresh).await, vec![77]);
    let fresh = [budget("bs2", 1_000, 5)];
    assert_eq!(
        admitted(b.acquire(&fresh, &demand("r3", 0, 0)).await.unwrap())[0].used,
        5
    );
}

async fn unenforced_budget_never_refuses(shared: &Shared) {
    let b = shared.instance().await;
    let k = [c(
        "bu",
        CounterKind::Budget {
            limit: 100,
            enforce: false,
            seed: 0,
            expires_at_ms: in_an_hour(),
        },
    )];
    for n in 1..=3 {
        let s = admitted(b.acquire(&k, &demand("r", 0, 500)).await.unwrap())[0];
        assert_eq!((s.used, s.remaining()), (500 * n, 0));
    }
}

async fn acquire_is_all_or_nothing(shared: &Shared) {
    let b = shared.instance().await;
    let k = [
        requests("an-q", 1),
        concurrent("an-c", 5, 60_000),
        tokens("an-t", 1_000),
        budget("an-b", 100, 0),
    ];
    // The budget (last) refuses: nothing before it is taken.
    let (index, retry, state) = refused(b.acquire(&k, &demand("r1", 10, 150)).await.unwrap());
    assert_eq!((index, retry, state.used, state.limit), (3, 0, 0, 100));
    assert_eq!(used(&*b, &k).await, vec![0, 0, 0, 0]);

    let states = admitted(b.acquire(&k, &demand("r2", 10, 40)).await.unwrap());
    let got: Vec<i64> = states.iter().map(|s| s.used).collect();
    assert_eq!(got, vec![1, 1, 10, 40]);
    assert!(states[2].window > 0);

    // Now the requests counter (first) is full: the others are left alone.
    let (index, retry, state) = refused(b.acquire(&k, &demand("r3", 10, 40)).await.unwrap());
    assert_eq!((index, state.used), (0, 1));
    assert!(retry > 0);
    assert_eq!(used(&*b, &k).await, vec![1, 1, 10, 40]);
}

async fn a_counter_listed_twice_is_taken_twice(shared: &Shared) {
    let b = shared.instance().await;
    let one = [requests("dup1", 1), requests("dup1", 1)];
    let (index, _, state) = refused(b.acquire(&one, &demand("r", 0, 0)).await.unwrap());
    assert_eq!((index, state.used), (1, 1));
    assert_eq!(used(&*b, &one[..1]).await, vec![0]);

    let two = [requests("dup2", 2), requests("dup2", 2)];
    let states = admitted(b.acquire(&two, &demand("r", 0, 0)).await.unwrap());
    assert_eq!((states[0].used, states[1].used), (1, 2));
    assert_eq!(used(&*b, &two[..1]).await, vec![2]);

    // Same key, different kinds: different counters.
    let mixed = [requests("dup3", 1), tokens("dup3", 5)];
    let states = admitted(b.acquire(&mixed, &demand("r", 5, 0)).await.unwrap());
    assert_eq!((states[0].used, states[1].used), (1, 5));
}

async fn peek_of_missing_counters(shared: &Shared) {
    let b = shared.instance().await;
    let k = [
        requests("pm-q", 7),
        tokens("pm-t", 8),
        concurrent("pm-c", 9, 1_000),
        budget("pm-b", 10, 3),
    ];
    let states = b.peek(&k).await.unwrap();
    let got: Vec<(i64, i64)> = states.iter().map(|s| (s.limit, s.used)).collect();
    assert_eq!(got, vec![(7, 0), (8, 0), (9, 0), (10, 3)]);
    assert!(states[0].reset_ms > 0 && states[0].reset_ms <= HOUR);
    assert_eq!(states[0].window, 0);
    assert!(states[1].window > 0);
    assert_eq!((states[2].reset_ms, states[3].reset_ms), (0, 0));
    // Peeking twice changes nothing but the clock: the time to the window's end, and the token
    // window or lease bucket when the second peek crosses into the next one (lease buckets are
    // short, so that happens).
    let again = b.peek(&k).await.unwrap();
    let strip =
        |s: &[CounterState]| -> Vec<(i64, i64)> { s.iter().map(|s| (s.limit, s.used)).collect() };
    assert_eq!(strip(&again), strip(&states));
    for (before, after) in states.iter().zip(&again) {
        assert!(
            (before.window..=before.window + 1).contains(&after.window),
            "{before:?} then {after:?}"
        );
    }
    assert!(b.peek(&[]).await.unwrap().is_empty());
    assert_eq!(
        b.acquire(&[], &demand("r", 0, 0)).await.unwrap(),
        Verdict::Admitted(vec![])
    );
    assert!(b.settle("r", &[]).await.unwrap().is_empty());
}

async fn settle_ignores_entries_that_do_not_fit(shared: &Shared) {
    let b = shared.instance().await;
    let q = requests("sm-q", 5);
    admitted(
        b.acquire(std::slice::from_ref(&q), &demand("r", 0, 0))
            .await
            .unwrap(),
    );
    let changes = b
        .settle(
            "r",
            &[
                settle(&q, SettleKind::Release { bucket: 0 }),
                settle(
                    &q,
                    SettleKind::Budget {
                        reserved: 1,
                        actual: 1,
                    },
                ),
                // A budget settled after it expired (or never admitted here) starts from the
                // seed, so the spend is not lost.
                settle(
                    &budget("sm-b", 100, 30),
                    SettleKind::Budget {
                        reserved: 10,
                        actual: 20,
                    },
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        changes,
        vec![
            None,
            None,
            Some(SpendChange {
                before: 30,
                after: 50
            })
        ]
    );
    assert_eq!(used(&*b, &[q]).await, vec![1]);
    assert_eq!(used(&*b, &[budget("sm-b", 100, 0)]).await, vec![50]);
}

/// 50 concurrent requests against one budget, spread over three instances: every refusal is
/// justified by the spend and reservations at that instant, the budget is never overspent, and
/// the settlements form one serial history (each starts where another ended).
async fn budget_holds_under_concurrent_requests(shared: &Shared) {
    const LIMIT: i64 = 10_000;
    const COST: i64 = 1_000;
    let instances = [
        shared.instance().await,
        shared.instance().await,
        shared.instance().await,
    ];
    let k = [budget("bc", LIMIT, 0)];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (b, k) = (instances[i % 3].clone(), k.clone());
        tasks.spawn(async move {
            let id = format!("r{i}");
            match b.acquire(&k, &demand(&id, 0, COST)).await.unwrap() {
                Verdict::Admitted(states) => {
                    assert!(states[0].used <= LIMIT);
                    tokio::task::yield_now().await;
                    let actual = COST - (i as i64 % 5) * 100;
                    let entry = settle(
                        &k[0],
                        SettleKind::Budget {
                            reserved: COST,
                            actual,
                        },
                    );
                    let change = b.settle(&id, &[entry]).await.unwrap()[0].unwrap();
                    assert_eq!(change.after - change.before, actual);
                    Some(change)
                }
                Verdict::Refused { state, .. } => {
                    assert!(state.used + COST > LIMIT, "refused with room: {state:?}");
                    None
                }
            }
        });
    }
    let mut changes: Vec<SpendChange> = tasks.join_all().await.into_iter().flatten().collect();
    assert!(changes.len() >= 10, "admitted {}", changes.len());
    changes.sort_by_key(|c| c.before);
    assert_eq!(changes[0].before, 0);
    for pair in changes.windows(2) {
        assert_eq!(pair[0].after, pair[1].before, "{changes:?}");
    }
    let spent = changes.last().unwrap().after;
    assert!(spent <= LIMIT);
    // No reservation is left behind.
    assert_eq!(used(&*instances[0], &k).await, vec![spent]);
}

/// Three instances (separate connections for Redis) race 300 acquires against a limit of 100
/// requests per window: exactly 100 are admitted.
async fn requests_limit_is_exact_across_instances(shared: &Shared) {
    const LIMIT: u64 = 100;
    let instances = [
        shared.instance().await,
        shared.instance().await,
        shared.instance().await,
    ];
    for attempt in 0..2 {
        let k = [requests(&format!("acc{attempt}"), LIMIT)];
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300 {
            let (b, k) = (instances[i % 3].clone(), k.clone());
            tasks.spawn(async move { b.acquire(&k, &demand("r", 0, 0)).await.unwrap() });
        }
        let verdicts = tasks.join_all().await;
        let resets: Vec<u64> = verdicts
            .iter()
            .map(|v| match v {
                Verdict::Admitted(s) => s[0].reset_ms,
                Verdict::Refused { state, .. } => state.reset_ms,
            })
            .collect();
        let spread = resets.iter().max().unwrap() - resets.iter().min().unwrap();
        if spread > HOUR / 2 {
            // The hour turned during the race: the count spans two windows. Once more.
            continue;
        }
        let admitted = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Admitted(_)))
            .count();
        assert_eq!(admitted as u64, LIMIT);
        let mut used: Vec<i64> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Admitted(s) => Some(s[0].used),
                Verdict::Refused { .. } => None,
            })
            .collect();
        used.sort_unstable();
        assert_eq!(used, (1..=LIMIT as i64).collect::<Vec<_>>());
        return;
    }
    panic!("two window boundaries in a row");
}

/// Many acquires at once on one instance (which Redis sends as batches): each is decided as if
/// it came alone. A refused request takes nothing from its other counters, and a request that
/// already holds a lease needs no second one, also when both of its acquires share a batch.
async fn concurrent_acquires_are_decided_as_alone(shared: &Shared) {
    let b = shared.instance().await;
    let k = [requests("ca-q", 1_000), concurrent("ca-c", 10, 60_000)];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (b, k) = (b.clone(), k.clone());
        tasks.spawn(async move {
            let id = format!("r{i}");
            b.acquire(&k, &demand(&id, 0, 0)).await.unwrap()
        });
    }
    let verdicts = tasks.join_all().await;
    let mut live: Vec<i64> = verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Admitted(s) => Some(s[1].used),
            Verdict::Refused { index, state, .. } => {
                assert_eq!((*index, state.used), (1, 10));
                None
            }
        })
        .collect();
    live.sort_unstable();
    assert_eq!(live, (1..=10).collect::<Vec<_>>());
    assert_eq!(used(&*b, &k).await, vec![10, 10]);

    // A counter listed twice is taken twice by each request of a batch, whether the batch's
    // run of requests is admitted as a whole (room for all) or one by one (room for 10).
    for (key, limit, admitted) in [("ca-2a", 1_000, 40), ("ca-2b", 21, 10)] {
        let twice = [requests(key, limit), requests(key, limit)];
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (b, k) = (b.clone(), twice.clone());
            tasks.spawn(async move { b.acquire(&k, &demand(&format!("t{i}"), 0, 0)).await });
        }
        let mut used_after: Vec<i64> = tasks
            .join_all()
            .await
            .into_iter()
            .filter_map(|v| match v.unwrap() {
                Verdict::Admitted(s) => Some(s[1].used),
                Verdict::Refused { .. } => None,
            })
            .collect();
        used_after.sort_unstable();
        assert_eq!(
            used_after,
            (1..=admitted).map(|n| 2 * n).collect::<Vec<_>>()
        );
    }

    // Requests sharing one plan's counters (as the limiter's do) are decided the same way.
    let plan: Arc<[Counter]> = Arc::from(vec![
        requests("ca-s", 1_000),
        concurrent("ca-s", 20, 60_000),
    ]);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (b, plan) = (b.clone(), plan.clone());
        tasks.spawn(async move {
            b.acquire_shared(&plan, &demand(&format!("s{i}"), 0, 0))
                .await
                .unwrap()
        });
    }
    let mut live: Vec<i64> = tasks
        .join_all()
        .await
        .into_iter()
        .filter_map(|v| match v {
            Verdict::Admitted(s) => Some(s[1].used),
            Verdict::Refused { .. } => None,
        })
        .collect();
    live.sort_unstable();
    assert_eq!(live, (1..=20).collect::<Vec<_>>());

    // Request ids repeated across concurrent requests share nothing: still 10 slots in all.
    let k = [concurrent("ca-twice", 10, 60_000)];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (b, k) = (b.clone(), k.clone());
        tasks.spawn(async move {
            let id = format!("r{}", i % 10);
            b.acquire(&k, &demand(&id, 0, 0)).await.unwrap()
        });
    }
    let slots = tasks
        .join_all()
        .await
        .into_iter()
        .filter(|v| matches!(v, Verdict::Admitted(_)))
        .count();
    assert_eq!(slots, 10);
    assert_eq!(used(&*b, &k).await, vec![10]);
}
