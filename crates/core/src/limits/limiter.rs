//! The limiter of one config snapshot: which counters a request must pass (the rules that
//! match it, turned into [`Counter`]s with keys every instance computes alike), and the
//! admission itself against the shared or local backend, with the fallback policy when Redis
//! cannot answer. What the request took is given back by its [`Admission`] when it ends.

use super::admission::{Admission, CounterMeta, MetaKind};
use super::backend::{Counter, CounterKind, Demand, LimitBackend, Verdict};
use super::period::{self, rfc3339};
use super::rules::{BudgetAction, BudgetRule, Match, RateLimitRule, Scope};
use super::state::{Held, LimitState};
use crate::auth::Principal;
use crate::config::{rule_name, Config, RedisFailure};
use crate::error::GatewayError;
use std::sync::Arc;
use std::time::Duration;
use tracing::error;

/// A concurrency lease outlives any request by this much at most (the longest total timeout
/// the config allows is far below), so a dead instance's slots come back.
const LEASE_MS: u64 = 15 * 60 * 1000;

/// Who is calling, as far as rules care (names, and the key's id).
#[derive(Clone, Copy, Debug, Default)]
pub struct Who<'a> {
    pub org: Option<&'a str>,
    pub team: Option<&'a str>,
    pub app: Option<&'a str>,
    pub key_id: Option<&'a str>,
}

impl<'a> Who<'a> {
    /// Virtual keys carry their org, team and app; the admin key and signed-in users match
    /// only rules that name no caller (alias rules).
    pub fn of(principal: &'a Principal) -> Who<'a> {
        match principal {
            Principal::Key(grant) => Who {
                org: Some(&grant.org),
                team: grant.team.as_deref(),
                app: grant.app.as_deref(),
                key_id: Some(&grant.key_id),
            },
            Principal::Admin | Principal::User(_) => Who::default(),
        }
    }
}

/// The counter identity of `scope` for a caller: key -> key id, app -> `org/team/app`,
/// team -> `org/team`, org -> `org`, alias -> the alias. `None` when the caller has none
/// (the admin key has no team) or for `target` (checked per attempt by routing).
pub fn subject(scope: Scope, who: &Who<'_>, alias: &str) -> Option<String> {
    match scope {
        Scope::Key => who.key_id.map(str::to_owned),
        Scope::App => Some(format!("{}/{}/{}", who.org?, who.team?, who.app?)),
        Scope::Team => Some(format!("{}/{}", who.org?, who.team?)),
        Scope::Org => who.org.map(str::to_owned),
        Scope::Alias => Some(alias.to_owned()),
        Scope::Target => None,
    }
}

fn matches(m: &Match, who: &Who<'_>, alias: &str) -> bool {
    fn same(want: &Option<String>, have: Option<&str>) -> bool {
        want.as_deref().is_none_or(|w| have == Some(w))
    }
    same(&m.org, who.org)
        && same(&m.team, who.team)
        && same(&m.app, who.app)
        && same(&m.key, who.key_id)
        && same(&m.alias, Some(alias))
        && m.target.is_none()
}

/// The counters one request must pass, with what each means for errors and headers.
#[derive(Debug, Default)]
pub struct Plan {
    pub(crate) counters: Vec<Counter>,
    pub(crate) metas: Vec<CounterMeta>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    /// Whether admission needs the request's input tokens (a tokens-per-minute rule applies).
    pub fn needs_tokens(&self) -> bool {
        self.counters
            .iter()
            .any(|c| matches!(c.kind, CounterKind::Tokens { .. }))
    }

    /// Whether admission needs the request's worst-case cost (a budget applies).
    pub fn needs_cost(&self) -> bool {
        self.counters
            .iter()
            .any(|c| matches!(c.kind, CounterKind::Budget { .. }))
    }
}

/// Why a request was not admitted as asked.
#[derive(Debug)]
pub enum Refusal {
    /// Refused with this error (429, or 503 when counters are unavailable).
    Error(GatewayError),
    /// A `downgrade` budget is spent: serve this alias instead.
    Downgrade(String),
}

#[derive(Debug)]
pub struct Limiter {
    rules: Vec<(String, RateLimitRule)>,
    budgets: Vec<(String, BudgetRule)>,
    on_error: RedisFailure,
    timeout: Duration,
    webhook: Option<String>,
    state: Arc<LimitState>,
}

impl Limiter {
    pub fn new(config: &Config, state: Arc<LimitState>) -> Limiter {
        let named_rule =
            |r: &RateLimitRule| (rule_name(r.name.as_deref(), r.scope, &r.matches), r.clone());
        let named_budget =
            |b: &BudgetRule| (rule_name(b.name.as_deref(), b.scope, &b.matches), b.clone());
        Limiter {
            rules: config.rate_limits.iter().map(named_rule).collect(),
            budgets: config.budgets.iter().map(named_budget).collect(),
            on_error: config.limits.on_redis_error,
            timeout: config.limits.redis_timeout,
            webhook: config.limits.alert_webhook.clone(),
            state,
        }
    }

