//! Usage equality: for every provider kind and both client formats, whole and streamed, the
//! stored record holds exactly the usage the mock provider reported (normalised: input includes
//! cache reads and writes, output includes reasoning), marked `reported`, priced by hand from
//! the configured `price:` in integer micro-dollars, with the caller, tags, target and outcome.
//! Embeddings are recorded too.

use super::kit::{Call, Db, Format, Gw, Key, PRICE};
use switchboard_core::usage::{CallKind, Outcome, UsageRecord, UsageSource};
use switchboard_testkit::canned::{Canned, CannedUpstream};
use switchboard_testkit::{MockKind, MockProvider, MockUsage, Reply as MockReply};
use switchboard_types::{MicroUsd, Usage};

/// The scripted providers, their config type and the upstream model behind `m-<name>`.
const PROVIDERS: [(&str, MockKind, &str); 4] = [
    ("openai", MockKind::OpenAi, "gpt-4o"),
    ("azure", MockKind::AzureOpenAi, "gpt-4o"),
    ("anthropic", MockKind::Anthropic, "claude-sonnet-4-5"),
    ("gemini", MockKind::Gemini, "gemini-2.5-flash"),
];

fn provider_yaml(name: &str, base_url: &str) -> String {
    match name {
        "openai" => format!("{{ type: openai, base_url: \"{base_url}\", api_key: sk-up }}"),
        "azure" => format!(
            "{{ type: azure_openai, base_url: \"{base_url}\", api_key: az-up, api_version: \"2024-10-21\" }}"
        ),
        "anthropic" => format!("{{ type: anthropic, base_url: \"{base_url}\", api_key: sk-ant-up }}"),
        _ => format!("{{ type: gemini, base_url: \"{base_url}\", api_key: gm-up }}"),
    }
}

/// What the scripted mocks report for every answer: 1001 prompt tokens of which 400 were read
/// from the cache, 300 generated of which 120 were reasoning.
fn reported() -> MockUsage {
    MockUsage {
        input: 1001,
        output: 300,
        cached: 400,
        reasoning: 120,
    }
}

