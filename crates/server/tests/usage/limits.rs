//! Rate limits on one instance (counters in memory): a requests-per-minute limit admits exactly
//! its limit out of a crowd of concurrent clients and says so in the `x-ratelimit-*` headers; a
//! tokens-per-minute limit counts the tokens really used; a concurrency limit holds at most its
//! limit in flight; and each scope (key, app, team, org, alias) shares a counter between exactly
//! the callers it should.

use super::kit::{clear_of_minute_boundary, minute_now, Db, Gw, Key, Reply, ADMIN};
use futures::future::join_all;
use std::collections::BTreeSet;
use std::time::Duration;
use switchboard_testkit::{MockKind, MockProvider, Reply as MockReply};

/// Models on the built-in mock plus, when given, `m-openai` on an OpenAI mock; then `rules`.
fn config(openai: Option<&MockProvider>, rules: &str) -> String {
    let mut providers = "providers:\n  mock: { type: mock }\n".to_owned();
    let mut models = "models:\n  m-x: { targets: [ { provider: mock, model: echo } ] }\n  \
                      m-y: { targets: [ { provider: mock, model: echo } ] }\n"
        .to_owned();
    if let Some(openai) = openai {
        providers.push_str(&format!(
            "  openai: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n",
            openai.base_url()
        ));
        models.push_str("  m-openai: { targets: [ { provider: openai, model: gpt-4o } ] }\n");
    }
    format!("{providers}{models}rate_limits:\n{rules}")
}

/// Polls a real counter (no fixed sleep decides anything): true once `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..2000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

fn header_u64(reply: &Reply, name: &str) -> u64 {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", reply.headers))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_per_minute_admits_exactly_the_limit_of_a_concurrent_crowd() {
    let db = Db::sqlite();
    let rules = "  - { name: rpm-key, scope: key, requests_per_minute: 20 }\n";
    let gw = Gw::start(&db, &config(None, rules)).await;
    gw.seed_team("acme", "research", false).await;
    let key = gw.key("acme", "research").await;
    clear_of_minute_boundary().await;
    let window = minute_now();
    let replies = join_all((0..60).map(|_| gw.chat(&key.secret, "m-x"))).await;
    assert_eq!(window, minute_now(), "the burst stayed in one window");
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 20, "exactly the limit is admitted");
    for refused in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(refused.status, 429, "{}", refused.text);
        assert_eq!(refused.code(), "rate_limit_exceeded");
        assert!(refused.message().contains("rpm-key"), "{}", refused.text);
        let wait = header_u64(refused, "retry-after");
        assert!((1..=60).contains(&wait), "retry-after {wait}");
    }
    // Each admission saw its own count: the remaining numbers are 19, 18, ..., 0.
    let remaining: BTreeSet<u64> = ok
        .iter()
        .map(|r| {
            assert_eq!(header_u64(r, "x-ratelimit-limit-requests"), 20);
            assert!(r.header("x-ratelimit-reset-requests").is_some());
            header_u64(r, "x-ratelimit-remaining-requests")
        })
        .collect();
    assert_eq!(remaining, (0..20).collect::<BTreeSet<u64>>());
    gw.wait_records(60).await;
    gw.server.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_per_minute_counts_the_tokens_really_used() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let db = Db::sqlite();
    let rules = "  - { name: tpm-alias, scope: alias, match: { alias: m-openai }, tokens_per_minute: 100 }\n";
    let gw = Gw::start(&db, &config(Some(&openai), rules)).await;
    clear_of_minute_boundary().await;
    // The mock's echo reports 10 input and 5 output tokens: 15 per request once settled.
    let mut estimate = None;
    let mut admitted = 0u64;
    let refused = loop {
        let reply = gw.chat(ADMIN, "m-openai").await;
        if reply.status != 200 {
            break reply;
        }
        assert_eq!(header_u64(&reply, "x-ratelimit-limit-tokens"), 100);
        let remaining = header_u64(&reply, "x-ratelimit-remaining-tokens");
        // Admission takes the estimated input; the settlement replaces it with the actual 15.
        let est = *estimate.get_or_insert(100 - remaining);
        assert_eq!(remaining, 100 - 15 * admitted - est, "{:?}", reply.headers);
        admitted += 1;
        gw.settled().await;
        assert!(admitted < 20, "never refused");
    };
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.code(), "rate_limit_exceeded");
    assert!(
        refused.message().contains("tokens per minute"),
        "{}",
        refused.text
    );
    // Admitted while the tokens used plus this request's estimate fit in 100.
    let est = estimate.unwrap();
    assert_eq!(admitted, (100 - est) / 15 + 1, "estimate {est}");
    gw.server.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrency_limit_holds_at_most_its_limit_in_flight() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let db = Db::sqlite();
    let rules = "  - { name: conc, scope: alias, match: { alias: m-openai }, concurrent: 3 }\n";
    let gw = std::sync::Arc::new(Gw::start(&db, &config(Some(&openai), rules)).await);
    for _ in 0..3 {
        openai.enqueue(MockReply::Hang);
    }
    let held: Vec<_> = (0..3)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { gw.chat(ADMIN, "m-openai").await })
        })
        .collect();
    // Three requests are upstream and hanging: the limit is full.
    until("three hanging upstream requests", || {
        openai.open_streams() == 3
    })
    .await;
    let replies = join_all((0..7).map(|_| gw.chat(ADMIN, "m-openai"))).await;
    for reply in &replies {
        assert_eq!(reply.status, 429, "{}", reply.text);
        assert_eq!(reply.code(), "rate_limit_exceeded");
        assert!(reply.message().contains("concurrent"), "{}", reply.text);
    }
    assert_eq!(
        openai.request_count(),
        3,
        "no refused request went upstream"
    );
    // The three clients leave: their slots come back once they are recorded and settled.
    for task in &held {
        task.abort();
    }
    assert!(openai.wait_for_cancelled(3, Duration::from_secs(30)).await);
    gw.wait_records(10).await;
    gw.settled().await;
    let reply = gw.chat(ADMIN, "m-openai").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let cancelled = held.len();
    gw.wait_records(11).await;
    let totals = gw
        .server
        .runtime
        .store
        .usage_totals(&Default::default(), None)
        .await
        .unwrap();
    assert_eq!(totals[0].requests, 11);
    assert_eq!(totals[0].errors, 7 + i64::try_from(cancelled).unwrap());
    let gw = std::sync::Arc::into_inner(gw).expect("the spawned clients are gone");
    gw.server.shutdown().await;
    db.drop().await;
}