    pub fn state(&self) -> &Arc<LimitState> {
        &self.state
    }

    /// Whether any rule or budget is configured at all (the fast path skips everything else).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.budgets.is_empty()
    }

    /// Whether some `scope: target` rule exists (routing then asks before each attempt).
    pub fn limits_targets(&self) -> bool {
        self.rules.iter().any(|(_, r)| r.scope == Scope::Target)
    }

    /// Whether some `scope: target` rule counts tokens (admission then counts them).
    pub fn counts_target_tokens(&self) -> bool {
        self.rules
            .iter()
            .any(|(_, r)| r.scope == Scope::Target && r.tokens_per_minute.is_some())
    }

    /// The counters of the `scope: target` rules for an attempt on `target` (`provider/model`)
    /// serving `alias`. Such rules match on `target` and `alias` only.
    pub fn target_plan(&self, alias: &str, target: &str) -> Plan {
        let mut plan = Plan::default();
        for (name, rule) in &self.rules {
            let m = &rule.matches;
            if rule.scope != Scope::Target
                || m.target.as_deref().is_some_and(|t| t != target)
                || m.alias.as_deref().is_some_and(|a| a != alias)
            {
                continue;
            }
            rate_counters(&mut plan, name, rule, target);
        }
        plan
    }

    /// The counters of the rules that match a call of `alias` by `who`. When `downgraded`, the
    /// request already was moved to a budget's cheaper alias: downgrade budgets then only count.
    pub async fn plan(&self, who: &Who<'_>, alias: &str, downgraded: bool) -> Plan {
        let mut plan = Plan::default();
        if self.is_empty() {
            return plan;
        }
        for (name, rule) in &self.rules {
            if !matches(&rule.matches, who, alias) {
                continue;
            }
            let Some(subject) = subject(rule.scope, who, alias) else {
                continue;
            };
            rate_counters(&mut plan, name, rule, &subject);
        }
        let now = super::now_ms();
        for (name, rule) in &self.budgets {
            if !matches(&rule.matches, who, alias) {
                continue;
            }
            let Some(subject) = subject(rule.scope, who, alias) else {
                continue;
            };
            self.budget_counter(&mut plan, name, rule, subject, now, downgraded)
                .await;
        }
        plan
    }

    async fn budget_counter(
        &self,
        plan: &mut Plan,
        name: &str,
        rule: &BudgetRule,
        subject: String,
        now: i64,
        downgraded: bool,
    ) {
        let bounds = period::bounds(rule.period, now);
        let key = format!("budget|{name}|{subject}|{}", bounds.id);
        let seed = self.seed(&key, rule.scope, &subject, bounds.start_ms).await;
        // Counters outlive their period by a day so that late settlements still find them.
        let ttl_ms = bounds
            .end_ms
            .map_or(0, |end| u64::try_from(end - now).unwrap_or(0) + 86_400_000);
        let enforce = match rule.action {
            BudgetAction::Block => true,
            BudgetAction::Downgrade => !downgraded,
            BudgetAction::Alert => false,
        };
        plan.counters.push(Counter {
            key,
            kind: CounterKind::Budget {
                limit: rule.limit.0,
                enforce,
                seed,
                ttl_ms,
            },
        });
        let dollars = super::alerts::micros_text(rule.limit.0);
        plan.metas.push(CounterMeta {
            rule: name.to_owned(),
            what: format!(
                "${dollars} per {} for {} {subject}",
                rule.period.as_str(),
                rule.scope.as_str()
            ),
            scope: rule.scope,
            subject,
            kind: MetaKind::Budget {
                period: rule.period.as_str(),
                resets_ms: bounds.end_ms,
                action: rule.action,
                downgrade_to: rule.downgrade_to.clone(),
                thresholds: rule.alert_at.clone(),
            },
        });
    }

    /// Spend recorded in storage for a budget counter this process has not used yet.
    async fn seed(&self, key: &str, scope: Scope, subject: &str, since_ms: i64) -> i64 {
        if self.state.seeded.get(key).is_some() {
            return 0; // the counter exists; the backend ignores a seed for it anyway
        }
        let Some(spend) = &self.state.spend else {
            return 0;
        };
        match spend.spend_since(scope, subject, since_ms).await {
            Ok(micros) => {
                self.state.seeded.insert(key.to_owned(), ());
                micros
            }
            Err(err) => {
                error!(%err, budget = key, "Cannot read recorded spend to seed a budget; counting from zero.");
                0
            }
        }
    }

