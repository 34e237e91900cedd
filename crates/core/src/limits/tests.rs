//! The limiter against the in-memory backend: which rules match which callers, all-or-nothing
//! admission, the errors and headers it produces, downgrades, settlement and budget alerts;
//! and the config sections it reads.

use super::*;
use crate::auth::grant::KeyGrant;
use crate::auth::Principal;
use crate::config::{load_str, Config};
use crate::error::GatewayError;
use std::collections::BTreeMap;
use std::sync::Arc;

const BASE: &str = "providers:\n  p: { type: mock }\nmodels:\n  m: { targets: [ { provider: p, model: x } ] }\n  cheap: { targets: [ { provider: p, model: y } ] }\n";

fn config(extra: &str) -> Config {
    load_str("t.yaml", &format!("{BASE}{extra}"), &|_| None).unwrap()
}

fn problems(extra: &str) -> String {
    load_str("t.yaml", &format!("{BASE}{extra}"), &|_| None)
        .unwrap_err()
        .to_string()
}

fn grant(key: &str, team: &str) -> Principal {
    Principal::Key(Arc::new(KeyGrant {
        key_id: key.into(),
        prefix: "sk-sb-x".into(),
        org_id: "o1".into(),
        org: "acme".into(),
        team_id: Some("t1".into()),
        team: Some(team.into()),
        app_id: Some("a1".into()),
        app: Some("nb".into()),
        user_id: None,
        models: None,
        apis: None,
        expires_at_ms: None,
        subscriptions: BTreeMap::new(),
        metadata: serde_json::Map::new(),
    }))
}

fn limiter(extra: &str) -> Limiter {
    let state = LimitState::new(None, None, reqwest::Client::new());
    Limiter::new(&config(extra), state)
}

