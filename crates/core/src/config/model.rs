//! The validated configuration: what the rest of the gateway reads. Produced only by
//! `config::load` (parse strictly, then validate), so every value here has been checked:
//! aliases named in `fallbacks` exist, targets name configured providers, weights are positive,
//! and so on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_providers::{ProviderSettings, Timeouts};
use switchboard_types::MicroUsd;

/// The whole validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Storage URL (`sqlite://...` or `postgres://...`). Used by storage (later issues).
    pub database: Option<String>,
    /// Redis URL for shared state across instances (later issues).
    pub redis: Option<String>,
    /// Bootstrap key with full rights; also a valid client key. `None` only in tests.
    pub admin_key: Option<Secret>,
    pub limits: Limits,
    pub access: AccessConfig,
    /// Trace export; `None` when `telemetry.otlp` is not set (nothing is traced).
    pub telemetry: Option<TelemetryConfig>,
    /// Tenants from the file (config as code), applied to storage.
    pub orgs: BTreeMap<String, OrgSpec>,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub models: BTreeMap<String, ModelConfig>,
    /// `rate_limits:` from the file, then the stored ones (admin API, `apply`).
    pub rate_limits: Vec<crate::limits::RateLimitRule>,
    /// `budgets:` from the file, then the stored ones.
    pub budgets: Vec<crate::limits::BudgetRule>,
    /// `alerts:` rules and where they are delivered.
    pub alerts: super::alerts::AlertsConfig,
    /// `logging:`: call log bodies and retention.
    pub logging: super::logging::Logging,
    /// `prompts:` from the file, then the stored ones.
    pub prompts: BTreeMap<String, super::prompts::PromptConfig>,
    /// `apis:` from the file, then the stored ones.
    pub apis: BTreeMap<String, super::prompts::ApiConfig>,
}

pub use switchboard_types::Secret;

/// An organisation as config as code describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OrgSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub teams: BTreeMap<String, TeamSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TeamSpec {
    pub apps: BTreeMap<String, AppSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apis: Option<Vec<String>>,
}

/// `telemetry:` with an `otlp` exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    pub service_name: String,
    /// 0.0 to 1.0.
    pub sample_ratio: f64,
    /// The full URL spans are posted to (`<endpoint>/v1/traces`).
    pub traces_url: String,
    /// Header values may hold credentials: kept as secrets.
    pub headers: BTreeMap<String, Secret>,
    pub timeout: Duration,
    pub batch_delay: Duration,
    pub queue_size: usize,
}

/// `access:`: how keys and people are authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessConfig {
    pub key_cache_ttl: Duration,
    pub rotation_grace: Duration,
    pub approval_webhook: Option<String>,
    pub oidc: Option<crate::auth::jwt::OidcSettings>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            key_cache_ttl: crate::auth::cache::DEFAULT_TTL,
            rotation_grace: Duration::from_secs(24 * 3600),
            approval_webhook: None,
            oidc: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body. Default 10 MiB.
    pub max_body_bytes: usize,
    /// What limit checks do when Redis cannot answer.
    pub on_redis_error: RedisFailure,
    /// How long a limit check waits for Redis. Default 250 ms.
    pub redis_timeout: Duration,
    /// Where budget alerts are POSTed.
    pub alert_webhook: Option<String>,
}

/// What limit checks do when the shared counters (Redis) cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisFailure {
    /// Fall back to this instance's own in-memory counters (limits then hold per instance).
    #[default]
    Local,
    /// Refuse the request with 503 `limits_unavailable`.
    Reject,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 10 * 1024 * 1024,
            on_redis_error: RedisFailure::Local,
            redis_timeout: Duration::from_millis(250),
            alert_webhook: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProviderConfig {
    pub name: String,
    pub settings: ProviderSettings,
    /// Circuit breaker defaults for targets of this provider (a model's own `circuit` wins).
    pub circuit: Option<CircuitPolicy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Weighted,
    Priority,
    LeastLatency,
    LeastBusy,
    Cheapest,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TargetConfig {
    /// A key of `Config::providers`.
    pub provider: String,
    /// The upstream model (for Azure: the deployment name).
    pub model: String,
    /// Share of traffic under `weighted`. Default 1; always > 0.
    pub weight: u32,
    /// Order under `priority`: lower first. Default: the position in the list.
    pub priority: u32,
    /// Price of this target, overriding the model's price (for `cheapest`).
    pub price: Option<Price>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra tries after the first, on retryable errors only.
    pub attempts: u32,
    /// Base of the exponential backoff; full jitter is applied.
    pub backoff: Duration,
    /// Cap of one backoff wait (and of an honoured `retry-after`).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 0,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_millis(10_000),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitPolicy {
    /// Consecutive failures that open the circuit. Default 5.
    pub failures: u32,
    /// How long an open circuit stays open before one probe is let through. Default 30 s.
    pub cooldown: Duration,
}

impl Default for CircuitPolicy {
    fn default() -> Self {
        CircuitPolicy {
            failures: 5,
            cooldown: Duration::from_millis(30_000),
        }
    }
}

/// Prices in micro-dollars per million tokens (config: dollars per million tokens). An absent
/// optional price bills those tokens at the base price: cache reads and cache writes at
/// `input_per_mtok`, reasoning at `output_per_mtok`. `crate::pricing::cost` applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Price {
    /// Prompt tokens neither read from nor written to a cache.
    pub input_per_mtok: MicroUsd,
    /// Generated tokens (reasoning included unless `reasoning_per_mtok` is set).
    pub output_per_mtok: MicroUsd,
    /// Prompt tokens read from the provider's prompt cache.
    pub cached_input_per_mtok: Option<MicroUsd>,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write_per_mtok: Option<MicroUsd>,
    /// Hidden reasoning tokens.
    pub reasoning_per_mtok: Option<MicroUsd>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub alias: String,
    pub strategy: Strategy,
    pub targets: Vec<TargetConfig>,
    /// Other aliases tried in order when every target failed.
    pub fallbacks: Vec<String>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    pub price: Option<Price>,
    /// From the config, else from the built-in catalog for the first target's model.
    pub context_window: Option<u32>,
    /// What a prompt longer than `context_window` gets (an API's own policy wins).
    pub context_policy: super::prompts::ContextPolicy,
    /// Sent as `max_tokens` to targets that require one (Anthropic) when the client gave none.
    /// Default 4096.
    pub default_max_tokens: u32,
    pub circuit: Option<CircuitPolicy>,
    /// Apps need an approved subscription to call this alias.
    pub requires_approval: bool,
}