    /// Takes the plan's counters, all or none.
    pub async fn admit(
        &self,
        plan: Plan,
        demand: &Demand<'_>,
        downgraded: bool,
    ) -> Result<Admission, Refusal> {
        if plan.is_empty() {
            return Ok(Admission::none());
        }
        let (verdict, held) = self.acquire(&plan.counters, demand).await?;
        match verdict {
            Verdict::Admitted(states) => Ok(Admission::new(
                self.state.clone(),
                held,
                demand,
                plan,
                states,
                self.webhook.clone(),
            )),
            Verdict::Refused {
                index,
                retry_after_ms,
                ..
            } => Err(refusal(&plan.metas[index], retry_after_ms, downgraded)),
        }
    }

    async fn acquire(
        &self,
        counters: &[Counter],
        demand: &Demand<'_>,
    ) -> Result<(Verdict, Held), Refusal> {
        if let Some(shared) = &self.state.shared {
            let attempt = tokio::time::timeout(self.timeout, shared.acquire(counters, demand));
            let err = match attempt.await {
                Ok(Ok(verdict)) => return Ok((verdict, Held::Shared)),
                Ok(Err(err)) => err,
                Err(_) => super::backend::BackendError(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                )),
            };
            self.state.shared_failed(&err, self.on_error);
            if self.on_error == RedisFailure::Reject {
                return Err(Refusal::Error(GatewayError::LimitsUnavailable));
            }
        }
        match self.state.local.acquire(counters, demand).await {
            Ok(verdict) => Ok((verdict, Held::Local)),
            // The local backend cannot fail; if it ever did, refusing is the safe answer.
            Err(_) => Err(Refusal::Error(GatewayError::LimitsUnavailable)),
        }
    }
}

fn rate_counters(plan: &mut Plan, name: &str, rule: &RateLimitRule, subject: &str) {
    let scope = rule.scope.as_str();
    let mut push = |suffix: &str, kind: CounterKind, meta: MetaKind, what: String| {
        plan.counters.push(Counter {
            key: format!("{suffix}|{name}|{subject}"),
            kind,
        });
        plan.metas.push(CounterMeta {
            rule: name.to_owned(),
            what,
            scope: rule.scope,
            subject: subject.to_owned(),
            kind: meta,
        });
    };
    if let Some(limit) = rule.requests_per_second {
        let kind = CounterKind::Requests {
            limit,
            window_ms: 1000,
        };
        push(
            "rps",
            kind,
            MetaKind::Requests,
            format!("{limit} requests per second for {scope} {subject}"),
        );
    }
    if let Some(limit) = rule.requests_per_minute {
        let kind = CounterKind::Requests {
            limit,
            window_ms: 60_000,
        };
        push(
            "rpm",
            kind,
            MetaKind::Requests,
            format!("{limit} requests per minute for {scope} {subject}"),
        );
    }
    if let Some(limit) = rule.tokens_per_minute {
        let kind = CounterKind::Tokens {
            limit,
            window_ms: 60_000,
        };
        push(
            "tpm",
            kind,
            MetaKind::Tokens,
            format!("{limit} tokens per minute for {scope} {subject}"),
        );
    }
    if let Some(limit) = rule.concurrent {
        let kind = CounterKind::Concurrent {
            limit,
            lease_ms: LEASE_MS,
        };
        push(
            "conc",
            kind,
            MetaKind::Concurrent,
            format!("{limit} concurrent requests for {scope} {subject}"),
        );
    }
}

fn refusal(meta: &CounterMeta, retry_after_ms: u64, downgraded: bool) -> Refusal {
    use crate::metrics::Counter;
    let wait = (retry_after_ms > 0).then(|| Duration::from_millis(retry_after_ms));
    match &meta.kind {
        MetaKind::Requests | MetaKind::Tokens | MetaKind::Concurrent => {
            let kind = match meta.kind {
                MetaKind::Tokens => "tokens",
                MetaKind::Concurrent => "concurrent",
                MetaKind::Requests | MetaKind::Budget { .. } => "requests",
            };
            Counter::RateLimited.increment_with("kind", kind);
            Refusal::Error(GatewayError::RateLimited {
                rule: meta.rule.clone(),
                what: meta.what.clone(),
                retry_after: wait,
            })
        }
        MetaKind::Budget {
            action: BudgetAction::Downgrade,
            downgrade_to: Some(alias),
            ..
        } if !downgraded => {
            Counter::BudgetDowngrades.increment();
            Refusal::Downgrade(alias.clone())
        }
        MetaKind::Budget { resets_ms, .. } => {
            Counter::BudgetRejections.increment();
            let now = super::now_ms();
            Refusal::Error(GatewayError::BudgetExceeded {
                rule: meta.rule.clone(),
                what: meta.what.clone(),
                resets: resets_ms.map(rfc3339),
                retry_after: resets_ms
                    .map(|end| Duration::from_millis(u64::try_from(end - now).unwrap_or(0))),
            })
        }
    }
}

