//! Limit counters: one suite run against the in-memory `LocalBackend` and against `RedisLimits`
//! (when `SWITCHBOARD_TEST_REDIS` names a Redis), so both give the same answers. Each case gets a
//! [`Shared`] that makes backend instances over the same counters: clones of one `LocalBackend`,
//! or separate `RedisLimits` connections under one fresh key prefix (as separate gateway
//! processes would be), so reruns and parallel tests never share keys.
//!
//! Windows are an hour long so a case does not straddle a boundary (the accuracy case checks and
//! retries once if it did). Time-dependent local behaviour (rollover, expiry) is unit-tested in
//! core on an injected clock; here lease expiry is checked without sleeping through zero-length
//! leases.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard_core::limits::{
    Counter, CounterKind, CounterState, Demand, LimitBackend, LocalBackend, Settle, SettleKind,
    SpendChange, Verdict,
};
use switchboard_store::RedisLimits;

const REDIS_ENV: &str = "SWITCHBOARD_TEST_REDIS";
const TIMEOUT: Duration = Duration::from_secs(2);
const HOUR: u64 = 3_600_000;

/// Where the counters of one case live.
enum Shared {
    Local(Arc<LocalBackend>),
    Redis { url: String, prefix: String },
}

impl Shared {
    fn local() -> Shared {
        Shared::Local(Arc::new(LocalBackend::new()))
    }

    /// Redis under a fresh prefix, or `None` (with a loud note) when the variable is not set.
    fn redis() -> Option<Shared> {
        let Ok(url) = std::env::var(REDIS_ENV) else {
            // Straight to stderr: libtest captures print macros of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED (redis limits): {REDIS_ENV} not set, \
                 e.g. redis://127.0.0.1:6379 ***\n"
            );
            return None;
        };
        let prefix = format!("switchboard:rl:test:{}:", uuid::Uuid::new_v4().simple());
        Some(Shared::Redis { url, prefix })
    }

    /// One more backend instance over the same counters.
    async fn instance(&self) -> Arc<dyn LimitBackend> {
        match self {
            Shared::Local(local) => local.clone(),
            Shared::Redis { url, prefix } => Arc::new(
                RedisLimits::connect(url, TIMEOUT)
                    .await
                    .unwrap()
                    .with_prefix(prefix.clone()),
            ),
        }
    }

    /// Deletes the case's Redis keys (they carry TTLs anyway).
    async fn cleanup(&self) {
        let Shared::Redis { url, prefix } = self else {
            return;
        };
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Runs each `async fn(&Shared)` against both backends: tests `name::local` and `name::redis`.
macro_rules! suite {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local() {
                super::$case(&super::Shared::local()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                if let Some(shared) = super::Shared::redis() {
                    super::$case(&shared).await;
                    shared.cleanup().await;
                }
            }
        }
    )+};
}

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
);

fn c(key: &str, kind: CounterKind) -> Counter {
    Counter {
        key: key.to_owned(),
        kind,
    }
}

fn requests(key: &str, limit: u64) -> Counter {
    c(
        key,
        CounterKind::Requests {
            limit,
            window_ms: HOUR,
        },
    )
}

fn tokens(key: &str, limit: u64) -> Counter {
    c(
        key,
        CounterKind::Tokens {
            limit,
            window_ms: HOUR,
        },
    )
}

fn concurrent(key: &str, limit: u64, lease_ms: u64) -> Counter {
    c(key, CounterKind::Concurrent { limit, lease_ms })
}

fn budget(key: &str, limit: i64, seed: i64) -> Counter {
    c(
        key,
        CounterKind::Budget {
            limit,
            enforce: true,
            seed,
            ttl_ms: HOUR,
        },
    )
}

fn demand(request_id: &str, tokens: u64, cost: i64) -> Demand<'_> {
    Demand {
        request_id,
        tokens,
        cost,
    }
}

fn admitted(verdict: Verdict) -> Vec<CounterState> {
    match verdict {
        Verdict::Admitted(states) => states,
        other => panic!("expected admission, got {other:?}"),
    }
}