/// Org `s1` with teams `a` (apps `a-app` and `a-app2`) and `b`; org `s2` with team `c`.
struct Callers {
    a1: Key,
    a2: Key,
    a_other_app: Key,
    b1: Key,
    c1: Key,
}

async fn callers(gw: &Gw) -> Callers {
    gw.seed_team("s1", "a", false).await;
    gw.admin(
        "/orgs/s1/teams/a/apps",
        serde_json::json!({"name": "a-app2"}),
        201,
    )
    .await;
    gw.seed_team("s1", "b", true).await;
    gw.seed_team("s2", "c", false).await;
    let body = serde_json::json!({"team": "a", "app": "a-app2", "name": "other app"});
    let created = gw.admin("/orgs/s1/keys", body, 201).await;
    Callers {
        a1: gw.key("s1", "a").await,
        a2: gw.key("s1", "a").await,
        a_other_app: Key {
            id: created["id"].as_str().unwrap().to_owned(),
            secret: created["secret"].as_str().unwrap().to_owned(),
        },
        b1: gw.key("s1", "b").await,
        c1: gw.key("s2", "c").await,
    }
}

/// With a limit of two requests a minute per `scope`: `first` and `second` call once each,
/// then `first` is refused when they share the counter; `apart` still gets its two.
async fn scope_case(scope: &str, share: bool, pick: impl Fn(&Callers) -> [&Key; 3]) {
    let db = Db::sqlite();
    let rules = format!("  - {{ name: per-{scope}, scope: {scope}, requests_per_minute: 2 }}\n");
    let gw = Gw::start(&db, &config(None, &rules)).await;
    let callers = callers(&gw).await;
    let [first, second, apart] = pick(&callers);
    clear_of_minute_boundary().await;
    assert_eq!(gw.chat(&first.secret, "m-x").await.status, 200);
    assert_eq!(gw.chat(&second.secret, "m-x").await.status, 200);
    let third = gw.chat(&first.secret, "m-x").await;
    let expected = if share { 429 } else { 200 };
    assert_eq!(third.status, expected, "{scope}: {}", third.text);
    if share {
        assert!(
            third.message().contains(&format!("per-{scope}")),
            "{}",
            third.text
        );
    }
    assert_eq!(gw.chat(&apart.secret, "m-x").await.status, 200, "{scope}");
    assert_eq!(gw.chat(&apart.secret, "m-x").await.status, 200, "{scope}");
    let refused = gw.chat(&apart.secret, "m-x").await;
    assert_eq!(refused.status, 429, "{scope}: {}", refused.text);
    gw.wait_records(6).await;
    let records = gw
        .server
        .runtime
        .store
        .usage_totals(&Default::default(), None)
        .await
        .unwrap();
    assert_eq!(records[0].requests, 6);
    gw.server.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_is_per_key() {
    // Two keys of one app do not share; a key of another team counts apart.
    scope_case("key", false, |c| [&c.a1, &c.a2, &c.b1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_limit_is_shared_by_the_apps_keys() {
    scope_case("app", true, |c| [&c.a1, &c.a2, &c.a_other_app]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_limit_is_shared_by_the_teams_keys_not_by_other_teams() {
    scope_case("team", true, |c| [&c.a1, &c.a_other_app, &c.b1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_limit_is_shared_by_its_teams_not_by_other_orgs() {
    scope_case("org", true, |c| [&c.a1, &c.b1, &c.c1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alias_limit_is_shared_by_every_caller_of_the_alias() {
    let db = Db::sqlite();
    let rules =
        "  - { name: per-alias, scope: alias, match: { alias: m-x }, requests_per_minute: 2 }\n";
    let gw = Gw::start(&db, &config(None, rules)).await;
    let callers = callers(&gw).await;
    clear_of_minute_boundary().await;
    assert_eq!(gw.chat(&callers.a1.secret, "m-x").await.status, 200);
    assert_eq!(gw.chat(&callers.c1.secret, "m-x").await.status, 200);
    let refused = gw.chat(ADMIN, "m-x").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    // Another alias is not limited.
    for _ in 0..3 {
        assert_eq!(gw.chat(&callers.a1.secret, "m-y").await.status, 200);
    }
    gw.wait_records(6).await;
    let rec = gw
        .server
        .runtime
        .store
        .usage_totals(&Default::default(), None)
        .await
        .unwrap();
    assert_eq!((rec[0].requests, rec[0].errors), (6, 1));
    gw.server.shutdown().await;
    db.drop().await;
}
