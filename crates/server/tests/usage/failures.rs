//! Requests that do not end well are billed too: a client that disconnects mid-stream gets one
//! `cancelled` record (status 499) with what was generated; a request that failed upstream
//! after its retries, and one refused by a limit, one `error` record each with the right code;
//! and a mixed crowd of N requests leaves exactly N records.

use super::kit::{clear_of_minute_boundary, read_until_then_leave, Call, Db, Format, Gw, ADMIN};
use futures::future::join_all;
use std::time::Duration;
use switchboard_core::usage::{Outcome, UsageSource};
use switchboard_store::UsageFilter;
use switchboard_testkit::{MockKind, MockProvider, Reply as MockReply};

/// A gateway in front of an OpenAI and an Anthropic mock: `m-openai` and `m-failing` retry
/// twice (`m-failing` is another upstream with a circuit that scripted failures do not open,
/// so that they never spill onto the other aliases), `m-claude` does not, and `limited` allows one request a minute to anyone.
async fn start(openai: &MockProvider, anthropic: &MockProvider, db: &Db) -> (Gw, MockProvider) {
    // Its own mock, so that scripted errors left unplayed (a circuit that opened before the
    // last retry) never reach the other aliases.
    let failing = MockProvider::start(MockKind::OpenAi).await;
    let body = format!(
        "providers:\n\
         \x20 openai: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n\
         \x20 failing: {{ type: openai, base_url: \"{}\", api_key: sk-up }}\n\
         \x20 anthropic: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-up }}\n\
         models:\n\
         \x20 m-openai: {{ targets: [ {{ provider: openai, model: gpt-4o }} ], retry: {{ attempts: 2, backoff_ms: 1, max_backoff_ms: 1 }}, price: {p} }}\n\
         \x20 m-failing: {{ targets: [ {{ provider: failing, model: gpt-4o-failing }} ], retry: {{ attempts: 2, backoff_ms: 1, max_backoff_ms: 1 }}, circuit: {{ failures: 100 }}, price: {p} }}\n\
         \x20 m-claude: {{ targets: [ {{ provider: anthropic, model: claude-sonnet-4-5 }} ], price: {p} }}\n\
         \x20 limited: {{ targets: [ {{ provider: openai, model: gpt-4o }} ], price: {p} }}\n\
         rate_limits:\n\
         \x20 - {{ name: one-a-minute, scope: alias, match: {{ alias: limited }}, requests_per_minute: 1 }}\n",
        openai.base_url(),
        failing.base_url(),
        anthropic.base_url(),
        p = super::kit::PRICE,
    );
    (Gw::start(db, &body).await, failing)
}

/// Bytes of the `tok0 tok1 ...` pieces the client saw (in order, as the mock sends them): the
/// gateway generated at least these. Field names such as `output_tokens` are not pieces.
fn delta_bytes(seen: &str) -> u64 {
    (0..)
        .map(|i| format!("tok{i} "))
        .take_while(|piece| seen.contains(piece.as_str()))
        .map(|piece| piece.len() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_leaves_mid_stream_is_recorded_once_as_cancelled_with_an_estimate() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let anthropic = MockProvider::start(MockKind::Anthropic).await;
    let db = Db::sqlite();
    let (gw, _failing) = start(&openai, &anthropic, &db).await;
    // Many chunks far apart: the client has long gone before OpenAI's final usage chunk.
    openai.enqueue(MockReply::SlowStream {
        chunks: 500,
        interval: Duration::from_millis(20),
    });
    let call = Call {
        stream: true,
        ..Call::new("m-openai")
    };
    let resp = gw.send(ADMIN, &call).await;
    assert_eq!(resp.status(), 200);
    let seen = read_until_then_leave(resp, "tok3 ").await;
    // The upstream request is cancelled too (a real signal: the mock's stream guard dropped).
    assert!(openai.wait_for_cancelled(1, Duration::from_secs(30)).await);
    gw.wait_records(1).await;
    let rec = gw.record(&call.request_id).await;
    assert_eq!(rec.outcome, Outcome::Cancelled);
    assert_eq!(rec.status, 499);
    assert_eq!(rec.error_code.as_deref(), Some("client_closed"));
    assert_eq!(rec.usage_source, UsageSource::Estimated, "no usage arrived");
    assert!(rec.usage.input_tokens > 0, "{rec:?}");
    assert!(
        rec.usage.output_tokens >= delta_bytes(&seen) / 4,
        "billed for what was generated: {rec:?} after {seen:?}"
    );
    assert!(rec.cost.0 > 0 && rec.priced, "{rec:?}");
    gw.server.shutdown().await;
    assert_eq!(
        gw_records_total(&db).await,
        1,
        "exactly one record, also after shutdown"
    );
    db.drop().await;
}

/// Anthropic reports input usage (and `output_tokens: 1`) in `message_start`, before any text.
/// A client that leaves after several deltas must still be billed for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_anthropic_stream_is_billed_for_the_text_it_generated() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let anthropic = MockProvider::start(MockKind::Anthropic).await;
    let db = Db::sqlite();
    let (gw, _failing) = start(&openai, &anthropic, &db).await;
    anthropic.enqueue(MockReply::SlowStream {
        chunks: 500,
        interval: Duration::from_millis(20),
    });
    let call = Call {
        stream: true,
        format: Format::Anthropic,
        ..Call::new("m-claude")
    };
    let resp = gw.send(ADMIN, &call).await;
    assert_eq!(resp.status(), 200);
    let seen = read_until_then_leave(resp, "tok20 ").await;
    assert!(
        anthropic
            .wait_for_cancelled(1, Duration::from_secs(30))
            .await
    );
    gw.wait_records(1).await;
    let rec = gw.record(&call.request_id).await;
    assert_eq!(rec.outcome, Outcome::Cancelled);
    assert_eq!(rec.status, 499);
    // The mock's message_start reported 10 input tokens.
    assert_eq!(rec.usage.input_tokens, 10, "{rec:?}");
    assert!(
        rec.usage.output_tokens >= delta_bytes(&seen) / 4,
        "billed for what was generated ({} bytes of text): {rec:?}",
        delta_bytes(&seen)
    );
    gw.server.shutdown().await;
    db.drop().await;
}

