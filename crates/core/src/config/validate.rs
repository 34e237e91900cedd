//! Semantic checks: from a `RawConfig` that serde accepted to the `Config` the gateway reads.
//! Pure (no I/O, no environment) and exhaustive: every problem is collected with the key path
//! it is about, so that `switchboard check` shows all of them at once.

use super::locate::KeyPath;
use super::model::{
    AccessConfig, AppSpec, CircuitPolicy, Config, Limits, ModelConfig, OrgSpec, Price,
    ProviderConfig, RetryPolicy, Secret, Strategy, TargetConfig, TeamSpec,
};
use super::raw::{
    Declared, RawAccess, RawCircuit, RawConfig, RawError, RawModel, RawPrice, RawStrategy,
    RawTimeout,
};
use super::validate_limits;
use crate::auth::jwt::OidcSettings;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard_providers::{ProviderSettings, Timeouts};

/// Default `listen` address.
pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default `default_max_tokens`.
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Largest accepted `retry.attempts`.
pub(crate) const MAX_RETRY_ATTEMPTS: u32 = 10;

/// Collects problems while building.
struct Checker<'a> {
    declared: &'a Declared,
    problems: Vec<RawError>,
}

impl Checker<'_> {
    fn problem(&mut self, path: KeyPath, message: impl Into<String>) {
        self.problems.push(RawError {
            path,
            message: message.into(),
        });
    }
}

/// Checks `raw` and builds the `Config`, or returns every problem found.
pub(crate) fn validate(raw: &RawConfig, declared: &Declared) -> Result<Config, Vec<RawError>> {
    let root = KeyPath::root();
    let mut ck = Checker {
        declared,
        problems: Vec::new(),
    };

    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = match listen_text.trim().parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            ck.problem(
                root.key("listen"),
                "expected an IP address and port such as 0.0.0.0:8080 or [::1]:8080",
            );
            SocketAddr::from(([0, 0, 0, 0], 8080))
        }
    };

    let admin_key = match raw.admin_key.as_deref() {
        Some("") => {
            ck.problem(
                root.key("admin_key"),
                "is empty: set it to a long random string, or remove the key",
            );
            None
        }
        Some(key) => Some(Secret(key.to_owned())),
        None => None,
    };

    let mut limits = Limits::default();
    if let Some(bytes) = raw.limits.max_body_bytes {
        match usize::try_from(bytes) {
            Ok(0) => ck.problem(
                root.key("limits").key("max_body_bytes"),
                "must be greater than 0",
            ),
            Ok(n) => limits.max_body_bytes = n,
            Err(_) => ck.problem(
                root.key("limits").key("max_body_bytes"),
                "is too large for this machine",
            ),
        }
    }

    let mut limit_problems = Vec::new();
    validate_limits::limit_options(raw, &mut limits, &mut limit_problems);
    let known_models: std::collections::BTreeSet<&str> =
        declared.models.iter().map(String::as_str).collect();
    validate_limits::rate_limits(raw, &known_models, &mut limit_problems);
    validate_limits::budgets(raw, &known_models, &mut limit_problems);
    let alerts = super::alerts::validate(raw.alerts.as_ref(), &known_models, &mut limit_problems);
    let logging = super::logging::logging(raw.logging.as_ref(), &known_models, &mut limit_problems);
    let prompts = super::prompts::prompts(&raw.prompts, &mut limit_problems);
    let apis = super::prompts::apis(&raw.apis, &prompts, &known_models, &mut limit_problems);
    for (path, message) in limit_problems {
        ck.problem(path, message);
    }

    let access = access_config(&mut ck, raw.access.as_ref());
    let telemetry = raw.telemetry.as_ref().and_then(|t| {
        super::validate_telemetry::telemetry(t, &root.key("telemetry"), &mut ck.problems)
    });
    let orgs = orgs(&mut ck, raw);

    let mut providers = BTreeMap::new();
    for (name, provider) in &raw.providers {
        let path = root.key("providers").key(name);
        check_provider_settings(&mut ck, &path, &provider.settings);
        let circuit = provider
            .circuit
            .map(|c| circuit_policy(&mut ck, &path.key("circuit"), c));
        providers.insert(
            name.clone(),
            ProviderConfig {
                name: name.clone(),
                settings: provider.settings.clone(),
                circuit,
            },
        );
    }

    let mut models = BTreeMap::new();
    for (alias, model) in &raw.models {
        let path = root.key("models").key(alias);
        models.insert(alias.clone(), model_config(&mut ck, &path, alias, model));
    }
    check_fallback_cycles(&mut ck, raw);

    if ck.problems.is_empty() {
        Ok(Config {
            listen,
            database: raw.database.clone(),
            redis: raw.redis.clone(),
            admin_key,
            limits,
            access,
            telemetry,
            orgs,
            providers,
            models,
            rate_limits: raw.rate_limits.iter().map(|(_, r)| r.clone()).collect(),
            budgets: raw.budgets.iter().map(|(_, b)| b.clone()).collect(),
            alerts,
            logging,
            prompts,
            apis,
        })
    } else {
        Err(ck.problems)
    }
}

