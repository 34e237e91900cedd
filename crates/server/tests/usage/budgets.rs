//! Budgets: a hard budget under 50 concurrent clients is never overspent (each call reserves
//! its worst case at admission, bounded by `max_tokens`), and refuses with 429
//! `budget_exceeded` naming the budget and its reset; a soft budget alerts once per threshold;
//! a downgrade budget serves the cheaper alias once spent. The hard case also runs on three
//! instances sharing Redis (`redis.rs`), through [`hard_budget`].

use super::kit::{unique, Db, Gw, Hooks, Key, Reply};
use futures::future::join_all;
use switchboard_core::usage::Outcome;
use switchboard_testkit::{MockKind, MockProvider};

/// What every call costs: the OpenAI mock's echo reports 10 input and 5 output tokens, at $100
/// and $200 per million: 10 x 100 + 5 x 200 = 2000 micro-dollars.
pub const CALL_COST: i64 = 2000;

/// Providers and models: `m-pricey` (gpt-4o at $100/$200 per million) and `m-cheap`
/// (gpt-4o-mini at $1/$1), both on the OpenAI mock; then `rest` (budgets, limits, redis).
pub fn config(openai: &MockProvider, rest: &str) -> String {
    format!(
        "providers:\n  openai: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n\
         models:\n\
         \x20 m-pricey: {{ targets: [ {{ provider: openai, model: gpt-4o }} ], price: {{ input_per_mtok: 100, output_per_mtok: 200 }} }}\n\
         \x20 m-cheap: {{ targets: [ {{ provider: openai, model: gpt-4o-mini }} ], price: {{ input_per_mtok: 1, output_per_mtok: 1 }} }}\n\
         {rest}",
        openai.base_url()
    )
}

/// `YYYY-MM-DD` of tomorrow (UTC): when a `period: day` budget resets.
fn tomorrow() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let days = i64::try_from(now.as_secs() / 86_400).unwrap() + 1;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// 50 concurrent clients of `key`, each calling `m-pricey` three times, spread over `gws`; the
/// budget `name` ($0.10 a day for team acme/research) must hold: the recorded spend never
/// exceeds it (each call's reservation covers its actual cost, so nothing in flight can push
/// it over), every refusal is `budget_exceeded` naming it, and every request is recorded.
pub async fn hard_budget(gws: &[Gw], key: &Key, name: &str) {
    const BUDGET: i64 = 100_000;
    const CLIENTS: usize = 50;
    const CALLS: usize = 3;
    let clients = (0..CLIENTS).map(|i| async move {
        let gw = &gws[i % gws.len()];
        let mut replies = Vec::new();
        for _ in 0..CALLS {
            let call = super::kit::Call {
                max_tokens: Some(20),
                ..super::kit::Call::new("m-pricey")
            };
            replies.push(gw.call(&key.secret, &call).await);
        }
        replies
    });
    let replies: Vec<Reply> = join_all(clients).await.into_iter().flatten().collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert!(ok > 0, "some calls fit in the budget");
    assert!(ok < CLIENTS * CALLS, "the budget ran out");
    for refused in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(refused.status, 429, "{}", refused.text);
        assert_eq!(refused.code(), "budget_exceeded");
        let message = refused.message();
        assert!(message.contains(&format!("`{name}`")), "{message}");
        assert!(message.contains("$0.1 per day"), "{message}");
        let reset = format!("resets at {}T00:00:00Z", tomorrow());
        assert!(message.contains(&reset), "{message} (expected {reset})");
        assert!(
            refused.header("retry-after").is_some(),
            "{:?}",
            refused.headers
        );
    }
    // Every request is recorded by the instance that served it.
    for (i, gw) in gws.iter().enumerate() {
        let sent = (0..CLIENTS).filter(|c| c % gws.len() == i).count() * CALLS;
        gw.wait_records(u64::try_from(sent).unwrap()).await;
        gw.settled().await;
    }
    let totals = gws[0]
        .server
        .runtime
        .store
        .usage_totals(&Default::default(), None)
        .await
        .unwrap();
    let spent = totals[0].cost_micros;
    assert_eq!(totals[0].requests, i64::try_from(CLIENTS * CALLS).unwrap());
    assert_eq!(
        spent,
        i64::try_from(ok).unwrap() * CALL_COST,
        "each call costs the same"
    );
    assert!(
        spent <= BUDGET,
        "spent {spent} of {BUDGET} with {ok} calls admitted"
    );
}