async fn gw_records_total(db: &Db) -> i64 {
    // A second look through a fresh store handle: what is committed, not what a writer holds.
    let store =
        switchboard_store::Store::connect(&db.url, &switchboard_store::StoreOptions::default())
            .await
            .unwrap();
    let totals = store
        .usage_totals(&UsageFilter::default(), None)
        .await
        .unwrap();
    totals.first().map_or(0, |t| t.requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_failures_and_limit_refusals_are_one_error_record_each() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let anthropic = MockProvider::start(MockKind::Anthropic).await;
    let db = Db::sqlite();
    let (gw, failing) = start(&openai, &anthropic, &db).await;
    for _ in 0..3 {
        failing.enqueue(MockReply::Error {
            status: 500,
            retry_after_secs: None,
        });
    }
    let failed = Call::new("m-failing");
    let reply = gw.call(ADMIN, &failed).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(failing.request_count(), 3, "the first try and two retries");

    clear_of_minute_boundary().await;
    let first = Call::new("limited");
    assert_eq!(gw.call(ADMIN, &first).await.status, 200);
    let refused = Call::new("limited");
    let reply = gw.call(ADMIN, &refused).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    assert_eq!(reply.code(), "rate_limit_exceeded");

    gw.wait_records(3).await;
    let rec = gw.record(&failed.request_id).await;
    assert_eq!(rec.outcome, Outcome::Error);
    assert_eq!(rec.status, 502);
    assert_eq!(rec.error_code.as_deref(), Some("upstream_error"));
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.provider.as_deref(), Some("failing"));
    assert_eq!(rec.model.as_deref(), Some("gpt-4o-failing"));
    assert_eq!(rec.cost.0, 0, "nothing was generated: {rec:?}");

    let rec = gw.record(&refused.request_id).await;
    assert_eq!(rec.outcome, Outcome::Error);
    assert_eq!(rec.status, 429);
    assert_eq!(rec.error_code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(rec.attempts, 0);
    assert_eq!(rec.usage_source, UsageSource::None);
    assert_eq!((rec.provider, rec.cost.0), (None, 0));
    gw.server.shutdown().await;
    assert_eq!(gw_records_total(&db).await, 3);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_mixed_requests_leave_exactly_n_records() {
    let openai = MockProvider::start(MockKind::OpenAi).await;
    let anthropic = MockProvider::start(MockKind::Anthropic).await;
    let db = Db::sqlite();
    let (gw, failing) = start(&openai, &anthropic, &db).await;
    let admin = ADMIN;
    // 40 whole and streamed answers in both formats, 10 refused by `limited` (one of 11
    // passes), 3 failing upstream after retries (9 scripted errors, taken first).
    for _ in 0..9 {
        failing.enqueue(MockReply::Error {
            status: 503,
            retry_after_secs: None,
        });
    }
    let failed: Vec<Call> = (0..3).map(|_| Call::new("m-failing")).collect();
    let replies = join_all(failed.iter().map(|c| gw.call(admin, c))).await;
    assert!(replies.iter().all(|r| r.status == 502), "{replies:?}");
    let mut calls = Vec::new();
    for i in 0..40 {
        let format = if i % 2 == 0 {
            Format::OpenAi
        } else {
            Format::Anthropic
        };
        let model = if i % 4 < 2 { "m-openai" } else { "m-claude" };
        calls.push(Call {
            format,
            stream: i % 3 == 0,
            ..Call::new(model)
        });
    }
    calls.extend((0..11).map(|_| Call::new("limited")));
    clear_of_minute_boundary().await;
    let replies = join_all(calls.iter().map(|c| gw.call(admin, c))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let limited = replies.iter().filter(|r| r.status == 429).count();
    assert_eq!((ok, limited), (41, 10), "{replies:?}");
    // One client that leaves mid-stream.
    openai.enqueue(MockReply::SlowStream {
        chunks: 500,
        interval: Duration::from_millis(20),
    });
    let leaving = Call {
        stream: true,
        ..Call::new("m-openai")
    };
    read_until_then_leave(gw.send(admin, &leaving).await, "tok1 ").await;
    let n = 3 + 51 + 1;
    gw.wait_records(n).await;
    gw.server.shutdown().await;
    assert_eq!(gw_records_total(&db).await, i64::try_from(n).unwrap());
    db.drop().await;
}
