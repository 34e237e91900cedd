//! The call log: N requests of every kind (whole and streamed answers in both formats, a
//! client that leaves mid-stream, upstream failures, a retry) leave exactly N rows, each with
//! the route, user agent and client address of its request besides the billing data, its
//! attempts (target, status, latency) and the trace its client named.

use super::kit::{Call, Db, Format, Gw, ADMIN};
use std::time::Duration;
use switchboard_core::usage::{Outcome, UsageRecord};
use switchboard_testkit::{MockKind, MockProvider, Reply as MockReply};

async fn start(
    openai: &MockProvider,
    anthropic: &MockProvider,
    failing: &MockProvider,
    db: &Db,
) -> Gw {
    let body = format!(
        "providers:\n\
         \x20 openai: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n\
         \x20 failing: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n\
         \x20 anthropic: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-up }}\n\
         models:\n\
         \x20 m-openai: {{ targets: [ {{ provider: openai, model: gpt-4o }} ], price: {p} }}\n\
         \x20 m-failing: {{ targets: [ {{ provider: failing, model: gpt-4o-failing }} ], retry: {{ attempts: 2, backoff_ms: 1, max_backoff_ms: 1 }}, circuit: {{ failures: 100 }}, price: {p} }}\n\
         \x20 m-claude: {{ targets: [ {{ provider: anthropic, model: claude-sonnet-4-5 }} ], price: {p} }}\n",
        openai.base_url(),
        failing.base_url(),
        anthropic.base_url(),
        p = super::kit::PRICE,
    );
    Gw::start(db, &body).await
}

/// Sends `call` as the admin with a user agent naming it.
async fn send(gw: &Gw, call: &Call, agent: &str) -> reqwest::Response {
    send_traced(gw, call, agent, None).await
}

/// The trace of the retried call, as its client's W3C `traceparent` names it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// [`send`], with a `traceparent` header when given.
async fn send_traced(
    gw: &Gw,
    call: &Call,
    agent: &str,
    traceparent: Option<&str>,
) -> reqwest::Response {
    let mut req = gw
        .client
        .post(gw.url(call.path()))
        .header("x-request-id", &call.request_id)
        .header("user-agent", agent)
        .json(&call.body());
    if let Some(traceparent) = traceparent {
        req = req.header("traceparent", traceparent);
    }
    req = match call.format {
        Format::OpenAi => req.bearer_auth(ADMIN),
        Format::Anthropic => req
            .header("x-api-key", ADMIN)
            .header("anthropic-version", "2023-06-01"),
    };
    req.send().await.expect("request to the gateway")
}

/// What a row must say besides the usage.
struct Want {
    call: Call,
    agent: String,
    status: u16,
    outcome: Outcome,
    error_code: Option<&'static str>,
}