/// A budget rule of team acme/research.
pub fn team_budget(name: &str, usd: &str, extra: &str) -> String {
    format!(
        "budgets:\n  - {{ name: {name}, scope: team, match: {{ org: acme, team: research }}, \
         period: day, usd: {usd}{extra} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_budget_holds_against_fifty_concurrent_clients() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let db = Db::sqlite();
    let name = unique("hard");
    let gw = Gw::start(&db, &config(&openai, &team_budget(&name, "0.1", ""))).await;
    gw.seed_team("acme", "research", false).await;
    let key = gw.key("acme", "research").await;
    hard_budget(std::slice::from_ref(&gw), &key, &name).await;
    gw.server.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_soft_budget_alerts_once_per_threshold() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let hooks = Hooks::start().await;
    let db = Db::sqlite();
    let name = unique("soft");
    // $0.01 is five calls: the 50 % line falls in the third, 80 % in the fourth, 100 % in the
    // fifth; eight concurrent calls cross each once, four more cross nothing.
    let rest = format!(
        "{}limits: {{ alert_webhook: \"{}\" }}\n",
        team_budget(&name, "0.01", ", action: alert, alert_at: [0.5, 0.8, 1.0]"),
        hooks.url
    );
    let gw = Gw::start(&db, &config(&openai, &rest)).await;
    gw.seed_team("acme", "research", false).await;
    let key = gw.key("acme", "research").await;
    let replies = join_all((0..8).map(|_| gw.chat(&key.secret, "m-pricey"))).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    gw.settled().await;
    for _ in 0..4 {
        assert_eq!(
            gw.chat(&key.secret, "m-pricey").await.status,
            200,
            "alerts never refuse"
        );
        gw.settled().await;
    }
    let seen = hooks.seen();
    let mut percents: Vec<u64> = seen
        .iter()
        .map(|alert| {
            assert_eq!(alert["type"], "budget.threshold", "{alert}");
            assert_eq!(alert["budget"], name.as_str(), "{alert}");
            assert_eq!(alert["scope"], "team", "{alert}");
            assert_eq!(alert["subject"], "acme/research", "{alert}");
            assert_eq!(alert["limit_micros"], 10_000, "{alert}");
            alert["threshold_percent"].as_u64().unwrap()
        })
        .collect();
    percents.sort_unstable();
    assert_eq!(
        percents,
        [50, 80, 100],
        "each threshold exactly once: {seen:#?}"
    );
    gw.wait_records(12).await;
    gw.server.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spent_downgrade_budget_serves_the_cheaper_alias() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let db = Db::sqlite();
    let name = unique("down");
    let budget = team_budget(&name, "0.01", ", action: downgrade, downgrade_to: m-cheap");
    let gw = Gw::start(&db, &config(&openai, &budget)).await;
    gw.seed_team("acme", "research", false).await;
    let key = gw.key("acme", "research").await;
    let mut targets = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..8 {
        let call = super::kit::Call {
            max_tokens: Some(20),
            ..super::kit::Call::new("m-pricey")
        };
        let reply = gw.call(&key.secret, &call).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        targets.push(reply.header("x-switchboard-target").unwrap().to_owned());
        calls.push(call);
        // Each call's actual cost is counted before the next is admitted.
        gw.settled().await;
    }
    // A call reserves its worst case (its input plus 20 output tokens at $200 per million)
    // and is downgraded once that no longer fits: after at most five calls of 2000.
    let pricey = targets.iter().filter(|t| *t == "openai/gpt-4o").count();
    assert!((1..=5).contains(&pricey), "{targets:?}");
    assert!(
        targets[pricey..].iter().all(|t| t == "openai/gpt-4o-mini"),
        "once downgraded, always downgraded: {targets:?}"
    );
    assert_eq!(
        pricey, 3,
        "reservations of about 4800 fit three times: {targets:?}"
    );
    gw.wait_records(8).await;
    for (i, call) in calls.iter().enumerate() {
        let rec = gw.record(&call.request_id).await;
        assert_eq!(rec.alias, "m-pricey");
        assert_eq!(rec.outcome, Outcome::Ok);
        if i < pricey {
            assert_eq!((rec.served_alias, rec.cost.0), (None, CALL_COST));
        } else {
            assert_eq!(rec.served_alias.as_deref(), Some("m-cheap"), "{rec:?}");
            assert_eq!(rec.model.as_deref(), Some("gpt-4o-mini"));
            // 10 x 1 + 5 x 1 = 15 micro-dollars.
            assert_eq!(rec.cost.0, 15);
        }
    }
    gw.server.shutdown().await;
    db.drop().await;
}