/// A gateway with every provider kind behind `m-<name>` (plus `m-mock`, the built-in mock, and
/// `m-cache`, an Anthropic upstream that reports cache writes), each priced with [`PRICE`], and
/// a key of acme/research.
struct Matrix {
    gw: Gw,
    mocks: Vec<(&'static str, MockProvider)>,
    _canned: CannedUpstream,
    key: Key,
    db: Db,
}

/// Anthropic's answer with every usage field it has: 101 uncached input tokens, 400 read from
/// the cache, 200 written to it, 50 generated.
fn cache_answer() -> Canned {
    let usage = r#""usage":{"input_tokens":101,"cache_creation_input_tokens":200,"cache_read_input_tokens":400,"output_tokens":50}"#;
    let json = format!(
        r#"{{"id":"msg_canned","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{{"type":"text","text":"from the cache"}}],"stop_reason":"end_turn","stop_sequence":null,{usage}}}"#
    );
    let start_usage = r#""usage":{"input_tokens":101,"cache_creation_input_tokens":200,"cache_read_input_tokens":400,"output_tokens":1}"#;
    let sse = [
        format!(
            r#"event: message_start
data: {{"type":"message_start","message":{{"id":"msg_canned","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,{start_usage}}}}}"#
        ),
        r#"event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
            .to_owned(),
        r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"from the cache"}}"#
            .to_owned(),
        r#"event: content_block_stop
data: {"type":"content_block_stop","index":0}"#
            .to_owned(),
        r#"event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":50}}"#
            .to_owned(),
        r#"event: message_stop
data: {"type":"message_stop"}"#
            .to_owned(),
    ]
    .iter()
    .map(|event| format!("{event}\n\n"))
    .collect();
    Canned { json, sse }
}

impl Matrix {
    async fn start() -> Matrix {
        let mut providers = String::new();
        let mut models = String::new();
        let mut mocks = Vec::new();
        for (name, kind, model) in PROVIDERS {
            let mock = MockProvider::start(kind).await;
            let provider = provider_yaml(name, &mock.base_url());
            providers.push_str(&format!("  {name}: {provider}\n"));
            models.push_str(&format!(
                "  m-{name}: {{ targets: [ {{ provider: {name}, model: {model} }} ], price: {PRICE} }}\n"
            ));
            mocks.push((name, mock));
        }
        let canned = CannedUpstream::start(cache_answer()).await.unwrap();
        providers.push_str(&format!(
            "  canned: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-up }}\n  mock: {{ type: mock }}\n",
            canned.base_url()
        ));
        models.push_str(&format!(
            "  m-mock: {{ targets: [ {{ provider: mock, model: echo }} ], price: {PRICE} }}\n\
             \x20 m-cache: {{ targets: [ {{ provider: canned, model: claude-sonnet-4-5 }} ], price: {PRICE} }}\n\
             \x20 m-embed: {{ targets: [ {{ provider: openai, model: text-embedding-3-small }} ], price: {PRICE} }}\n"
        ));
        let db = Db::sqlite();
        let gw = Gw::start(&db, &format!("providers:\n{providers}models:\n{models}")).await;
        gw.seed_team("acme", "research", false).await;
        let key = gw.key("acme", "research").await;
        Matrix {
            gw,
            mocks,
            _canned: canned,
            key,
            db,
        }
    }

    fn mock(&self, name: &str) -> &MockProvider {
        &self.mocks.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

/// The usage the record must hold for what a provider kind reports of [`reported`]. Anthropic
/// has no reasoning count; Gemini reports thoughts apart from candidates and the gateway adds
/// them back; every kind's cache reads are inside the record's input.
fn expected_usage(name: &str) -> (Usage, MicroUsd) {
    match name {
        "anthropic" => (
            Usage {
                input_tokens: 1001,
                output_tokens: 300,
                cached_input_tokens: 400,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
            },
            // 601 x 2.5 + 400 x 1.25 + 300 x 10 = 1502.5 + 500 + 3000 = 5002.5, rounded up.
            MicroUsd(5003),
        ),
        _ => (
            Usage {
                input_tokens: 1001,
                output_tokens: 300,
                cached_input_tokens: 400,
                cache_write_tokens: 0,
                reasoning_tokens: 120,
            },
            // 601 x 2.5 + 400 x 1.25 + 180 x 10 + 120 x 12 = 1502.5 + 500 + 1800 + 1440 = 5242.5,
            // rounded up.
            MicroUsd(5243),
        ),
    }
}

/// The fields every served record shares.
fn check_served(
    rec: &UsageRecord,
    case: &str,
    call: &Call,
    key: &Key,
    target: (&str, &str),
    usage: Usage,
    cost: MicroUsd,
) {
    assert_eq!(rec.request_id, call.request_id, "{case}");
    assert_eq!(rec.kind, CallKind::Chat, "{case}");
    assert_eq!(rec.alias, call.model, "{case}");
    assert_eq!(rec.served_alias, None, "{case}");
    assert_eq!(rec.provider.as_deref(), Some(target.0), "{case}");
    assert_eq!(rec.model.as_deref(), Some(target.1), "{case}");
    assert_eq!(rec.stream, call.stream, "{case}");
    assert_eq!(rec.usage, usage, "{case}: usage");
    assert_eq!(rec.usage_source, UsageSource::Reported, "{case}");
    assert_eq!(rec.cost, cost, "{case}: cost");
    assert!(rec.priced, "{case}");
    assert_eq!(rec.attempts, 1, "{case}");
    assert_eq!(rec.outcome, Outcome::Ok, "{case}");
    assert_eq!(rec.status, 200, "{case}");
    assert_eq!(rec.error_code, None, "{case}");
    assert_eq!(
        rec.ttft_ms.is_some(),
        call.stream,
        "{case}: ttft only for streams"
    );
    let tags = vec![
        ("a".to_owned(), "1".to_owned()),
        ("b".to_owned(), "2".to_owned()),
    ];
    assert_eq!(rec.tags, tags, "{case}");
    assert_eq!(rec.caller.org.as_deref(), Some("acme"), "{case}");
    assert_eq!(rec.caller.team.as_deref(), Some("research"), "{case}");
    assert_eq!(rec.caller.app.as_deref(), Some("research-app"), "{case}");
    assert_eq!(
        rec.caller.key_id.as_deref(),
        Some(key.id.as_str()),
        "{case}"
    );
}

fn matrix_call(model: &str, format: Format, stream: bool, text: &str) -> Call {
    Call {
        format,
        stream,
        text: text.to_owned(),
        tags: Some("a=1,b=2".to_owned()),
        ..Call::new(model)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_provider_and_client_format_records_the_reported_usage() {
    let m = Matrix::start().await;
    let mut sent = 0;
    for (name, _, upstream) in PROVIDERS {
        for format in [Format::OpenAi, Format::Anthropic] {
            for stream in [false, true] {
                let case = format!("{name} via {format:?}, stream {stream}");
                m.mock(name).enqueue(MockReply::Text {
                    text: "metered answer".to_owned(),
                    usage: reported(),
                });
                let call = matrix_call(&format!("m-{name}"), format, stream, "count me");
                let reply = m.gw.call(&m.key.secret, &call).await;
                assert_eq!(reply.status, 200, "{case}: {}", reply.text);
                sent += 1;
                m.gw.wait_records(sent).await;
                let rec = m.gw.record(&call.request_id).await;
                let (usage, cost) = expected_usage(name);
                check_served(&rec, &case, &call, &m.key, (name, upstream), usage, cost);
            }
        }
    }
    m.gw.server.shutdown().await;
    m.db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_built_in_mock_and_cache_writes_are_recorded_exactly() {
    let m = Matrix::start().await;
    let mut sent = 0;
    for format in [Format::OpenAi, Format::Anthropic] {
        for stream in [false, true] {
            // The built-in mock counts a token per four characters: "count these tokens please"
            // is 25 characters (7 tokens), "echo: count these tokens please" 31 (8 tokens).
            let case = format!("mock via {format:?}, stream {stream}");
            let call = matrix_call("m-mock", format, stream, "count these tokens please");
            let reply = m.gw.call(&m.key.secret, &call).await;
            assert_eq!(reply.status, 200, "{case}: {}", reply.text);
            sent += 1;
            m.gw.wait_records(sent).await;
            let rec = m.gw.record(&call.request_id).await;
            let usage = Usage {
                input_tokens: 7,
                output_tokens: 8,
                ..Usage::default()
            };
            // 7 x 2.5 + 8 x 10 = 97.5, rounded up.
            check_served(
                &rec,
                &case,
                &call,
                &m.key,
                ("mock", "echo"),
                usage,
                MicroUsd(98),
            );

            // Anthropic's input_tokens (101) excludes cache reads (400) and writes (200); the
            // record's input includes both.
            let case = format!("cache writes via {format:?}, stream {stream}");
            let call = matrix_call("m-cache", format, stream, "cache me");
            let reply = m.gw.call(&m.key.secret, &call).await;
            assert_eq!(reply.status, 200, "{case}: {}", reply.text);
            sent += 1;
            m.gw.wait_records(sent).await;
            let rec = m.gw.record(&call.request_id).await;
            let usage = Usage {
                input_tokens: 701,
                output_tokens: 50,
                cached_input_tokens: 400,
                cache_write_tokens: 200,
                reasoning_tokens: 0,
            };
            // 101 x 2.5 + 400 x 1.25 + 200 x 3.75 + 50 x 10 = 252.5 + 500 + 750 + 500 = 2002.5,
            // rounded up.
            let target = ("canned", "claude-sonnet-4-5");
            check_served(&rec, &case, &call, &m.key, target, usage, MicroUsd(2003));
        }
    }
    m.gw.server.shutdown().await;
    m.db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embeddings_are_recorded_with_their_input_tokens() {
    let m = Matrix::start().await;
    let request_id = super::kit::new_request_id();
    let resp =
        m.gw.client
            .post(m.gw.url("/v1/embeddings"))
            .bearer_auth(&m.key.secret)
            .header("x-request-id", &request_id)
            .header("x-switchboard-tags", "a=1,b=2")
            .json(&serde_json::json!({"model": "m-embed", "input": ["alpha", "beta gamma"]}))
            .send()
            .await
            .unwrap();
    let reply = super::kit::Reply::read(resp).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // The OpenAI mock reports a token per four characters of each input: 2 + 3.
    assert_eq!(reply.json()["usage"]["prompt_tokens"], 5, "{}", reply.text);
    m.gw.wait_records(1).await;
    let rec = m.gw.record(&request_id).await;
    assert_eq!(rec.kind, CallKind::Embeddings);
    assert_eq!(rec.alias, "m-embed");
    assert_eq!(rec.provider.as_deref(), Some("openai"));
    assert_eq!(rec.model.as_deref(), Some("text-embedding-3-small"));
    assert_eq!(
        rec.usage,
        Usage {
            input_tokens: 5,
            ..Usage::default()
        }
    );
    assert_eq!(rec.usage_source, UsageSource::Reported);
    // 5 x 2.5 = 12.5, rounded up.
    assert_eq!(rec.cost, MicroUsd(13));
    assert_eq!(
        (rec.outcome, rec.status, rec.attempts),
        (Outcome::Ok, 200, 1)
    );
    assert_eq!(rec.caller.key_id.as_deref(), Some(m.key.id.as_str()));
    assert_eq!(rec.tags.len(), 2);
    m.gw.server.shutdown().await;
    m.db.drop().await;
}