fn check_provider_settings(ck: &mut Checker<'_>, path: &KeyPath, settings: &ProviderSettings) {
    let (base_url, required_key) = match settings {
        ProviderSettings::Openai { base_url, .. } => (base_url.as_deref(), None),
        ProviderSettings::AzureOpenai {
            base_url, api_key, ..
        } => (Some(base_url.as_str()), Some(api_key)),
        ProviderSettings::Anthropic {
            base_url, api_key, ..
        }
        | ProviderSettings::Gemini { base_url, api_key } => (base_url.as_deref(), Some(api_key)),
        ProviderSettings::Mock { .. } => (None, None),
    };
    if let Some(url) = base_url {
        if let Err(why) = check_base_url(url) {
            ck.problem(path.key("base_url"), why);
        }
    }
    if required_key.is_some_and(|k| k.expose().trim().is_empty()) {
        ck.problem(
            path.key("api_key"),
            "is empty: this provider needs an API key",
        );
    }
}

/// An absolute `http(s)://host[:port][/path]` URL. (The value itself is never echoed: it may
/// carry a key in its query string.)
pub(crate) fn check_base_url(url: &str) -> Result<(), &'static str> {
    const WANT: &str =
        "expected an absolute http:// or https:// URL such as https://api.openai.com/v1";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(WANT)?;
    if url.chars().any(char::is_whitespace) {
        return Err("must not contain spaces");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(WANT)?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err("has no host name");
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("has an invalid port");
    }
    Ok(())
}

fn circuit_policy(ck: &mut Checker<'_>, path: &KeyPath, raw: RawCircuit) -> CircuitPolicy {
    let default = CircuitPolicy::default();
    if raw.failures == Some(0) {
        ck.problem(
            path.key("failures"),
            "must be at least 1 (consecutive failures that open the circuit)",
        );
    }
    CircuitPolicy {
        failures: raw.failures.unwrap_or(default.failures),
        cooldown: raw
            .cooldown_ms
            .map_or(default.cooldown, Duration::from_millis),
    }
}

fn model_config(ck: &mut Checker<'_>, path: &KeyPath, alias: &str, raw: &RawModel) -> ModelConfig {
    let strategy = match raw.strategy.unwrap_or_default() {
        RawStrategy::Weighted => Strategy::Weighted,
        RawStrategy::Priority => Strategy::Priority,
        RawStrategy::LeastLatency => Strategy::LeastLatency,
        RawStrategy::LeastBusy => Strategy::LeastBusy,
        RawStrategy::Cheapest => Strategy::Cheapest,
    };
    if raw.targets.is_empty() {
        ck.problem(
            path.key("targets"),
            "needs at least one target such as `{ provider: openai, model: gpt-4o }`",
        );
    }
    let price = raw.price.map(price);
    let mut targets = Vec::new();
    for (i, target) in raw.targets.iter().enumerate() {
        let tpath = path.key("targets").index(i);
        if !ck.declared.providers.contains(&target.provider) {
            let known = ck.declared.providers.join(", ");
            ck.problem(
                tpath.key("provider"),
                format!(
                    "unknown provider `{}` (configured providers: {})",
                    target.provider,
                    if known.is_empty() { "none" } else { &known }
                ),
            );
        }
        if target.model.trim().is_empty() {
            ck.problem(tpath.key("model"), "must not be empty");
        }
        if target.weight == Some(0) {
            ck.problem(
                tpath.key("weight"),
                "must be at least 1 (remove the target to send it no traffic)",
            );
        }
        let target_price = target.price.map(self::price);
        // A target is priced by its own `price`, else the model's, else the built-in catalog.
        if strategy == Strategy::Cheapest
            && target_price.is_none()
            && price.is_none()
            && crate::pricing::builtin().lookup(&target.model).is_none()
        {
            ck.problem(
                tpath.clone(),
                format!(
                    "strategy `cheapest` needs a price on every target, and `{}` is not in the \
                     built-in price catalog: add `price: {{ input_per_mtok: ..., \
                     output_per_mtok: ... }}` here or on the model",
                    target.model
                ),
            );
        }
        targets.push(TargetConfig {
            provider: target.provider.clone(),
            model: target.model.clone(),
            weight: target.weight.unwrap_or(1),
            priority: target
                .priority
                .unwrap_or_else(|| u32::try_from(i).unwrap_or(u32::MAX)),
            price: target_price,
        });
    }
    for (i, fallback) in raw.fallbacks.iter().enumerate() {
        if !ck.declared.models.contains(fallback) {
            ck.problem(
                path.key("fallbacks").index(i),
                format!(
                    "unknown model alias `{fallback}` (fallbacks name other entries of `models`)"
                ),
            );
        }
    }
    let retry = retry_policy(ck, &path.key("retry"), raw);
    let timeouts = timeouts(ck, &path.key("timeout"), raw.timeout.unwrap_or_default());
    if raw.context_window == Some(0) {
        ck.problem(path.key("context_window"), "must be greater than 0");
    }
    if raw.default_max_tokens == Some(0) {
        ck.problem(path.key("default_max_tokens"), "must be greater than 0");
    }
    let circuit = raw
        .circuit
        .map(|c| circuit_policy(ck, &path.key("circuit"), c));
    // The one place an alias learns its window: the config's, else the built-in catalog's for
    // the first target's upstream model (the target routing prefers, and the one token
    // counting uses).
    let context_window = raw.context_window.or_else(|| {
        targets
            .first()
            .and_then(|t| crate::pricing::builtin().context_window(&t.model))
    });
    ModelConfig {
        alias: alias.to_owned(),
        strategy,
        targets,
        fallbacks: raw.fallbacks.clone(),
        retry,
        timeouts,
        price,
        context_window,
        context_policy: raw.context_policy.map(Into::into).unwrap_or_default(),
        default_max_tokens: raw.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        requires_approval: raw.requires_approval.unwrap_or(false),
        circuit,
    }
}

