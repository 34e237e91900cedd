//! Alert rules fire and resolve: the evaluator is driven with `evaluate_once(now)` at chosen
//! times (its own schedule is an hour, so it never runs in those tests; one test sets it to a
//! second and checks that it runs, delivers and deduplicates on its own); each transition is
//! delivered once to the webhook receiver and shown by `GET /alerts`; a rule that stays firing
//! sends nothing more; with Redis, a cluster (and a restarted instance) sends each transition
//! once.

use super::admin_kit::{both, Db, ADMIN};
use super::analytics_kit::{chat, get, now_ms, owner, start, two_orgs, wait_written};
use switchboard::alerts::AlertState;

both!(alert_rules_fire_once_and_resolve);

const ALERTS: &str = "\
budgets:
  - { name: acme-month, scope: org, match: { org: acme }, period: month, usd: 0.000010, action: alert, alert_at: [1.0] }
alerts:
  interval_s: 3600
  webhook: \"{hook}\"
  rules:
    - { name: broken-errors, kind: error_rate, window_s: 300, threshold: 0.5, min_requests: 2, match: { alias: broken } }
    - { name: acme-latency, kind: latency, percentile: p99, window_s: 300, threshold: 0, match: { org: acme } }
    - { name: acme-spend, kind: spend, window_s: 300, threshold: 0.000001, match: { org: acme, team: red } }
    - { name: acme-budget, kind: budget, budget: acme-month, threshold: 0.5 }
    - { name: quiet, kind: error_rate, threshold: 0.5, match: { alias: open } }
";

async fn alert_rules_fire_once_and_resolve(db: Db) {
    let env = start(db, ALERTS).await;
    let (acme, _) = two_orgs(&env).await;
    let evaluator = &env.server.runtime.alerts;
    let t0 = now_ms();
    // Nothing happened yet: nothing fires.
    assert!(evaluator.evaluate_once(t0).await.is_empty());

    for i in 0..3 {
        assert_ne!(
            chat(&env, &acme, "broken", &format!("b-{i}"), None).await,
            200
        );
    }
    for i in 0..4 {
        assert_eq!(
            chat(&env, &acme, "open", &format!("o-{i}"), None).await,
            200
        );
    }
    wait_written(&env, 7).await;
    let t1 = now_ms();
    let fired = evaluator.evaluate_once(t1).await;
    let names: Vec<&str> = fired.iter().map(|t| t.rule.name.as_str()).collect();
    assert_eq!(
        names,
        ["broken-errors", "acme-latency", "acme-spend", "acme-budget"],
        "{fired:#?}"
    );
    assert!(fired.iter().all(|t| t.state == AlertState::Firing));
    let hooks = env.side.wait_hooks(4).await;
    assert!(
        hooks.iter().all(|h| h["type"] == "alert.firing"),
        "{hooks:#?}"
    );
    let budget = hooks.iter().find(|h| h["rule"] == "acme-budget").unwrap();
    assert_eq!(budget["subject"], "acme");
    assert_eq!(
        hooks.iter().find(|h| h["rule"] == "broken-errors").unwrap()["value"],
        1.0
    );

    // Still firing a moment later: nothing more is sent.
    assert!(evaluator.evaluate_once(t1 + 1_000).await.is_empty());
    assert_eq!(env.side.hooks().len(), 4);

    let (status, list) = get(&env, ADMIN, "/alerts").await;
    assert_eq!(status, 200, "{list}");
    let rules = list["data"].as_array().unwrap();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0]["name"], "broken-errors");
    assert_eq!(rules[0]["status"]["state"], "firing");
    assert_eq!(rules[4]["status"]["state"], "ok");
    // An org owner sees the rules matching their organisation only.
    let (status, own) = get(&env, &owner(&env, "acme"), "/alerts").await;
    assert_eq!(status, 200, "{own}");
    let own: Vec<&str> = own["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(own, ["acme-latency", "acme-spend"]);
    let (_, other) = get(&env, &owner(&env, "globex"), "/alerts").await;
    assert!(other["data"].as_array().unwrap().is_empty());

    // Ten minutes later the windows hold nothing: the rollup rules resolve, once each; the
    // budget's month still holds the spend, so it keeps firing.
    let later = t1 + 600_000;
    let resolved = evaluator.evaluate_once(later).await;
    let names: Vec<&str> = resolved.iter().map(|t| t.rule.name.as_str()).collect();
    assert_eq!(names, ["broken-errors", "acme-latency", "acme-spend"]);
    assert!(resolved.iter().all(|t| t.state == AlertState::Ok));
    let hooks = env.side.wait_hooks(7).await;
    assert_eq!(
        hooks
            .iter()
            .filter(|h| h["type"] == "alert.resolved")
            .count(),
        3
    );
    assert!(evaluator.evaluate_once(later + 1_000).await.is_empty());
    assert_eq!(env.side.hooks().len(), 7);
    env.server.shutdown().await;
}

