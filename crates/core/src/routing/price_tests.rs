//! The price each target is routed with: the target's, else its model's, else the built-in
//! catalog's; and the router's price queries (`target_price`, `max_price`) that metering and
//! budget reservations use. No call is made, so the provider is a stub that refuses.

use super::*;
use crate::config::{RetryPolicy, Strategy, TargetConfig};
use async_trait::async_trait;
use std::time::Duration;
use switchboard_providers::{ProviderError, Timeouts, Upstream};
use switchboard_types::{MicroUsd, Protocol};

#[derive(Debug)]
struct Stub;

fn refused() -> ProviderError {
    ProviderError::Status {
        status: 400,
        message: "stub".into(),
        retry_after: None,
    }
}

#[async_trait]
impl Provider for Stub {
    fn protocol(&self) -> Protocol {
        Protocol::OpenAi
    }
    async fn chat(&self, _: &Upstream<'_>, _: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Err(refused())
    }
    async fn chat_stream(
        &self,
        _: &Upstream<'_>,
        _: &ChatRequest,
    ) -> Result<ChatEventStream, ProviderError> {
        Err(refused())
    }
    async fn embed(
        &self,
        _: &Upstream<'_>,
        _: &EmbedRequest,
    ) -> Result<EmbedResponse, ProviderError> {
        Err(refused())
    }
}

fn usd(text: &str) -> MicroUsd {
    MicroUsd::parse_dollars(text).unwrap()
}

fn price(input: &str, output: &str) -> Price {
    Price {
        input_per_mtok: usd(input),
        output_per_mtok: usd(output),
        ..Price::default()
    }
}

fn target(model: &str, price: Option<Price>) -> TargetConfig {
    TargetConfig {
        provider: "p".into(),
        model: model.into(),
        weight: 1,
        priority: 0,
        price,
    }
}

fn model(alias: &str, targets: Vec<TargetConfig>, fallbacks: &[&str]) -> ModelConfig {
    ModelConfig {
        alias: alias.into(),
        strategy: Strategy::Cheapest,
        targets,
        fallbacks: fallbacks.iter().map(|f| (*f).to_owned()).collect(),
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

fn build(models: Vec<ModelConfig>) -> Router {
    let models: BTreeMap<String, ModelConfig> =
        models.into_iter().map(|m| (m.alias.clone(), m)).collect();
    let stub: Arc<dyn Provider> = Arc::new(Stub);
    let providers = HashMap::from([("p".to_owned(), stub)]);
    Router::build(&models, &providers, &TargetStates::new(), &HashMap::new())
}

fn id(model: &str) -> TargetId {
    TargetId {
        provider: Arc::from("p"),
        model: Arc::from(model),
    }
}

#[test]
fn a_target_is_priced_by_itself_then_its_model_then_the_catalog() {
    let own = price("1", "2");
    let mut config = model(
        "m",
        vec![
            target("gpt-4o", Some(own)),
            target("gpt-4o-mini-2024-07-18", None),
            target("in-house-llm", None),
        ],
        &[],
    );
    let router = build(vec![config.clone()]);
    assert_eq!(router.target_price("m", &id("gpt-4o")), Some(own));
    let mini = router
        .target_price("m", &id("gpt-4o-mini-2024-07-18"))
        .unwrap();
    assert_eq!(mini.input_per_mtok, usd("0.15"));
    assert_eq!(mini.cached_input_per_mtok, Some(usd("0.075")));
    assert_eq!(router.target_price("m", &id("in-house-llm")), None);
    // `cheapest` ranks by input plus output, now known for the catalog model too.
    let costs: Vec<Option<i64>> = router.models["m"].targets.iter().map(|t| t.cost).collect();
    assert_eq!(costs, vec![Some(3_000_000), Some(750_000), None]);

    // A model-level price beats the catalog, not the target's own.
    let model_price = price("9", "9");
    config.price = Some(model_price);
    let router = build(vec![config]);
    assert_eq!(router.target_price("m", &id("gpt-4o")), Some(own));
    assert_eq!(
        router.target_price("m", &id("gpt-4o-mini-2024-07-18")),
        Some(model_price)
    );
    assert_eq!(
        router.target_price("m", &id("in-house-llm")),
        Some(model_price)
    );
}

#[test]
fn target_price_finds_a_target_served_by_a_fallback() {
    let primary = model("main", vec![target("gpt-4o", None)], &["backup"]);
    let mut backup = model("backup", vec![target("claude-haiku-4-5", None)], &[]);
    backup.price = Some(price("0.5", "1"));
    let router = build(vec![primary, backup]);
    let served = router
        .target_price("main", &id("claude-haiku-4-5"))
        .unwrap();
    assert_eq!(served, price("0.5", "1"));
    // The same target id under two aliases: the alias asked about wins.
    let a = model("a", vec![target("x", Some(price("1", "1")))], &[]);
    let b = model("b", vec![target("x", Some(price("2", "2")))], &[]);
    let router = build(vec![a, b]);
    assert_eq!(router.target_price("b", &id("x")), Some(price("2", "2")));
    assert_eq!(router.target_price("a", &id("x")), Some(price("1", "1")));
    assert_eq!(router.target_price("a", &id("nowhere")), None);
    // Served by a fallback: the fallback's price for that target, not another alias's.
    let c = model("c", vec![target("y", None)], &["b"]);
    let router = build(vec![
        model("a", vec![target("x", Some(price("1", "1")))], &[]),
        model("b", vec![target("x", Some(price("2", "2")))], &[]),
        c,
    ]);
    assert_eq!(router.target_price("c", &id("x")), Some(price("2", "2")));
}

#[test]
fn max_price_covers_the_alias_and_its_fallbacks() {
    let primary = model(
        "main",
        vec![target("gpt-4o-mini", None), target("unpriced", None)],
        &["backup"],
    );
    // Anthropic: cache writes above input.
    let backup = model("backup", vec![target("claude-sonnet-4-5", None)], &[]);
    let lonely = model("lonely", vec![target("unpriced", None)], &[]);
    let router = build(vec![primary, backup, lonely]);
    let max = router.max_price("main").unwrap();
    assert_eq!(max.input_per_mtok, usd("3"));
    assert_eq!(max.output_per_mtok, usd("15"));
    assert_eq!(max.cached_input_per_mtok, Some(usd("0.30")));
    assert_eq!(max.cache_write_per_mtok, Some(usd("3.75")));
    assert_eq!(max.reasoning_per_mtok, Some(usd("15")));
    // Only its own targets for the fallback itself (fallbacks of fallbacks are not followed).
    assert_eq!(router.max_price("backup").unwrap().input_per_mtok, usd("3"));
    assert_eq!(router.max_price("lonely"), None);
    assert_eq!(router.max_price("ghost"), None);
}
