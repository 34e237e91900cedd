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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::error;

/// A concurrency lease outlives any request by this much at most (the longest total timeout
/// the config allows is far below), so a dead instance's slots come back.
const LEASE_MS: u64 = 15 * 60 * 1000;

/// Budget counters outlive their period by a day so that late settlements still find them.
const BUDGET_GRACE_MS: u64 = 86_400_000;

/// Callers (and aliases) whose plans a limiter keeps: beyond, the least used are rebuilt.
const CACHED_PLANS: usize = 10_000;

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
    /// Shared with the limiter's cached plan once nothing in it changes per request (every
    /// budget seeded): a request's plan is then a reference count, and the Redis backend knows
    /// a batch's requests of one plan by pointer.
    pub(crate) counters: Arc<[Counter]>,
    /// One per counter, in order; shared with the limiter's cached plan.
    pub(crate) metas: Arc<[CounterMeta]>,
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
    webhook: Option<Arc<str>>,
    state: Arc<LimitState>,
    /// The plans of recent callers: matching rules and formatting counter keys and
    /// descriptions is done once per caller and alias, not per request. Belongs to this
    /// config snapshot, so a reload starts afresh.
    plans: quick_cache::sync::Cache<PlanKey, Arc<Cached>>,
}

/// Which plan a request gets: everything [`Limiter::plan`] depends on besides the time.
#[derive(Debug, Hash, PartialEq, Eq)]
struct PlanKey {
    org: Option<String>,
    team: Option<String>,
    app: Option<String>,
    key_id: Option<String>,
    alias: String,
    downgraded: bool,
}

/// A [`PlanKey`] borrowed from the request, to look plans up without allocating. Its fields
/// hash exactly as the owned key's do (`&str` and `String` hash alike), in the same order.
#[derive(Hash)]
struct PlanKeyRef<'a> {
    org: Option<&'a str>,
    team: Option<&'a str>,
    app: Option<&'a str>,
    key_id: Option<&'a str>,
    alias: &'a str,
    downgraded: bool,
}

impl PlanKeyRef<'_> {
    fn owned(&self) -> PlanKey {
        PlanKey {
            org: self.org.map(str::to_owned),
            team: self.team.map(str::to_owned),
            app: self.app.map(str::to_owned),
            key_id: self.key_id.map(str::to_owned),
            alias: self.alias.to_owned(),
            downgraded: self.downgraded,
        }
    }
}

impl quick_cache::Equivalent<PlanKey> for PlanKeyRef<'_> {
    fn equivalent(&self, key: &PlanKey) -> bool {
        self.org == key.org.as_deref()
            && self.team == key.team.as_deref()
            && self.app == key.app.as_deref()
            && self.key_id == key.key_id.as_deref()
            && self.alias == key.alias
            && self.downgraded == key.downgraded
    }
}

/// A plan as kept between requests. What changes with time is filled in per request by
/// [`Limiter::instantiate`]: budget counters are kept with `seed` 0.
#[derive(Debug)]
struct Cached {
    counters: Arc<[Counter]>,
    metas: Arc<[CounterMeta]>,
    budgets: Vec<CachedBudget>,
    /// See [`Builder::from_ms`].
    from_ms: i64,
    until_ms: i64,
}

/// A plan being built: the counters of the rules that match, in rule order.
#[derive(Debug)]
struct Builder {
    counters: Vec<Counter>,
    metas: Vec<CounterMeta>,
    budgets: Vec<CachedBudget>,
    /// The budget periods the plan was built in span [`from_ms`, `until_ms`): budget keys name
    /// their period, so outside it the plan is built again.
    from_ms: i64,
    until_ms: i64,
}

#[derive(Debug)]
struct CachedBudget {
    /// The budget's counter in the plan.
    index: usize,
    start_ms: i64,
    /// Whether the counter's seed was settled (read from storage, or known not needed). Until
    /// then each request asks again, as before caching: a failed read is retried.
    seeded: AtomicBool,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            counters: Vec::new(),
            metas: Vec::new(),
            budgets: Vec::new(),
            from_ms: i64::MIN,
            until_ms: i64::MAX,
        }
    }

    fn finish(self) -> Cached {
        Cached {
            counters: self.counters.into(),
            metas: self.metas.into(),
            budgets: self.budgets,
            from_ms: self.from_ms,
            until_ms: self.until_ms,
        }
    }

    /// A plan of rate counters only (they need nothing filled in per request).
    fn into_rate_plan(self) -> Plan {
        debug_assert!(self.budgets.is_empty());
        Plan {
            counters: self.counters.into(),
            metas: self.metas.into(),
        }
    }
}