/// One limit as it stands for a caller, for `GET /v1/key` and the admin API.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LimitReport {
    pub rule: String,
    pub scope: Scope,
    pub subject: String,
    /// `requests_per_second`, `requests_per_minute`, `tokens_per_minute`, `concurrent`, or
    /// `budget` (amounts in micro-dollars).
    pub limit_kind: &'static str,
    pub limit: i64,
    /// Including reservations of requests in flight, for budgets.
    pub used: i64,
    pub remaining: i64,
    /// Milliseconds until the window resets (0 when it does not).
    pub reset_ms: u64,
    /// For budgets: the period and when it resets (RFC 3339; none for `total`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<BudgetAction>,
}

impl Limiter {
    /// Every caller-scoped limit and budget (key, app, team, org) that applies to `who`, for
    /// any alias, as it stands now. Reading takes nothing from any counter.
    pub async fn report(&self, who: &Who<'_>) -> Result<Vec<LimitReport>, super::BackendError> {
        let mut plan = Plan::default();
        let caller_scoped =
            |scope: Scope| matches!(scope, Scope::Key | Scope::App | Scope::Team | Scope::Org);
        for (name, rule) in &self.rules {
            let alias = rule.matches.alias.as_deref().unwrap_or("");
            if !caller_scoped(rule.scope) || !matches(&rule.matches, who, alias) {
                continue;
            }
            if let Some(subject) = subject(rule.scope, who, alias) {
                rate_counters(&mut plan, name, rule, &subject);
            }
        }
        let now = super::now_ms();
        for (name, rule) in &self.budgets {
            let alias = rule.matches.alias.as_deref().unwrap_or("");
            if !matches(&rule.matches, who, alias) {
                continue;
            }
            if let Some(subject) = subject(rule.scope, who, alias) {
                self.budget_counter(&mut plan, name, rule, subject, now, false)
                    .await;
            }
        }
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        let states = report_backend(&self.state).peek(&plan.counters).await?;
        Ok(plan
            .counters
            .iter()
            .zip(plan.metas)
            .zip(states)
            .map(|((counter, meta), state)| report(counter, meta, state))
            .collect())
    }
}

fn report(counter: &Counter, meta: CounterMeta, state: super::CounterState) -> LimitReport {
    let limit_kind = match counter.kind {
        CounterKind::Requests {
            window_ms: 1000, ..
        } => "requests_per_second",
        CounterKind::Requests { .. } => "requests_per_minute",
        CounterKind::Tokens { .. } => "tokens_per_minute",
        CounterKind::Concurrent { .. } => "concurrent",
        CounterKind::Budget { .. } => "budget",
    };
    let (period, resets_at, action) = match meta.kind {
        MetaKind::Budget {
            period,
            resets_ms,
            action,
            ..
        } => (Some(period), resets_ms.map(rfc3339), Some(action)),
        MetaKind::Requests | MetaKind::Tokens | MetaKind::Concurrent => (None, None, None),
    };
    LimitReport {
        rule: meta.rule,
        scope: meta.scope,
        subject: meta.subject,
        limit_kind,
        limit: state.limit,
        used: state.used,
        remaining: state.remaining(),
        reset_ms: state.reset_ms,
        period,
        resets_at,
        action,
    }
}

/// The backend a limiter's counters are read from for reports (`GET /v1/key`, the admin API).
pub(crate) fn report_backend(state: &LimitState) -> &dyn LimitBackend {
    match &state.shared {
        Some(shared) => shared.as_ref(),
        None => state.local.as_ref(),
    }
}

/// The target gate of one request: its id and estimated tokens, for `scope: target` rules.
#[derive(Debug)]
pub struct RequestGate<'a> {
    pub limiter: &'a Limiter,
    pub request_id: &'a str,
    pub tokens: u64,
}

#[async_trait::async_trait]
impl crate::routing::TargetGate for RequestGate<'_> {
    async fn enter(
        &self,
        alias: &str,
        target: &crate::routing::TargetId,
    ) -> Result<Admission, GatewayError> {
        let plan = self.limiter.target_plan(alias, &target.to_string());
        let demand = Demand {
            request_id: self.request_id,
            tokens: self.tokens,
            cost: 0,
        };
        match self.limiter.admit(plan, &demand, true).await {
            Ok(admission) => Ok(admission),
            Err(Refusal::Error(error)) => Err(error),
            // Target plans hold no budgets, so nothing can ask for a downgrade.
            Err(Refusal::Downgrade(_)) => Err(GatewayError::Internal("target downgrade".into())),
        }
    }
}