fn price(raw: RawPrice) -> Price {
    Price {
        input_per_mtok: raw.input_per_mtok.0,
        output_per_mtok: raw.output_per_mtok.0,
        cached_input_per_mtok: raw.cached_input_per_mtok.map(|d| d.0),
        cache_write_per_mtok: raw.cache_write_per_mtok.map(|d| d.0),
        reasoning_per_mtok: raw.reasoning_per_mtok.map(|d| d.0),
    }
}

fn retry_policy(ck: &mut Checker<'_>, path: &KeyPath, raw: &RawModel) -> RetryPolicy {
    let default = RetryPolicy::default();
    let Some(retry) = raw.retry else {
        return default;
    };
    let policy = RetryPolicy {
        attempts: retry.attempts.unwrap_or(default.attempts),
        backoff: retry
            .backoff_ms
            .map_or(default.backoff, Duration::from_millis),
        max_backoff: retry
            .max_backoff_ms
            .map_or(default.max_backoff, Duration::from_millis),
    };
    if policy.attempts > MAX_RETRY_ATTEMPTS {
        ck.problem(
            path.key("attempts"),
            format!("must be at most {MAX_RETRY_ATTEMPTS} (extra tries after the first)"),
        );
    }
    if policy.max_backoff < policy.backoff {
        let key = if retry.max_backoff_ms.is_some() {
            "max_backoff_ms"
        } else {
            "backoff_ms"
        };
        ck.problem(
            path.key(key),
            "max_backoff_ms must not be smaller than backoff_ms",
        );
    }
    policy
}

fn timeouts(ck: &mut Checker<'_>, path: &KeyPath, raw: RawTimeout) -> Timeouts {
    let default = Timeouts::default();
    let mut one = |key: &str, value: Option<u64>, default: Duration| match value {
        Some(0) => {
            ck.problem(path.key(key), "must be greater than 0 (milliseconds)");
            default
        }
        Some(ms) => Duration::from_millis(ms),
        None => default,
    };
    Timeouts {
        connect: one("connect_ms", raw.connect_ms, default.connect),
        first_byte: one("first_byte_ms", raw.first_byte_ms, default.first_byte),
        total: one("total_ms", raw.total_ms, default.total),
        idle: one("idle_ms", raw.idle_ms, default.idle),
    }
}

/// Reports each cycle of the fallback graph once (`a -> b -> a`, or an alias naming itself), at
/// the fallback entry that closes it.
fn check_fallback_cycles(ck: &mut Checker<'_>, raw: &RawConfig) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> =
        raw.models.keys().map(|k| (k.as_str(), Mark::New)).collect();
    // Iterative depth-first search; the stack holds (alias, next fallback index).
    for start in raw.models.keys() {
        if marks.get(start.as_str()) != Some(&Mark::New) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start.as_str(), Mark::Active);
        while let Some((alias, next)) = stack.last().copied() {
            let fallbacks = raw.models.get(alias).map_or(&[][..], |m| &m.fallbacks[..]);
            let Some(target) = fallbacks.get(next) else {
                marks.insert(alias, Mark::Done);
                stack.pop();
                continue;
            };
            if let Some(top) = stack.last_mut() {
                top.1 += 1;
            }
            match marks.get(target.as_str()).copied() {
                Some(Mark::New) => {
                    marks.insert(target.as_str(), Mark::Active);
                    stack.push((target.as_str(), 0));
                }
                Some(Mark::Active) => {
                    let from = stack.iter().position(|(a, _)| *a == target).unwrap_or(0);
                    let mut cycle: Vec<&str> = stack[from..].iter().map(|(a, _)| *a).collect();
                    cycle.push(target);
                    ck.problem(
                        KeyPath::root()
                            .key("models")
                            .key(alias)
                            .key("fallbacks")
                            .index(next),
                        format!("fallback cycle: {}", cycle.join(" -> ")),
                    );
                }
                // Done, or an unknown alias (reported elsewhere).
                _ => {}
            }
        }
    }
}