/// Two gateways on one database and one Redis evaluate the same rule: each transition is sent
/// once in all, and a third instance started while the rule fires (a restart) sends nothing
/// until the rule resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_sends_each_transition_once() {
    let Ok(redis) = std::env::var("SWITCHBOARD_TEST_REDIS") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED (a_cluster_sends_each_transition_once): set SWITCHBOARD_TEST_REDIS ***\n"
        );
        return;
    };
    let rule = format!("errs-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let extra = format!(
        "redis: \"{redis}\"\nalerts:\n  interval_s: 3600\n  webhook: \"{{hook}}\"\n  rules:\n    \
         - {{ name: {rule}, kind: error_rate, threshold: 0.5, match: {{ alias: broken }} }}\n"
    );
    let db = Db::sqlite();
    let first = start(db.clone(), &extra).await;
    let hook = format!("{}/hook", first.side.url);
    let second = start(db.clone(), &extra.replace("{hook}", &hook)).await;
    let (acme, _) = two_orgs(&first).await;
    for i in 0..2 {
        assert_ne!(
            chat(&first, &acme, "broken", &format!("b-{i}"), None).await,
            200
        );
    }
    wait_written(&first, 2).await;
    let now = now_ms();
    let a = first.server.runtime.alerts.evaluate_once(now).await;
    let b = second.server.runtime.alerts.evaluate_once(now).await;
    assert_eq!(a.len() + b.len(), 1, "one instance sends: {a:?} {b:?}");
    first.side.wait_hooks(1).await;

    // A restarted instance finds the rule already firing: nothing to send.
    let third = start(db.clone(), &extra.replace("{hook}", &hook)).await;
    assert!(third
        .server
        .runtime
        .alerts
        .evaluate_once(now + 1_000)
        .await
        .is_empty());
    let (_, list) = get(&third, ADMIN, "/alerts").await;
    assert_eq!(list["data"][0]["status"]["state"], "firing");

    // Resolution: sent once, whoever sees it first.
    let later = now + 600_000;
    let mut resolved = 0;
    for env in [&second, &first, &third] {
        resolved += env.server.runtime.alerts.evaluate_once(later).await.len();
    }
    assert_eq!(resolved, 1);
    let hooks = first.side.wait_hooks(2).await;
    assert_eq!(hooks.len(), 2, "{hooks:#?}");
    assert_eq!(hooks[1]["type"], "alert.resolved");
    for env in [third, second, first] {
        env.server.shutdown().await;
    }
}

/// A schedule of one second, so that the evaluator runs on its own.
const SCHEDULED: &str = "\
alerts:
  interval_s: 1
  webhook: \"{hook}\"
  rules:
    - { name: broken-scheduled, kind: error_rate, window_s: 300, threshold: 0.5, min_requests: 2, match: { alias: broken } }
";

/// Polls `check` until it gives a value; panics naming `what` after 30 s.
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Nothing calls `evaluate_once` here: the evaluator's own schedule (`Evaluator::start`, run
/// by the server) must measure the rule, deliver its firing once, and keep evaluating
/// without delivering it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_evaluates_and_delivers_on_its_own() {
    let env = start(Db::sqlite(), SCHEDULED).await;
    let (acme, _) = two_orgs(&env).await;
    for i in 0..3 {
        assert_ne!(
            chat(&env, &acme, "broken", &format!("s-{i}"), None).await,
            200
        );
    }
    wait_written(&env, 3).await;
    let ours = |hooks: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        hooks
            .into_iter()
            .filter(|h| h["rule"] == "broken-scheduled")
            .collect()
    };
    let hook = poll("the scheduled firing", || {
        let hooks = ours(env.side.hooks());
        async move { hooks.into_iter().next() }
    })
    .await;
    assert_eq!(hook["type"], "alert.firing", "{hook}");
    let evaluator = &env.server.runtime.alerts;
    let last_evaluated = || async {
        let statuses = evaluator.statuses().await;
        let (_, status) = statuses
            .iter()
            .find(|(rule, _)| rule.name == "broken-scheduled")
            .expect("the rule has a status");
        assert_eq!(status.state, AlertState::Firing, "{status:?}");
        status.last_evaluated_ms.expect("evaluated")
    };
    // Two more scheduled evaluations: a delivery of the first of them would have arrived
    // before the second began (deliveries are awaited).
    let mut seen = last_evaluated().await;
    for _ in 0..2 {
        let before = seen;
        seen = poll("another scheduled evaluation", || async {
            let at = last_evaluated().await;
            (at > before).then_some(at)
        })
        .await;
    }
    assert_eq!(ours(env.side.hooks()).len(), 1, "{:?}", env.side.hooks());
    let (status, list) = get(&env, ADMIN, "/alerts").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"][0]["status"]["state"], "firing", "{list}");
    env.stop().await.drop().await;
}
