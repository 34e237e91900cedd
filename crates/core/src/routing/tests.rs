//! Router tests against scripted fake providers (`tests/fake.rs`), on tokio's paused clock:
//! backoffs and cooldowns pass instantly and deterministically, and elapsed time is asserted
//! on `tokio::time::Instant`, never on the wall clock.

mod attempts;
mod circuits;
mod fake;
mod units;

use super::*;
use crate::config::{Price, RetryPolicy, Strategy, TargetConfig};
use fake::{Fake, Reply};
use futures::StreamExt;
use std::time::Duration;
use switchboard_protocols::ConvertError;
use switchboard_providers::{ProviderError, TimeoutKind, Timeouts};
use switchboard_types::{ChatEvent, EmbedInput, MicroUsd};
use tokio::time::Instant;

const CALL: CallInfo<'static> = CallInfo {
    request_id: "req-1",
    traceparent: None,
    trace: None,
    gate: None,
};

fn target(provider: &str, model: &str) -> TargetConfig {
    TargetConfig {
        provider: provider.into(),
        model: model.into(),
        weight: 1,
        priority: 0,
        price: None,
    }
}

fn model(alias: &str, strategy: Strategy, targets: Vec<TargetConfig>) -> ModelConfig {
    ModelConfig {
        alias: alias.into(),
        strategy,
        targets,
        fallbacks: Vec::new(),
        retry: RetryPolicy {
            attempts: 0,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        },
        timeouts: Timeouts::default(),
        price: None,
        context_window: None,
        context_policy: Default::default(),
        default_max_tokens: 4096,
        requires_approval: false,
        circuit: None,
    }
}

fn with_retries(mut config: ModelConfig, attempts: u32) -> ModelConfig {
    config.retry.attempts = attempts;
    config
}

fn build(models: Vec<ModelConfig>, fakes: &[(&str, &Arc<Fake>)]) -> (Router, Arc<TargetStates>) {
    let models: BTreeMap<String, ModelConfig> =
        models.into_iter().map(|m| (m.alias.clone(), m)).collect();
    let providers: HashMap<String, Arc<dyn Provider>> = fakes
        .iter()
        .map(|(name, fake)| {
            let provider: Arc<dyn Provider> = Arc::clone(*fake) as Arc<dyn Provider>;
            ((*name).to_owned(), provider)
        })
        .collect();
    let states = TargetStates::new();
    let router = Router::build(&models, &providers, &states, &HashMap::new());
    (router, states)
}

fn req(alias: &str) -> ChatRequest {
    ChatRequest {
        model: alias.into(),
        ..ChatRequest::default()
    }
}

fn status(code: u16) -> ProviderError {
    ProviderError::Status {
        status: code,
        message: "upstream says no".into(),
        retry_after: None,
    }
}

fn price(input: i64, output: i64) -> Price {
    Price {
        input_per_mtok: MicroUsd(input),
        output_per_mtok: MicroUsd(output),
        ..Price::default()
    }
}

fn circuit_of(states: &TargetStates, provider: &str) -> CircuitState {
    states
        .snapshot()
        .into_iter()
        .find(|(id, _, _)| &*id.provider == provider)
        .map(|(_, state, _)| state)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn unknown_alias_is_404() {
    let a = Fake::new();
    let (router, _) = build(
        vec![model("m", Strategy::Weighted, vec![target("a", "x")])],
        &[("a", &a)],
    );
    let failure = router.chat(&req("nope"), &CALL).await.unwrap_err();
    assert!(matches!(failure.error, GatewayError::UnknownModel(ref alias) if alias == "nope"));
    assert_eq!(failure.attempts, 0);
    assert_eq!(a.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn passes_upstream_model_and_reports_target() {
    let a = Fake::new();
    let (router, _) = build(
        vec![model("m", Strategy::Weighted, vec![target("a", "up-1")])],
        &[("a", &a)],
    );
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(routed.attempts, 1);
    assert_eq!(routed.target.to_string(), "a/up-1");
    assert_eq!(routed.value.model, "up-1");
    assert_eq!(a.models(), vec!["up-1"]);
}

#[tokio::test(start_paused = true)]
async fn weighted_spreads_by_weight() {
    let (a, b) = (Fake::new(), Fake::new());
    let mut heavy = target("a", "x");
    heavy.weight = 3;
    let (router, _) = build(
        vec![model(
            "m",
            Strategy::Weighted,
            vec![heavy, target("b", "y")],
        )],
        &[("a", &a), ("b", &b)],
    );
    for _ in 0..4000 {
        router.chat(&req("m"), &CALL).await.unwrap();
    }
    // Expected share 0.75; the standard deviation over 4000 draws is about 0.007.
    let share = f64::from(a.calls()) / 4000.0;
    assert!(
        (0.70..0.80).contains(&share),
        "share of the weight-3 target: {share}"
    );
    assert_eq!(a.calls() + b.calls(), 4000);
}

#[tokio::test(start_paused = true)]
async fn priority_picks_lowest_then_fails_over() {
    let (a, b) = (Fake::new(), Fake::new());
    let mut first = target("a", "x");
    first.priority = 1;
    let mut second = target("b", "y");
    second.priority = 0;
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Priority, vec![first, second]),
            1,
        )],
        &[("a", &a), ("b", &b)],
    );
    for _ in 0..5 {
        let routed = router.chat(&req("m"), &CALL).await.unwrap();
        assert_eq!(&*routed.target.provider, "b");
    }
    assert_eq!(a.calls(), 0);
    b.push(Reply::Err(status(503)));
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(&*routed.target.provider, "a");
    assert_eq!(routed.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn retries_are_counted_then_502() {
    let a = Fake::new();
    a.fail(&status(500), 10);
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            2,
        )],
        &[("a", &a)],
    );
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert_eq!(a.calls(), 3);
    assert_eq!(failure.attempts, 3);
    assert_eq!(failure.error.status(), 502);
    assert!(matches!(
        failure.error,
        GatewayError::AllTargetsFailed { attempts: 3, .. }
    ));
    assert_eq!(failure.last_target.unwrap().to_string(), "a/x");
}