fn access_config(ck: &mut Checker<'_>, raw: Option<&RawAccess>) -> AccessConfig {
    let mut access = AccessConfig::default();
    let Some(raw) = raw else {
        return access;
    };
    let path = KeyPath::root().key("access");
    if let Some(ms) = raw.key_cache_ttl_ms {
        if ms == 0 {
            ck.problem(path.key("key_cache_ttl_ms"), "must be greater than 0");
        }
        access.key_cache_ttl = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = raw.rotation_grace_ms {
        access.rotation_grace = Duration::from_millis(ms);
    }
    if let Some(url) = &raw.approval_webhook {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            ck.problem(
                path.key("approval_webhook"),
                "expected an http:// or https:// URL",
            );
        }
        access.approval_webhook = Some(url.clone());
    }
    if let Some(oidc) = &raw.oidc {
        let opath = path.key("oidc");
        if !(oidc.issuer.starts_with("https://") || oidc.issuer.starts_with("http://")) {
            ck.problem(
                opath.key("issuer"),
                "expected the issuer URL, as in the tokens' `iss`",
            );
        }
        if oidc.audience.is_empty() {
            ck.problem(opath.key("audience"), "must not be empty");
        }
        let mut settings = OidcSettings::new(oidc.issuer.clone(), oidc.audience.clone());
        settings.jwks_url = oidc.jwks_url.clone();
        if let Some(ms) = oidc.jwks_ttl_ms {
            settings.jwks_ttl = Duration::from_millis(ms);
        }
        if let Some(secs) = oidc.leeway_secs {
            if secs > 3600 {
                ck.problem(opath.key("leeway_secs"), "must be at most 3600");
            }
            settings.leeway_secs = secs;
        }
        let claims = &oidc.claims;
        for (name, value) in [
            ("org", &claims.org),
            ("team", &claims.team),
            ("role", &claims.role),
        ] {
            if value.as_deref() == Some("") {
                ck.problem(opath.key("claims").key(name), "must not be empty");
            }
        }
        if let Some(org) = &claims.org {
            settings.claims.org = org.clone();
        }
        if let Some(team) = &claims.team {
            settings.claims.team = team.clone();
        }
        if let Some(role) = &claims.role {
            settings.claims.role = role.clone();
        }
        settings.claims.roles = claims.roles.clone();
        access.oidc = Some(settings);
    }
    access
}

/// Whether `name` can name an org, team or app: it appears in URLs and the CLI.
pub fn is_slug(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

/// What [`is_slug`] accepts, for messages.
pub const SLUG_RULE: &str =
    "names are 1-64 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit";

fn orgs(ck: &mut Checker<'_>, raw: &RawConfig) -> BTreeMap<String, OrgSpec> {
    let mut out = BTreeMap::new();
    let Some(orgs) = &raw.orgs else {
        return out;
    };
    let root = KeyPath::root().key("orgs");
    for (org_name, org) in orgs {
        let opath = root.key(org_name);
        if !is_slug(org_name) {
            ck.problem(opath.clone(), SLUG_RULE);
        }
        let mut teams = BTreeMap::new();
        for (team_name, team) in &org.teams {
            let tpath = opath.key("teams").key(team_name);
            if !is_slug(team_name) {
                ck.problem(tpath.clone(), SLUG_RULE);
            }
            let mut apps = BTreeMap::new();
            for (app_name, app) in &team.apps {
                let apath = tpath.key("apps").key(app_name);
                if !is_slug(app_name) {
                    ck.problem(apath.clone(), SLUG_RULE);
                }
                for (i, alias) in app.models.iter().flatten().enumerate() {
                    if !ck.declared.models.contains(alias) {
                        ck.problem(
                            apath.key("models").index(i),
                            format!("unknown model `{alias}`: it is not under `models:`"),
                        );
                    }
                }
                apps.insert(
                    app_name.clone(),
                    AppSpec {
                        models: app.models.clone(),
                        apis: app.apis.clone(),
                    },
                );
            }
            teams.insert(team_name.clone(), TeamSpec { apps });
        }
        out.insert(
            org_name.clone(),
            OrgSpec {
                display_name: org.display_name.clone(),
                teams,
            },
        );
    }
    out
}
