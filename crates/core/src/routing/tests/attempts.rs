//! The attempt log routing returns (for the call log, metrics and traces): one entry per
//! upstream attempt across retries and fallbacks, with status, latency and error code; and the
//! per-attempt `traceparent` of a traced request.

use super::*;
use crate::trace::TraceIds;

#[tokio::test(start_paused = true)]
async fn every_attempt_is_logged_across_retries_and_fallbacks() {
    let (a, b) = (Fake::slow(Duration::from_millis(40)), Fake::new());
    a.fail(&status(502), 10);
    let mut primary = with_retries(model("m", Strategy::Weighted, vec![target("a", "x")]), 1);
    primary.fallbacks = vec!["f".into()];
    let (router, _) = build(
        vec![
            primary,
            model("f", Strategy::Weighted, vec![target("b", "y")]),
        ],
        &[("a", &a), ("b", &b)],
    );
    let started = Instant::now();
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    let log: Vec<_> = routed
        .log
        .iter()
        .map(|a| (a.target.to_string(), a.status, a.error_code, a.latency))
        .collect();
    let slow = Duration::from_millis(40);
    assert_eq!(
        log,
        vec![
            ("a/x".to_owned(), 502, Some("upstream_error"), slow),
            ("a/x".to_owned(), 502, Some("upstream_error"), slow),
            ("b/y".to_owned(), 200, None, Duration::ZERO),
        ]
    );
    assert!(routed.log.windows(2).all(|w| w[0].started <= w[1].started));
    assert!(routed.log[0].started >= started);
    assert!(routed.log.iter().all(|a| a.span_id == 0), "not traced");
}

#[tokio::test(start_paused = true)]
async fn a_failure_keeps_its_attempts() {
    let a = Fake::new();
    a.push(Reply::Err(ProviderError::Timeout(TimeoutKind::FirstByte)));
    a.push(Reply::Err(status(400)));
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            3,
        )],
        &[("a", &a)],
    );
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    let log: Vec<_> = failure
        .log
        .iter()
        .map(|a| (a.status, a.error_code))
        .collect();
    assert_eq!(
        log,
        vec![
            (0, Some("upstream_timeout")),
            (400, Some("upstream_rejected_request"))
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_of_a_traced_request_sends_its_own_span_id() {
    let a = Fake::new();
    a.fail(&status(500), 1);
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            1,
        )],
        &[("a", &a)],
    );
    let trace = TraceIds::start(
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        1.0,
    );
    let call = CallInfo {
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        trace: Some(trace),
        ..CALL
    };
    let routed = router.chat(&req("m"), &call).await.unwrap();
    let expected: Vec<Option<String>> = routed
        .log
        .iter()
        .map(|attempt| {
            assert_ne!(attempt.span_id, 0);
            Some(format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01",
                attempt.span_id
            ))
        })
        .collect();
    assert_eq!(a.traceparents(), expected);
    assert_ne!(routed.log[0].span_id, routed.log[1].span_id);
}

#[tokio::test(start_paused = true)]
async fn without_tracing_the_callers_traceparent_passes_unchanged() {
    let a = Fake::new();
    let (router, _) = build(
        vec![model("m", Strategy::Weighted, vec![target("a", "x")])],
        &[("a", &a)],
    );
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let call = CallInfo {
        traceparent: Some(parent),
        ..CALL
    };
    router.chat(&req("m"), &call).await.unwrap();
    assert_eq!(a.traceparents(), vec![Some(parent.to_owned())]);
}