/// The refusal's index, retry and state.
fn refused(verdict: Verdict) -> (usize, u64, CounterState) {
    match verdict {
        Verdict::Refused {
            index,
            retry_after_ms,
            state,
        } => (index, retry_after_ms, state),
        other => panic!("expected refusal, got {other:?}"),
    }
}

fn settle(counter: &Counter, kind: SettleKind) -> Settle {
    Settle {
        counter: counter.clone(),
        kind,
    }
}

async fn used(b: &dyn LimitBackend, counters: &[Counter]) -> Vec<i64> {
    b.peek(counters)
        .await
        .unwrap()
        .iter()
        .map(|s| s.used)
        .collect()
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
    assert_eq!(admitted(b.acquire(&k, &d("r1")).await.unwrap())[0].used, 1);
    let s = admitted(b.acquire(&k, &d("r2")).await.unwrap())[0];
    assert_eq!((s.used, s.limit, s.reset_ms, s.window), (2, 2, 0, 0));
    let (index, retry, state) = refused(b.acquire(&k, &d("r3")).await.unwrap());
    assert_eq!((index, retry, state.used), (0, 0, 2));
    // A request that holds a lease may acquire again without a second slot.
    assert_eq!(admitted(b.acquire(&k, &d("r2")).await.unwrap())[0].used, 2);

    let release = [settle(&k[0], SettleKind::Release)];
    assert_eq!(b.settle("r1", &release).await.unwrap(), vec![None]);
    assert_eq!(used(&*b, &k).await, vec![1]);
    assert_eq!(admitted(b.acquire(&k, &d("r3")).await.unwrap())[0].used, 2);
    b.settle("r2", &release).await.unwrap();
    b.settle("r3", &release).await.unwrap();
    // Releasing twice is harmless.
    b.settle("r3", &release).await.unwrap();
    assert_eq!(used(&*b, &k).await, vec![0]);
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
            ttl_ms: HOUR,
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
    // Peeking twice changes nothing (but the time to the window's end).
    let again = b.peek(&k).await.unwrap();
    let strip = |s: &[CounterState]| -> Vec<(i64, i64, u64)> {
        s.iter().map(|s| (s.limit, s.used, s.window)).collect()
    };
    assert_eq!(strip(&again), strip(&states));
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
    admitted(b.acquire(&[q.clone()], &demand("r", 0, 0)).await.unwrap());
    let changes = b
        .settle(
            "r",
            &[
                settle(&q, SettleKind::Release),
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

/// A port nothing listens on: every call fails fast with a `BackendError`.
#[tokio::test]
async fn unreachable_redis_fails_within_the_timeout() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let b = RedisLimits::connect(&format!("redis://127.0.0.1:{port}"), timeout)
        .await
        .unwrap();
    assert!(started.elapsed() < timeout + Duration::from_millis(500));
    let k = [requests("x", 1)];
    let started = Instant::now();
    let err = b.acquire(&k, &demand("r", 0, 0)).await.unwrap_err();
    assert!(err.to_string().contains("redis acquire"), "{err}");
    assert!(b.peek(&k).await.is_err());
    assert!(b
        .settle("r", &[settle(&k[0], SettleKind::Release)])
        .await
        .is_err());
    assert!(b.ping().await.is_err());
    // Refused connections fail at once, not after the timeout.
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
}

/// A server that accepts connections and never answers: calls give up after the timeout.
#[tokio::test]
async fn silent_redis_times_out() {
    // Held open and never accepted: the kernel completes the handshake, nothing replies.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let timeout = Duration::from_millis(300);
    let b = RedisLimits::connect(&format!("redis://127.0.0.1:{port}"), timeout)
        .await
        .unwrap();
    let started = Instant::now();
    let err = b
        .acquire(&[requests("x", 1)], &demand("r", 0, 0))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout / 2, "{elapsed:?}: {err}");
    assert!(
        elapsed < timeout + Duration::from_millis(700),
        "{elapsed:?}"
    );
    drop(listener);
}

/// An invalid URL is the one error `connect` reports.
#[tokio::test]
async fn invalid_url_is_refused() {
    let err = RedisLimits::connect("not a url", TIMEOUT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid Redis URL"), "{err}");
}

/// Redis drops the connection (as a restart would): the call that finds it dead fails, the
/// next one reconnects, and the counters are as they were.
#[tokio::test]
async fn redis_connection_recovers_after_a_drop() {
    let Some(Shared::Redis { url, prefix }) = Shared::redis() else {
        return;
    };
    // Database 12 tags this test's connections in CLIENT LIST.
    let base = url.trim_end_matches('/');
    let base = match base.split_once("://") {
        Some((_, rest)) if rest.contains('/') => base.rsplit_once('/').unwrap().0,
        _ => base,
    };
    let shared = Shared::Redis {
        url: format!("{base}/12"),
        prefix,
    };
    let b = shared.instance().await;
    let k = [requests("rc", 10)];
    admitted(b.acquire(&k, &demand("r", 0, 0)).await.unwrap());

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<&str> = list
        .lines()
        .filter(|line| line.contains(" db=12 "))
        .filter_map(|line| line.strip_prefix("id=")?.split(' ').next())
        .collect();
    assert!(!ids.is_empty(), "no connection on db 12 in {list}");
    for id in ids {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    let started = Instant::now();
    // The first call may find the connection dead (an error, and a reconnect begins).
    let first = b.acquire(&k, &demand("r", 0, 0)).await;
    let second = admitted(b.acquire(&k, &demand("r", 0, 0)).await.unwrap())[0];
    let expected = if first.is_ok() { 3 } else { 2 };
    assert_eq!(second.used, expected);
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    shared.cleanup().await;
}

/// Every key carries a TTL fitting its kind (nothing leaks), under the configured prefix.
#[tokio::test]
async fn redis_keys_expire() {
    let Some(shared) = Shared::redis() else {
        return;
    };
    let Shared::Redis { url, prefix } = &shared else {
        unreachable!()
    };
    let b = shared.instance().await;
    let no_ttl = c(
        "k",
        CounterKind::Budget {
            limit: 10,
            enforce: true,
            seed: 0,
            ttl_ms: 0,
        },
    );
    let k = [
        requests("k", 5),
        tokens("k", 5),
        concurrent("k", 5, 30_000),
        budget("k2", 10, 0),
        no_ttl,
    ];
    admitted(b.acquire(&k, &demand("r", 1, 1)).await.unwrap());
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pttl = async |suffix: &str| -> i64 {
        redis::cmd("PTTL")
            .arg(format!("{prefix}{suffix}"))
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    let q = pttl("q:k").await;
    assert!(
        q > (2 * HOUR - 60_000) as i64 && q <= (2 * HOUR) as i64,
        "{q}"
    );
    let t = pttl("t:k").await;
    assert!(
        t > (2 * HOUR - 60_000) as i64 && t <= (2 * HOUR) as i64,
        "{t}"
    );
    let l = pttl("c:k").await;
    assert!(l > 20_000 && l <= 30_000, "{l}");
    let bg = pttl("b:k2").await;
    assert!(bg > (HOUR - 60_000) as i64 && bg <= HOUR as i64, "{bg}");
    assert_eq!(pttl("b:k").await, -1);
    shared.cleanup().await;
}

/// Latency on this machine: `cargo test --release -p switchboard-store --test store
/// limits::latency -- --ignored --nocapture` (with the Redis variable set for Redis numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn latency() {
    const N: u32 = 20_000;
    let k = [
        requests("lat-q", u64::MAX),
        tokens("lat-t", u64::MAX),
        budget("lat-b", i64::MAX / 2, 0),
    ];
    let local = LocalBackend::new();
    let started = Instant::now();
    for _ in 0..N {
        admitted(local.acquire(&k, &demand("r", 1, 1)).await.unwrap());
    }
    let per = started.elapsed() / N;
    let _ = writeln!(std::io::stderr(), "local acquire (3 counters): {per:?}");
    if let Some(shared) = Shared::redis() {
        let b = shared.instance().await;
        let started = Instant::now();
        for _ in 0..N / 4 {
            admitted(b.acquire(&k, &demand("r", 1, 1)).await.unwrap());
        }
        let per = started.elapsed() / (N / 4);
        let _ = writeln!(
            std::io::stderr(),
            "redis acquire round trip (3 counters): {per:?}"
        );
        shared.cleanup().await;
    }
}