impl Cached {
    fn covers(&self, now: i64) -> bool {
        self.from_ms <= now && now < self.until_ms
    }
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
            webhook: config.limits.alert_webhook.as_deref().map(Arc::from),
            state,
            plans: quick_cache::sync::Cache::new(CACHED_PLANS),
        }
    }

    pub fn state(&self) -> &Arc<LimitState> {
        &self.state
    }

    /// Whether any rule or budget is configured at all (the fast path skips everything else).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.budgets.is_empty()
    }

    /// Whether admission may count input tokens: a tokens-per-minute rule or a budget (whose
    /// worst-case cost needs them) is configured.
    pub fn counts_tokens(&self) -> bool {
        !self.budgets.is_empty()
            || self
                .rules
                .iter()
                .any(|(_, r)| r.tokens_per_minute.is_some())
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
        let mut plan = Builder::new();
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
        plan.into_rate_plan()
    }

    /// The counters of the rules that match a call of `alias` by `who`. When `downgraded`, the
    /// request already was moved to a budget's cheaper alias: downgrade budgets then only count.
    ///
    /// Kept per caller and alias (see [`Cached`]), so that a request costs a lookup rather
    /// than matching rules and formatting keys; built again when a budget period ends.
    pub async fn plan(&self, who: &Who<'_>, alias: &str, downgraded: bool) -> Plan {
        if self.is_empty() {
            return Plan::default();
        }
        let now = super::now_ms();
        let key = PlanKeyRef {
            org: who.org,
            team: who.team,
            app: who.app,
            key_id: who.key_id,
            alias,
            downgraded,
        };
        let cached = match self.plans.get(&key) {
            Some(cached) if cached.covers(now) => cached,
            _ => {
                let cached = Arc::new(self.build(who, alias, downgraded, now));
                self.plans.insert(key.owned(), cached.clone());
                cached
            }
        };
        self.instantiate(&cached).await
    }

    /// Matches the rules and budgets against a call of `alias` by `who` at `now`.
    fn build(&self, who: &Who<'_>, alias: &str, downgraded: bool, now: i64) -> Cached {
        let mut plan = Builder::new();
        for (name, rule) in &self.rules {
            if !matches(&rule.matches, who, alias) {
                continue;
            }
            let Some(subject) = subject(rule.scope, who, alias) else {
                continue;
            };
            rate_counters(&mut plan, name, rule, &subject);
        }
        for (name, rule) in &self.budgets {
            if !matches(&rule.matches, who, alias) {
                continue;
            }
            let Some(subject) = subject(rule.scope, who, alias) else {
                continue;
            };
            budget_counter(&mut plan, name, rule, subject, now, downgraded);
        }
        plan.finish()
    }

    /// A request's plan from a kept one: the kept counters themselves once every budget is
    /// seeded, else a copy with the spend already recorded in storage (the seed) filled in
    /// where this process does not have it yet.
    async fn instantiate(&self, cached: &Cached) -> Plan {
        if cached
            .budgets
            .iter()
            .all(|b| b.seeded.load(Ordering::Relaxed))
        {
            return Plan {
                counters: cached.counters.clone(),
                metas: cached.metas.clone(),
            };
        }
        let mut counters = cached.counters.to_vec();
        for budget in &cached.budgets {
            let seed = if budget.seeded.load(Ordering::Relaxed) {
                0
            } else {
                let meta = &cached.metas[budget.index];
                let key = &counters[budget.index].key;
                let (seed, settled) = self
                    .seed(key, meta.scope, &meta.subject, budget.start_ms)
                    .await;
                if settled {
                    budget.seeded.store(true, Ordering::Relaxed);
                }
                seed
            };
            if let CounterKind::Budget { seed: s, .. } = &mut counters[budget.index].kind {
                *s = seed;
            }
        }
        Plan {
            counters: counters.into(),
            metas: cached.metas.clone(),
        }
    }

    /// Spend recorded in storage for a budget counter this process has not used yet, and
    /// whether that is settled (false when storage could not be read: the next request tries
    /// again).
    async fn seed(&self, key: &str, scope: Scope, subject: &str, since_ms: i64) -> (i64, bool) {
        if self.state.seeded.get(key).is_some() {
            return (0, true); // the counter exists; the backend ignores a seed for it anyway
        }
        let Some(spend) = &self.state.spend else {
            return (0, true);
        };
        match spend.spend_since(scope, subject, since_ms).await {
            Ok(micros) => {
                self.state.seeded.insert(key.to_owned(), ());
                (micros, true)
            }
            Err(err) => {
                error!(%err, budget = key, "Cannot read recorded spend to seed a budget; counting from zero.");
                (0, false)
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
            } => Err(refusal(
                &plan.counters[index],
                &plan.metas[index],
                retry_after_ms,
                downgraded,
            )),
        }
    }

    async fn acquire(
        &self,
        counters: &Arc<[Counter]>,
        demand: &Demand<'_>,
    ) -> Result<(Verdict, Held), Refusal> {
        if let Some(shared) = &self.state.shared {
            let attempt =
                tokio::time::timeout(self.timeout, shared.acquire_shared(counters, demand));
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

fn rate_counters(plan: &mut Builder, name: &str, rule: &RateLimitRule, subject: &str) {
    let (name, subject): (Arc<str>, Arc<str>) = (name.into(), subject.into());
    let mut push = |suffix: &str, kind: CounterKind, meta: MetaKind| {
        plan.counters.push(Counter {
            key: format!("{suffix}|{name}|{subject}").into(),
            kind,
        });
        plan.metas.push(CounterMeta {
            rule: name.clone(),
            scope: rule.scope,
            subject: subject.clone(),
            kind: meta,
        });
    };
    if let Some(limit) = rule.requests_per_second {
        let kind = CounterKind::Requests {
            limit,
            window_ms: 1000,
        };
        push("rps", kind, MetaKind::Requests);
    }
    if let Some(limit) = rule.requests_per_minute {
        let kind = CounterKind::Requests {
            limit,
            window_ms: 60_000,
        };
        push("rpm", kind, MetaKind::Requests);
    }
    if let Some(limit) = rule.tokens_per_minute {
        let kind = CounterKind::Tokens {
            limit,
            window_ms: 60_000,
        };
        push("tpm", kind, MetaKind::Tokens);
    }
    if let Some(limit) = rule.concurrent {
        let kind = CounterKind::Concurrent {
            limit,
            lease_ms: LEASE_MS,
        };
        push("conc", kind, MetaKind::Concurrent);
    }
}

/// The counter of a budget in its period at `now`, living a grace period past the period's end
/// (so that a late settlement still finds it); its `seed` is left for [`Limiter::instantiate`].
fn budget_counter(
    plan: &mut Builder,
    name: &str,
    rule: &BudgetRule,
    subject: String,
    now: i64,
    downgraded: bool,
) {
    let bounds = period::bounds(rule.period, now);
    let enforce = match rule.action {
        BudgetAction::Block => true,
        BudgetAction::Downgrade => !downgraded,
        BudgetAction::Alert => false,
    };
    plan.from_ms = plan.from_ms.max(bounds.start_ms);
    plan.until_ms = plan.until_ms.min(bounds.end_ms.unwrap_or(i64::MAX));
    plan.budgets.push(CachedBudget {
        index: plan.counters.len(),
        start_ms: bounds.start_ms,
        seeded: AtomicBool::new(false),
    });
    plan.counters.push(Counter {
        key: format!("budget|{name}|{subject}|{}", bounds.id).into(),
        kind: CounterKind::Budget {
            limit: rule.limit.0,
            enforce,
            seed: 0,
            expires_at_ms: bounds
                .end_ms
                .map_or(0, |end| u64::try_from(end).unwrap_or(0) + BUDGET_GRACE_MS),
        },
    });
    plan.metas.push(CounterMeta {
        rule: name.into(),
        scope: rule.scope,
        subject: subject.into(),
        kind: MetaKind::Budget {
            period: rule.period.as_str(),
            resets_ms: bounds.end_ms,
            action: rule.action,
            downgrade_to: rule.downgrade_to.clone(),
            thresholds: rule.alert_at.as_slice().into(),
        },
    });
}

fn refusal(
    counter: &Counter,
    meta: &CounterMeta,
    retry_after_ms: u64,
    downgraded: bool,
) -> Refusal {
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
                rule: meta.rule.to_string(),
                what: meta.what(&counter.kind),
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
                rule: meta.rule.to_string(),
                what: meta.what(&counter.kind),
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
        let mut plan = Builder::new();
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
                budget_counter(&mut plan, name, rule, subject, now, false);
            }
        }
        if plan.counters.is_empty() {
            return Ok(Vec::new());
        }
        let plan = self.instantiate(&plan.finish()).await;
        let states = report_backend(&self.state).peek(&plan.counters).await?;
        Ok(plan
            .counters
            .iter()
            .zip(plan.metas.iter())
            .zip(states)
            .map(|((counter, meta), state)| report(counter, meta, state))
            .collect())
    }
}

fn report(counter: &Counter, meta: &CounterMeta, state: super::CounterState) -> LimitReport {
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
        rule: meta.rule.to_string(),
        scope: meta.scope,
        subject: meta.subject.to_string(),
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
