//! Router tests of circuit breakers: opening after consecutive failures, skipping, the single
//! half-open probe (also when it is a stream), and the 503 when every circuit is open.

use super::fake::{self, Fake, Reply};
use super::{build, circuit_of, model, req, status, target, CALL};
use crate::config::{CircuitPolicy, Strategy};
use crate::routing::CircuitState;
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn circuit_opens_after_failures_and_skips_target() {
    let (a, b) = (Fake::new(), Fake::new());
    a.fail(&status(500), 10);
    let mut primary = model(
        "m",
        Strategy::Priority,
        vec![target("a", "x"), {
            let mut t = target("b", "y");
            t.priority = 1;
            t
        }],
    );
    primary.circuit = Some(CircuitPolicy {
        failures: 2,
        cooldown: Duration::from_secs(30),
    });
    let (router, states) = build(vec![primary], &[("a", &a), ("b", &b)]);
    for _ in 0..2 {
        assert!(router.chat(&req("m"), &CALL).await.is_err());
    }
    assert!(matches!(
        circuit_of(&states, "a"),
        CircuitState::Open { .. }
    ));
    for _ in 0..3 {
        let routed = router.chat(&req("m"), &CALL).await.unwrap();
        assert_eq!(&*routed.target.provider, "b");
        assert_eq!(routed.attempts, 1);
    }
    assert_eq!(a.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn success_resets_the_failure_count() {
    let a = Fake::new();
    let mut config = model("m", Strategy::Weighted, vec![target("a", "x")]);
    config.circuit = Some(CircuitPolicy {
        failures: 2,
        cooldown: Duration::from_secs(30),
    });
    let (router, states) = build(vec![config], &[("a", &a)]);
    for _ in 0..3 {
        a.push(Reply::Err(status(500)));
        a.push(Reply::Ok);
        assert!(router.chat(&req("m"), &CALL).await.is_err());
        assert!(router.chat(&req("m"), &CALL).await.is_ok());
    }
    assert_eq!(circuit_of(&states, "a"), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_one_probe_through() {
    let (a, b) = (Fake::new(), Fake::new());
    let mut second = target("b", "y");
    second.priority = 1;
    let mut config = model("m", Strategy::Priority, vec![target("a", "x"), second]);
    config.circuit = Some(CircuitPolicy {
        failures: 1,
        cooldown: Duration::from_secs(30),
    });
    let (router, states) = build(vec![config], &[("a", &a), ("b", &b)]);
    a.push(Reply::Err(status(500)));
    a.push(Reply::After(Duration::from_millis(50), Box::new(Reply::Ok)));
    assert!(router.chat(&req("m"), &CALL).await.is_err());
    assert!(matches!(
        circuit_of(&states, "a"),
        CircuitState::Open { .. }
    ));

    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(circuit_of(&states, "a"), CircuitState::HalfOpen);
    // The probe is slow (50 ms); a request arriving meanwhile skips `a`.
    let request = req("m");
    let (probe, other) = tokio::join!(router.chat(&request, &CALL), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        router.chat(&request, &CALL).await
    });
    assert_eq!(&*probe.unwrap().target.provider, "a");
    assert_eq!(&*other.unwrap().target.provider, "b");
    assert_eq!(circuit_of(&states, "a"), CircuitState::Closed);
    assert_eq!(a.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_probe_reopens_the_circuit() {
    let a = Fake::new();
    let mut config = model("m", Strategy::Weighted, vec![target("a", "x")]);
    config.circuit = Some(CircuitPolicy {
        failures: 1,
        cooldown: Duration::from_secs(30),
    });
    let (router, states) = build(vec![config], &[("a", &a)]);
    a.fail(&status(500), 2);
    assert!(router.chat(&req("m"), &CALL).await.is_err());
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        router
            .chat(&req("m"), &CALL)
            .await
            .unwrap_err()
            .error
            .status(),
        502
    );
    let CircuitState::Open { until } = circuit_of(&states, "a") else {
        panic!("circuit should be open again");
    };
    assert_eq!(until - Instant::now(), Duration::from_secs(30));
    assert_eq!(a.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn all_circuits_open_is_503_with_retry_after() {
    let (a, b) = (Fake::new(), Fake::new());
    a.fail(&status(500), 1);
    b.fail(&status(500), 1);
    let policy = Some(CircuitPolicy {
        failures: 1,
        cooldown: Duration::from_secs(30),
    });
    let mut primary = model("m", Strategy::Weighted, vec![target("a", "x")]);
    primary.circuit = policy;
    primary.fallbacks = vec!["f".into()];
    let mut fallback = model("f", Strategy::Weighted, vec![target("b", "y")]);
    fallback.circuit = Some(CircuitPolicy {
        failures: 1,
        cooldown: Duration::from_secs(60),
    });
    let (router, _) = build(vec![primary, fallback], &[("a", &a), ("b", &b)]);
    assert_eq!(router.chat(&req("m"), &CALL).await.unwrap_err().attempts, 2);

    tokio::time::advance(Duration::from_secs(5)).await;
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert_eq!(failure.error.status(), 503);
    assert_eq!(failure.attempts, 0);
    // The soonest cooldown end: `a` reopens 25 s from now.
    assert_eq!(failure.error.retry_after(), Some(Duration::from_secs(25)));
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn stream_end_settles_the_circuit() {
    let a = Fake::new();
    let mut config = model("m", Strategy::Weighted, vec![target("a", "x")]);
    config.circuit = Some(CircuitPolicy {
        failures: 1,
        cooldown: Duration::from_secs(30),
    });
    let (router, states) = build(vec![config], &[("a", &a)]);
    a.push(Reply::Err(status(500)));
    assert!(router.chat(&req("m"), &CALL).await.is_err());
    tokio::time::advance(Duration::from_secs(30)).await;

    // The probe is a stream: the circuit waits for its end, not for its first event.
    let routed = router.chat_stream(&req("m"), &CALL).await.unwrap();
    assert_eq!(circuit_of(&states, "a"), CircuitState::HalfOpen);
    assert_eq!(
        router
            .chat(&req("m"), &CALL)
            .await
            .unwrap_err()
            .error
            .status(),
        503
    );
    assert_eq!(routed.value.count().await, fake::events("x").len());
    assert_eq!(circuit_of(&states, "a"), CircuitState::Closed);
}