#[tokio::test(start_paused = true)]
async fn retry_after_a_failure_succeeds() {
    let a = Fake::new();
    a.fail(&ProviderError::Connect("refused".into()), 2);
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            2,
        )],
        &[("a", &a)],
    );
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(routed.attempts, 3);
}

#[tokio::test(start_paused = true)]
async fn client_error_is_not_retried_nor_falls_back() {
    let (a, b, c) = (Fake::new(), Fake::new(), Fake::new());
    a.push(Reply::Err(status(400)));
    let mut second = target("b", "y");
    second.priority = 1;
    let mut primary = with_retries(
        model("m", Strategy::Priority, vec![target("a", "x"), second]),
        3,
    );
    primary.fallbacks = vec!["f".into()];
    let (router, _) = build(
        vec![
            primary,
            model("f", Strategy::Weighted, vec![target("c", "z")]),
        ],
        &[("a", &a), ("b", &b), ("c", &c)],
    );
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert!(matches!(
        failure.error,
        GatewayError::UpstreamRejected { status: 400, .. }
    ));
    assert_eq!(failure.error.status(), 400);
    assert_eq!(failure.attempts, 1);
    assert_eq!((a.calls(), b.calls(), c.calls()), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn unsupported_is_400_and_decode_is_502_without_retry() {
    let a = Fake::new();
    a.push(Reply::Err(ProviderError::Unsupported {
        param: Some("logprobs".into()),
        message: "logprobs are not supported".into(),
    }));
    a.push(Reply::Err(ProviderError::Decode("bad json".into())));
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            3,
        )],
        &[("a", &a)],
    );
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert!(matches!(
        failure.error,
        GatewayError::BadRequest(ConvertError::Unsupported { ref param, .. }) if param == "logprobs"
    ));
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert_eq!(failure.error.status(), 502);
    assert_eq!(failure.attempts, 1);
    assert_eq!(a.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let a = Fake::new();
    a.push(Reply::Err(ProviderError::Status {
        status: 429,
        message: "slow down".into(),
        retry_after: Some(Duration::from_secs(3)),
    }));
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            1,
        )],
        &[("a", &a)],
    );
    let started = Instant::now();
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(routed.attempts, 2);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Jitter never exceeds the backoff ceiling (100 ms) on top of the honoured wait.
    assert!(started.elapsed() <= Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_by_max_backoff() {
    let a = Fake::new();
    a.push(Reply::Err(ProviderError::Status {
        status: 429,
        message: "slow down".into(),
        retry_after: Some(Duration::from_secs(3600)),
    }));
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            1,
        )],
        &[("a", &a)],
    );
    let started = Instant::now();
    router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn fallback_after_retries_with_its_own_model() {
    let (a, b) = (Fake::new(), Fake::new());
    a.fail(&status(502), 10);
    let mut primary = with_retries(model("m", Strategy::Weighted, vec![target("a", "x")]), 1);
    primary.fallbacks = vec!["f".into()];
    let (router, _) = build(
        vec![
            primary,
            model("f", Strategy::Weighted, vec![target("b", "fallback-model")]),
        ],
        &[("a", &a), ("b", &b)],
    );
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(a.calls(), 2);
    assert_eq!(routed.attempts, 3);
    assert_eq!(routed.target.to_string(), "b/fallback-model");
    assert_eq!(b.models(), vec!["fallback-model"]);
}