async fn admit(
    l: &Limiter,
    who: &Principal,
    alias: &str,
    tokens: u64,
    cost: i64,
) -> Result<Admission, Refusal> {
    let plan = l.plan(&Who::of(who), alias, false).await;
    // A fresh request id each time: a concurrency lease is per request.
    let id = uuid_like();
    let demand = Demand {
        request_id: &id,
        tokens,
        cost,
    };
    l.admit(plan, &demand, false).await
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("req-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[test]
fn rules_parse_and_bad_ones_are_named() {
    let c = config(
        "rate_limits:\n  - { scope: team, match: { org: acme, team: research }, requests_per_minute: 600, tokens_per_minute: 200000, concurrent: 20 }\n  - { scope: key, requests_per_second: 5 }\nbudgets:\n  - { scope: team, match: { org: acme, team: research }, period: month, usd: 500, action: block, alert_at: [0.5, 0.8, 1.0] }\n  - { name: cheapen, scope: org, period: day, usd: \"12.50\", action: downgrade, downgrade_to: cheap }\n",
    );
    assert_eq!(c.rate_limits.len(), 2);
    assert_eq!(c.budgets[0].limit.0, 500_000_000);
    assert_eq!(c.budgets[0].alert_at, vec![50, 80, 100]);
    assert_eq!(c.budgets[1].limit.0, 12_500_000);

    let p = problems("rate_limits:\n  - { scope: key }\n  - { scope: galaxy, requests_per_second: 1 }\n  - { scope: key, requests_per_minute: 0 }\n");
    assert!(p.contains("rate_limits[0]: sets no limit"), "{p}");
    assert!(p.contains("rate_limits[1]"), "{p}");
    assert!(
        p.contains("rate_limits[2].requests_per_minute: must be at least 1"),
        "{p}"
    );
    let p = problems("budgets:\n  - { scope: team, match: { team: x }, period: month, usd: 5 }\n  - { scope: org, period: day, usd: 5, action: downgrade }\n  - { scope: alias, period: day, usd: -1 }\n  - { scope: org, period: day, usd: 5, alert_at: [1.5] }\n  - { scope: org, period: year, usd: 5 }\n");
    assert!(
        p.contains("budgets[0].match.team: a team is named within its org"),
        "{p}"
    );
    assert!(p.contains("budgets[1].downgrade_to"), "{p}");
    assert!(p.contains("budgets[2].usd"), "{p}");
    assert!(p.contains("budgets[3].alert_at"), "{p}");
    assert!(p.contains("budgets[4].period"), "{p}");
    let p = problems("rate_limits:\n  - { scope: key, requests_per_second: 1 }\n  - { scope: key, requests_per_second: 2 }\n");
    assert!(p.contains("already named `key`"), "{p}");
    let p = problems(
        "rate_limits:\n  - { scope: target, match: { org: acme }, requests_per_second: 1 }\n",
    );
    assert!(p.contains("match only `target` and `alias`"), "{p}");
}

#[tokio::test]
async fn a_team_limit_is_shared_by_its_keys_and_not_by_other_teams() {
    let l = limiter("rate_limits:\n  - { scope: team, requests_per_minute: 2 }\n");
    let (a, b, other) = (
        grant("k1", "research"),
        grant("k2", "research"),
        grant("k3", "sales"),
    );
    let _h1 = admit(&l, &a, "m", 0, 0).await.unwrap();
    let h2 = admit(&l, &b, "m", 0, 0).await.unwrap();
    let headers = h2.headers().requests.unwrap();
    assert_eq!((headers.limit, headers.remaining), (2, 0));
    match admit(&l, &a, "m", 0, 0).await {
        Err(Refusal::Error(GatewayError::RateLimited {
            rule,
            what,
            retry_after,
        })) => {
            assert_eq!(rule, "team");
            assert!(
                what.contains("2 requests per minute for team acme/research"),
                "{what}"
            );
            assert!(retry_after.is_some());
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    admit(&l, &other, "m", 0, 0).await.unwrap();
    // The admin key has no team: team rules do not apply to it.
    admit(&l, &Principal::Admin, "m", 0, 0).await.unwrap();
}

#[tokio::test]
async fn a_refusal_takes_nothing_from_the_other_counters() {
    let l = limiter("rate_limits:\n  - { scope: key, requests_per_minute: 10 }\n  - { scope: alias, match: { alias: m }, concurrent: 1 }\n");
    let who = grant("k1", "research");
    let held = admit(&l, &who, "m", 0, 0).await.unwrap();
    for _ in 0..5 {
        assert!(admit(&l, &who, "m", 0, 0).await.is_err());
    }
    drop(held);
    l.state().flush().await;
    let report = l.report(&Who::of(&who)).await.unwrap();
    let rpm = report
        .iter()
        .find(|r| r.limit_kind == "requests_per_minute")
        .unwrap();
    assert_eq!(rpm.used, 1, "refused requests must not count: {report:?}");
}

#[tokio::test]
async fn tokens_are_reserved_then_settled_with_the_actual_total() {
    let l = limiter("rate_limits:\n  - { scope: key, tokens_per_minute: 1000 }\n");
    let who = grant("k1", "research");
    let mut held = admit(&l, &who, "m", 400, 0).await.unwrap();
    assert_eq!(held.headers().tokens.unwrap().remaining, 600);
    held.record(100, 0);
    drop(held);
    l.state().flush().await;
    let report = l.report(&Who::of(&who)).await.unwrap();
    assert_eq!(report[0].used, 100);
    assert!(matches!(
        admit(&l, &who, "m", 901, 0).await,
        Err(Refusal::Error(GatewayError::RateLimited { .. }))
    ));
}

#[tokio::test]
async fn a_spent_budget_blocks_with_its_reset_or_downgrades() {
    let l = limiter("budgets:\n  - { name: small, scope: key, period: month, usd: 0.001 }\n");
    let who = grant("k1", "research");
    let mut held = admit(&l, &who, "m", 0, 800).await.unwrap();
    // A second request whose worst case does not fit beside the first's reservation.
    match admit(&l, &who, "m", 0, 300).await {
        Err(Refusal::Error(GatewayError::BudgetExceeded {
            rule,
            what,
            resets,
            retry_after,
        })) => {
            assert_eq!(rule, "small");
            assert!(what.contains("$0.001 per month for key k1"), "{what}");
            assert!(resets.unwrap().ends_with("-01T00:00:00Z"));
            assert!(retry_after.is_some());
        }
        other => panic!("expected a budget refusal, got {other:?}"),
    }
    held.record(10, 500);
    drop(held);
    l.state().flush().await;
    admit(&l, &who, "m", 0, 500).await.unwrap();

    let l = limiter("budgets:\n  - { scope: key, period: day, usd: 0.000001, action: downgrade, downgrade_to: cheap }\n");
    match admit(&l, &who, "m", 0, 2).await {
        Err(Refusal::Downgrade(alias)) => assert_eq!(alias, "cheap"),
        other => panic!("expected a downgrade, got {other:?}"),
    }
    // Once downgraded the budget only counts.
    let plan = l.plan(&Who::of(&who), "cheap", true).await;
    let demand = Demand {
        request_id: "r",
        tokens: 0,
        cost: 2,
    };
    l.admit(plan, &demand, true).await.unwrap();
}

/// Recorded spend that cannot be read the first time, then is 700 micro-dollars.
#[derive(Debug, Default)]
struct FlakySpend {
    reads: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl SpendSource for FlakySpend {
    async fn spend_since(&self, _: Scope, _: &str, _: i64) -> Result<i64, String> {
        use std::sync::atomic::Ordering;
        match self.reads.fetch_add(1, Ordering::SeqCst) {
            0 => Err("storage is down".into()),
            _ => Ok(700),
        }
    }
}

#[tokio::test]
async fn a_kept_plan_seeds_each_budget_once_and_retries_a_failed_read() {
    use std::sync::atomic::Ordering;
    let spend = Arc::new(FlakySpend::default());
    let state = LimitState::new(None, Some(spend.clone()), reqwest::Client::new());
    let l = Limiter::new(
        &config("budgets:\n  - { scope: key, period: month, usd: 0.001 }\n"),
        state,
    );
    let plan = |key: &'static str| {
        let who = grant(key, "research");
        let l = &l;
        async move { l.plan(&Who::of(&who), "m", false).await }
    };
    let budget = |plan: &Plan| match plan.counters[0].kind {
        CounterKind::Budget {
            seed,
            expires_at_ms,
            ..
        } => (plan.counters[0].key.clone(), seed, expires_at_ms),
        other => panic!("expected a budget, got {other:?}"),
    };
    // The read fails: this request counts from zero, the next one reads again.
    let (key, seed, expires_at) = budget(&plan("k1").await);
    assert_eq!(seed, 0);
    let period_end = super::period::bounds(Period::Month, super::now_ms())
        .end_ms
        .unwrap();
    assert_eq!(
        expires_at,
        u64::try_from(period_end).unwrap() + 86_400_000,
        "a budget outlives its period by a day"
    );
    assert_eq!(budget(&plan("k1").await).1, 700);
    // Seeded: the kept plan is not read again, and names the same counter.
    let (again, seed, _) = budget(&plan("k1").await);
    assert_eq!((again, seed), (key.clone(), 0));
    assert_eq!(spend.reads.load(Ordering::SeqCst), 2);
    // Another key has its own counter, seeded on its own.
    let (other, seed, _) = budget(&plan("k2").await);
    assert_ne!(other, key);
    assert_eq!(seed, 700);
    assert_eq!(spend.reads.load(Ordering::SeqCst), 3);
}

#[test]
fn each_threshold_is_crossed_once() {
    let alerting = vec![state::BudgetAlerting {
        entry: 0,
        budget: "b".into(),
        scope: Scope::Team,
        subject: "acme/research".into(),
        period: "month",
        limit: 1000,
        thresholds: vec![50, 80, 100].into(),
    }];
    let change = |before, after| vec![Some(SpendChange { before, after })];
    let percents = |before, after| -> Vec<u32> {
        state::crossings(&alerting, &change(before, after))
            .iter()
            .map(|c| c.percent)
            .collect()
    };
    assert_eq!(percents(0, 499), Vec::<u32>::new());
    assert_eq!(percents(499, 500), vec![50]);
    assert_eq!(percents(500, 900), vec![80]);
    assert_eq!(percents(100, 1200), vec![50, 80, 100]);
    assert_eq!(percents(1000, 1500), Vec::<u32>::new());
}

#[tokio::test]
async fn target_rules_apply_per_upstream_whoever_calls() {
    let l = limiter("rate_limits:\n  - { scope: target, match: { target: p/x }, concurrent: 1 }\n");
    assert!(l.limits_targets());
    assert!(l.target_plan("m", "p/y").is_empty());
    let plan = l.target_plan("m", "p/x");
    let demand = Demand {
        request_id: "r1",
        tokens: 0,
        cost: 0,
    };
    let _held = l.admit(plan, &demand, true).await.unwrap();
    let other = Demand {
        request_id: "r2",
        ..demand
    };
    let again = l.admit(l.target_plan("m", "p/x"), &other, true).await;
    assert!(matches!(
        again,
        Err(Refusal::Error(GatewayError::RateLimited { .. }))
    ));
}