fn check(rec: &UsageRecord, want: &Want) {
    let d = &rec.details;
    assert_eq!(d.route.as_deref(), Some(want.call.path()), "{rec:#?}");
    assert_eq!(d.user_agent.as_deref(), Some(want.agent.as_str()));
    assert_eq!(d.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(rec.status, want.status, "{rec:#?}");
    assert_eq!(rec.outcome, want.outcome, "{rec:#?}");
    assert_eq!(rec.error_code.as_deref(), want.error_code, "{rec:#?}");
    assert_eq!(rec.alias, want.call.model);
    assert_eq!(rec.stream, want.call.stream);
    if want.outcome == Outcome::Ok {
        assert!(
            rec.usage.input_tokens > 0 && rec.usage.output_tokens > 0,
            "{rec:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_requests_of_every_kind_leave_n_rows_with_their_origin() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let anthropic = MockProvider::start(MockKind::Anthropic).await;
    let failing = MockProvider::start(MockKind::OpenAi).await;
    let db = Db::shared().await;
    let gw = start(&openai, &anthropic, &failing, &db).await;
    let mut wants = Vec::new();
    // Whole and streamed answers in both formats.
    for i in 0..8 {
        let format = if i % 2 == 0 {
            Format::OpenAi
        } else {
            Format::Anthropic
        };
        let model = if i % 4 < 2 { "m-openai" } else { "m-claude" };
        let call = Call {
            format,
            stream: i % 3 == 0,
            ..Call::new(model)
        };
        let agent = format!("log-test/{i} (\"quoted\")");
        let resp = send(&gw, &call, &agent).await;
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap();
        wants.push(Want {
            call,
            agent,
            status: 200,
            outcome: Outcome::Ok,
            error_code: None,
        });
    }
    // A retry that succeeds, then a failure after both attempts.
    failing.enqueue(MockReply::Error {
        status: 503,
        retry_after_secs: None,
    });
    let call = Call::new("m-failing");
    let traceparent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let resp = send_traced(&gw, &call, "retry", Some(&traceparent)).await;
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    wants.push(Want {
        call,
        agent: "retry".into(),
        status: 200,
        outcome: Outcome::Ok,
        error_code: None,
    });
    // Three attempts: the first and two retries.
    for _ in 0..3 {
        failing.enqueue(MockReply::Error {
            status: 503,
            retry_after_secs: None,
        });
    }
    let call = Call::new("m-failing");
    let resp = send(&gw, &call, "fails").await;
    assert_eq!(resp.status(), 502);
    let code = resp.json::<serde_json::Value>().await.unwrap()["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let code: &'static str = Box::leak(code.into_boxed_str());
    wants.push(Want {
        call,
        agent: "fails".into(),
        status: 502,
        outcome: Outcome::Error,
        error_code: Some(code),
    });
    // A client that leaves mid-stream.
    openai.enqueue(MockReply::SlowStream {
        chunks: 500,
        interval: Duration::from_millis(20),
    });
    let call = Call {
        stream: true,
        ..Call::new("m-openai")
    };
    let resp = send(&gw, &call, "leaver").await;
    super::kit::read_until_then_leave(resp, "tok1 ").await;
    wants.push(Want {
        call,
        agent: "leaver".into(),
        status: 499,
        outcome: Outcome::Cancelled,
        error_code: Some("client_closed"),
    });

    let n = wants.len() as u64;
    gw.wait_records(n).await;
    for want in &wants {
        let rec = gw.record(&want.call.request_id).await;
        check(&rec, want);
    }
    // The retried call: its two attempts in order, 503 then 200, on the failing target; and
    // the trace its client named.
    let rec = gw.record(&wants[8].call.request_id).await;
    assert_eq!(rec.attempts, 2);
    let attempts = &rec.details.attempts;
    assert_eq!(attempts.len(), 2, "{rec:#?}");
    let statuses: Vec<u16> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [503, 200], "{rec:#?}");
    for attempt in attempts {
        assert_eq!(attempt.target, "failing/gpt-4o-failing", "{rec:#?}");
        assert!(attempt.latency_ms <= rec.latency_ms, "{rec:#?}");
    }
    assert!(attempts[0].error_code.is_some(), "{rec:#?}");
    assert_eq!(attempts[1].error_code, None, "{rec:#?}");
    assert_eq!(rec.details.trace_id.as_deref(), Some(TRACE_ID), "{rec:#?}");
    // The call that failed after three attempts logs all three, each a 503.
    let rec = gw.record(&wants[9].call.request_id).await;
    let statuses: Vec<u16> = rec.details.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [503, 503, 503], "{rec:#?}");
    // A whole answer logs its one attempt on its target; a call without a traceparent is not
    // given the retried call's trace.
    let rec = gw.record(&wants[0].call.request_id).await;
    assert_eq!(rec.details.attempts.len(), 1, "{rec:#?}");
    assert_eq!(rec.details.attempts[0].target, "openai/gpt-4o");
    assert_eq!(rec.details.attempts[0].status, 200);
    assert_ne!(rec.details.trace_id.as_deref(), Some(TRACE_ID));
    // Exactly N rows, none twice.
    let totals = gw
        .server
        .runtime
        .store
        .usage_totals(&switchboard_store::UsageFilter::default(), None)
        .await
        .unwrap();
    assert_eq!(totals[0].requests, i64::try_from(n).unwrap());
    gw.server.shutdown().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_metadata_off_rows_keep_the_usage_record_only() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let db = Db::shared().await;
    let body = format!(
        "providers:\n\
         \x20 openai: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n\
         models:\n\
         \x20 m-openai: {{ targets: [ {{ provider: openai, model: gpt-4o }} ], price: {p}, retry: {{ attempts: 1, backoff_ms: 1, max_backoff_ms: 1 }} }}\n\
         logging: {{ metadata: false }}\n",
        openai.base_url(),
        p = super::kit::PRICE,
    );
    let gw = Gw::start(&db, &body).await;
    // A retried call (two attempts) that carries a traceparent: none of it is kept.
    openai.enqueue(MockReply::Error {
        status: 503,
        retry_after_secs: None,
    });
    let call = Call::new("m-openai");
    let resp = gw
        .client
        .post(gw.url(call.path()))
        .bearer_auth(ADMIN)
        .header("x-request-id", &call.request_id)
        .header("user-agent", "private-agent/1")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&call.body())
        .send()
        .await
        .expect("request to the gateway");
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    gw.wait_records(1).await;
    let rec = gw.record(&call.request_id).await;
    assert_eq!(
        rec.details,
        switchboard_core::usage::CallDetails::default(),
        "{rec:#?}"
    );
    // The usage record itself is whole.
    assert_eq!(rec.attempts, 2);
    assert_eq!(rec.outcome, Outcome::Ok);
    assert!(rec.usage.input_tokens > 0 && rec.usage.output_tokens > 0);
    assert!(rec.cost.0 > 0, "{rec:#?}");
    gw.server.shutdown().await;
    db.drop().await;
}

/// A secret a client put in its prompt: it must never reach the table.
const PROMPT_SECRET: &str = "sk-ant-api03-CLIENTSECRETCLIENTSECRET";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_are_logged_only_for_the_selected_alias_and_team_and_redacted() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let anthropic = MockProvider::start(MockKind::Anthropic).await;
    let db = Db::shared().await;
    let body = format!(
        "providers:\n\
         \x20 openai: {{ type: openai, base_url: \"{}\", api_key: sk-up-openai-upstream-key }}\n\
         \x20 anthropic: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-up }}\n\
         models:\n\
         \x20 m-openai: {{ targets: [ {{ provider: openai, model: gpt-4o }} ] }}\n\
         \x20 m-claude: {{ targets: [ {{ provider: anthropic, model: claude-sonnet-4-5 }} ] }}\n\
         logging:\n\
         \x20 bodies: {{ aliases: [m-claude], teams: [acme/web] }}\n\
         \x20 redact_fields: [password]\n\
         \x20 max_body_bytes: 4096\n",
        openai.base_url(),
        anthropic.base_url(),
    );
    let gw = Gw::start(&db, &body).await;
    gw.seed_team("acme", "web", false).await;
    gw.seed_team("acme", "ops", true).await;
    let web = gw.key("acme", "web").await;
    let ops = gw.key("acme", "ops").await;
    let secret_text = format!("my key is {PROMPT_SECRET} and sk-up-openai-upstream-key");
    // Logged: the alias (whole and streamed, both formats) and the team's call.
    let claude = Call {
        text: secret_text.clone(),
        ..Call::new("m-claude")
    };
    let claude_stream = Call {
        format: Format::Anthropic,
        stream: true,
        text: secret_text.clone(),
        ..Call::new("m-claude")
    };
    let team_call = Call {
        text: secret_text.clone(),
        ..Call::new("m-openai")
    };
    // Not logged.
    let other_alias = Call::new("m-openai");
    let other_team = Call::new("m-openai");
    for (cred, call) in [
        (ADMIN, &claude),
        (ADMIN, &claude_stream),
        (web.secret.as_str(), &team_call),
        (ADMIN, &other_alias),
        (ops.secret.as_str(), &other_team),
    ] {
        let reply = gw.call(cred, call).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    gw.wait_records(5).await;
    let store = gw.server.runtime.store.clone();
    // Shutdown drains the body writer.
    gw.server.shutdown().await;
    for call in [&claude, &claude_stream, &team_call] {
        let bodies = store.bodies_of(&call.request_id).await.unwrap();
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        let (request, response, truncated) = &bodies[0];
        let request = request.as_deref().unwrap();
        let response = response.as_deref().unwrap();
        assert!(!truncated);
        for text in [request, response] {
            assert!(!text.contains(PROMPT_SECRET), "{text}");
            assert!(!text.contains("sk-up-openai-upstream-key"), "{text}");
        }
        assert!(request.contains("[REDACTED]"), "{request}");
        assert!(request.contains(&call.model), "{request}");
        if call.stream {
            assert!(response.contains("event: message_stop"), "{response}");
        } else {
            assert!(response.starts_with('{'), "{response}");
        }
    }
    for call in [&other_alias, &other_team] {
        assert!(store.bodies_of(&call.request_id).await.unwrap().is_empty());
    }
    db.drop().await;
}