#[tokio::test(start_paused = true)]
async fn fallbacks_of_fallbacks_are_not_followed() {
    let (a, b, c) = (Fake::new(), Fake::new(), Fake::new());
    a.fail(&status(500), 1);
    b.fail(&status(500), 1);
    let mut primary = model("m", Strategy::Weighted, vec![target("a", "x")]);
    primary.fallbacks = vec!["f".into()];
    let mut fallback = model("f", Strategy::Weighted, vec![target("b", "y")]);
    fallback.fallbacks = vec!["g".into()];
    let (router, _) = build(
        vec![
            primary,
            fallback,
            model("g", Strategy::Weighted, vec![target("c", "z")]),
        ],
        &[("a", &a), ("b", &b), ("c", &c)],
    );
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert_eq!(failure.attempts, 2);
    assert_eq!(c.calls(), 0);
    assert_eq!(failure.last_target.unwrap().to_string(), "b/y");
}

#[tokio::test(start_paused = true)]
async fn upstream_401_moves_to_the_next_target() {
    let (a, b) = (Fake::new(), Fake::new());
    a.fail(&status(401), 10);
    let mut second = target("b", "y");
    second.priority = 1;
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Priority, vec![target("a", "x"), second]),
            3,
        )],
        &[("a", &a), ("b", &b)],
    );
    let started = Instant::now();
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(&*routed.target.provider, "b");
    assert_eq!(routed.attempts, 2);
    // No backoff after a configuration error: waiting cannot fix it.
    assert_eq!(started.elapsed(), Duration::ZERO);

    // A lone misconfigured target is not asked twice in one request: 502, not 400.
    b.fail(&status(403), 10);
    a.fail(&status(404), 10);
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert_eq!(failure.error.status(), 502);
    assert_eq!(failure.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn all_timeouts_is_504() {
    let (a, b) = (Fake::new(), Fake::new());
    a.fail(&ProviderError::Timeout(TimeoutKind::FirstByte), 10);
    b.fail(&ProviderError::Timeout(TimeoutKind::FirstByte), 10);
    let (router, _) = build(
        vec![with_retries(
            model(
                "m",
                Strategy::Weighted,
                vec![target("a", "x"), target("b", "y")],
            ),
            2,
        )],
        &[("a", &a), ("b", &b)],
    );
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert!(matches!(
        failure.error,
        GatewayError::UpstreamTimeout(TimeoutKind::FirstByte)
    ));
    assert_eq!(failure.error.status(), 504);
    assert_eq!(failure.attempts, 3);
    // A retry goes to the target not tried yet.
    assert!(a.calls() >= 1 && b.calls() >= 1);
}

#[tokio::test(start_paused = true)]
async fn timeouts_mixed_with_other_failures_are_502() {
    let a = Fake::new();
    a.push(Reply::Err(ProviderError::Timeout(TimeoutKind::Total)));
    a.push(Reply::Err(status(500)));
    let (router, _) = build(
        vec![with_retries(
            model("m", Strategy::Weighted, vec![target("a", "x")]),
            1,
        )],
        &[("a", &a)],
    );
    let failure = router.chat(&req("m"), &CALL).await.unwrap_err();
    assert_eq!(failure.error.status(), 502);
    assert_eq!(failure.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn least_busy_picks_the_idle_target() {
    let (a, b) = (Fake::new(), Fake::new());
    let (router, states) = build(
        vec![model(
            "m",
            Strategy::LeastBusy,
            vec![target("a", "x"), target("b", "y")],
        )],
        &[("a", &a), ("b", &b)],
    );
    let held = router.chat_stream(&req("m"), &CALL).await.unwrap();
    for _ in 0..5 {
        let routed = router.chat(&req("m"), &CALL).await.unwrap();
        assert_ne!(routed.target, held.target);
    }
    let busy: Vec<u32> = states.snapshot().iter().map(|(_, _, n)| *n).collect();
    assert_eq!(busy.iter().sum::<u32>(), 1);
    // Dropping the stream unread releases the in-flight count.
    drop(held);
    assert!(states.snapshot().iter().all(|(_, _, n)| *n == 0));
}

#[tokio::test(start_paused = true)]
async fn least_latency_prefers_the_faster_target() {
    let (slow, fast) = (
        Fake::slow(Duration::from_millis(400)),
        Fake::slow(Duration::from_millis(20)),
    );
    let (router, _) = build(
        vec![model(
            "m",
            Strategy::LeastLatency,
            vec![target("slow", "x"), target("fast", "y")],
        )],
        &[("slow", &slow), ("fast", &fast)],
    );
    // Untried targets go first, so both get measured.
    for _ in 0..2 {
        router.chat(&req("m"), &CALL).await.unwrap();
    }
    assert_eq!((slow.calls(), fast.calls()), (1, 1));
    for _ in 0..10 {
        let routed = router.chat(&req("m"), &CALL).await.unwrap();
        assert_eq!(&*routed.target.provider, "fast");
    }
}

#[tokio::test(start_paused = true)]
async fn least_latency_measures_a_stale_target_again() {
    let (slow, fast) = (
        Fake::slow(Duration::from_millis(400)),
        Fake::slow(Duration::from_millis(20)),
    );
    let (router, _) = build(
        vec![with_retries(
            model(
                "m",
                Strategy::LeastLatency,
                vec![target("slow", "x"), target("fast", "y")],
            ),
            1,
        )],
        &[("slow", &slow), ("fast", &fast)],
    );
    for _ in 0..2 {
        router.chat(&req("m"), &CALL).await.unwrap();
    }
    // One failure makes `fast` look slow (it weighs like a first-byte timeout)...
    fast.push(Reply::Err(status(500)));
    let routed = router.chat(&req("m"), &CALL).await.unwrap();
    assert_eq!(&*routed.target.provider, "slow");
    let before = fast.calls();
    for _ in 0..3 {
        router.chat(&req("m"), &CALL).await.unwrap();
    }
    assert_eq!(fast.calls(), before);
    // ...until the averages go stale: then both are measured afresh, and `fast` wins again.
    tokio::time::advance(Duration::from_secs(11)).await;
    let slow_before = slow.calls();
    for _ in 0..5 {
        router.chat(&req("m"), &CALL).await.unwrap();
    }
    assert_eq!((fast.calls(), slow.calls()), (before + 4, slow_before + 1));
}

#[tokio::test(start_paused = true)]
async fn cheapest_picks_the_lower_price() {
    let (a, b, c) = (Fake::new(), Fake::new(), Fake::new());
    let mut dear = target("a", "x");
    dear.price = Some(price(5_000_000, 15_000_000));
    let mut cheap = target("b", "y");
    cheap.price = Some(price(150_000, 600_000));
    // No price of its own: the model's price applies.
    let unpriced = target("c", "z");
    let mut config = model("m", Strategy::Cheapest, vec![dear, cheap, unpriced]);
    config.price = Some(price(2_500_000, 10_000_000));
    let (router, _) = build(vec![config], &[("a", &a), ("b", &b), ("c", &c)]);
    for _ in 0..5 {
        let routed = router.chat(&req("m"), &CALL).await.unwrap();
        assert_eq!(&*routed.target.provider, "b");
    }
}

#[tokio::test(start_paused = true)]
async fn stream_with_retryable_first_error_moves_on() {
    let (a, b) = (Fake::new(), Fake::new());
    a.push(Reply::StreamErr(ProviderError::InBand {
        kind: "overloaded_error".into(),
        message: "overloaded".into(),
        retryable: true,
    }));
    let mut second = target("b", "y");
    second.priority = 1;
    let (router, states) = build(
        vec![with_retries(
            model("m", Strategy::Priority, vec![target("a", "x"), second]),
            1,
        )],
        &[("a", &a), ("b", &b)],
    );
    let routed = router.chat_stream(&req("m"), &CALL).await.unwrap();
    assert_eq!(&*routed.target.provider, "b");
    assert_eq!(routed.attempts, 2);
    let events: Vec<ChatEvent> = routed.value.map(|item| item.unwrap()).collect().await;
    assert_eq!(events, fake::events("y"));
    assert!(states.snapshot().iter().all(|(_, _, n)| *n == 0));
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_routed_too() {
    let (a, b) = (Fake::new(), Fake::new());
    a.fail(&status(529), 1);
    let (router, _) = build(
        vec![with_retries(
            model(
                "e",
                Strategy::Priority,
                vec![target("a", "x"), {
                    let mut t = target("b", "y");
                    t.priority = 1;
                    t
                }],
            ),
            1,
        )],
        &[("a", &a), ("b", &b)],
    );
    let embed = EmbedRequest {
        model: "e".into(),
        input: EmbedInput::Texts(vec!["hello".into()]),
        dimensions: None,
        encoding_format: None,
        user: None,
        extra: Default::default(),
    };
    let routed = router.embed(&embed, &CALL).await.unwrap();
    assert_eq!(routed.value.model, "y");
    assert_eq!(routed.attempts, 2);
}

#[test]
fn router_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (router, _) = build(Vec::new(), &[]);
    let request = req("m");
    assert_send(&router.chat(&request, &CALL));
    assert_send(&router.chat_stream(&request, &CALL));
    assert!(router.aliases().next().is_none());
    assert!(router.model("m").is_none());
}
