//! Redis-only behaviour: keys carry TTLs, an unreachable or silent Redis fails within the
//! timeout, a dropped connection recovers; and a latency measurement of both backends.

use super::*;
use std::time::Instant;

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
    let lease = concurrent("x", 1, 1_000);
    assert!(b
        .settle("r", &[settle(&lease, SettleKind::Release { bucket: 1 })])
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

/// Acquires that queue up while a batch is in Redis go out together (one script call for many
/// requests), each still counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acquires_that_queue_up_share_a_script_call() {
    let Some(shared) = Shared::redis() else {
        return;
    };
    let Shared::Redis { url, prefix } = &shared else {
        unreachable!()
    };
    let b = Arc::new(
        RedisLimits::connect(url, TIMEOUT)
            .await
            .unwrap()
            .with_prefix(prefix.clone()),
    );
    let k = [requests("batched", 1_000)];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (b, k) = (b.clone(), k.clone());
        tasks.spawn(async move {
            let id = format!("r{i}");
            admitted(b.acquire(&k, &demand(&id, 0, 0)).await.unwrap())[0].used
        });
    }
    let mut used = tasks.join_all().await;
    used.sort_unstable();
    assert_eq!(used, (1..=200).collect::<Vec<_>>());
    let calls = b.acquire_calls();
    assert!(
        (1..100).contains(&calls),
        "{calls} script calls for 200 acquires"
    );
    shared.cleanup().await;
}

/// A caller that gives up while its batch is in Redis (here: Redis is busy with a slow script
/// for 300 ms and the caller waits 50 ms) is admitted there, and the batch task gives its lease,
/// tokens and reservation back at once rather than leaving them until they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_acquire_is_given_back() {
    let Some(shared) = Shared::redis() else {
        return;
    };
    let Shared::Redis { url, .. } = &shared else {
        unreachable!()
    };
    let b = shared.instance().await;
    let k = [
        concurrent("ab-c", 5, 600_000),
        tokens("ab-t", 1_000),
        budget("ab-b", 1_000, 0),
    ];
    // Connected and the scripts loaded before Redis is made busy.
    b.peek(&k).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let busy = tokio::spawn(async move {
        let script = "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
                      repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start > 300000 \
                      return 1";
        let _: i64 = redis::cmd("EVAL")
            .arg(script)
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        b.acquire(&k, &demand("r", 40, 300)),
    )
    .await;
    assert!(gave_up.is_err(), "Redis answered during the slow script");
    busy.await.unwrap();
    let mut left = Vec::new();
    for _ in 0..50 {
        left = used(&*b, &k).await;
        if left == vec![0, 0, 0] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, vec![0, 0, 0]);
    shared.cleanup().await;
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

/// Redis forgot the scripts (a restart, `SCRIPT FLUSH`): each call loads its script again.
#[tokio::test]
async fn flushed_scripts_are_loaded_again() {
    let Some(shared) = Shared::redis() else {
        return;
    };
    let Shared::Redis { url, .. } = &shared else {
        unreachable!()
    };
    let b = shared.instance().await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut flush = async || {
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
    };
    let k = [requests("sf", 10), concurrent("sf", 5, 30_000)];
    for round in 1..=2 {
        flush().await;
        let states = admitted(b.acquire(&k, &demand("r", 0, 0)).await.unwrap());
        assert_eq!((states[0].used, states[1].used), (round, 1));
        flush().await;
        let bucket = states[1].window;
        b.settle("r", &[settle(&k[1], SettleKind::Release { bucket })])
            .await
            .unwrap();
        flush().await;
        let states = b.peek(&k).await.unwrap();
        assert_eq!((states[0].used, states[1].used), (round, 0));
    }
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
            expires_at_ms: 0,
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
    // Until the lease bucket's leases expire: at least the 30 s lease, at most a bucket more.
    let l = pttl("l:k").await;
    assert!(l > 20_000 && l < 30_000 + 30_000 / 8, "{l}");
    let bg = pttl("b:k2").await;
    assert!(bg > (HOUR - 60_000) as i64 && bg <= HOUR as i64, "{bg}");
    assert_eq!(pttl("b:k").await, -1);
    shared.cleanup().await;
}

/// Latency on this machine: `cargo test --release -p switchboard-store --test store
/// limits::connection::latency -- --ignored --nocapture` (with the Redis variable set for Redis numbers).
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
