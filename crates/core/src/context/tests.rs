//! Fitting long conversations (hundreds of turns, tool calls, system prompts) into a window.

use super::*;
use switchboard_types::{ContentPart, Protocol, RawBody, ToolCall};

fn text(role: Role, text: &str) -> Message {
    Message::new(role, vec![ContentPart::text(text)])
}

fn call(id: &str) -> Message {
    let mut m = Message::new(Role::Assistant, Vec::new());
    m.tool_calls.push(ToolCall {
        id: id.to_owned(),
        name: "lookup".to_owned(),
        arguments: format!("{{\"q\":\"{id}\"}}"),
    });
    m
}

fn result(id: &str) -> Message {
    let mut m = text(Role::Tool, &format!("result of {id}: some data"));
    m.tool_call_id = Some(id.to_owned());
    m
}

/// `turns` turns: a user question, and every third turn a tool call and its result before the
/// answer, behind a system prompt; with the raw body set as a client's would be.
fn conversation(turns: usize) -> ChatRequest {
    let mut messages = Vec::new();
    for i in 0..turns {
        messages.push(text(
            Role::User,
            &format!("question {i}: tell me about topic {i}"),
        ));
        if i % 3 == 1 {
            let id = format!("call_{i}");
            messages.push(call(&id));
            messages.push(result(&id));
        }
        messages.push(text(
            Role::Assistant,
            &format!("answer {i}: topic {i} is interesting"),
        ));
    }
    ChatRequest {
        model: "chat".into(),
        system: vec![ContentPart::text("You are a helpful assistant.")],
        messages,
        max_tokens: Some(100),
        raw: Some(RawBody {
            protocol: Protocol::OpenAi,
            object: serde_json::Map::new(),
        }),
        ..ChatRequest::default()
    }
}

fn window(tokens: u32, policy: ContextPolicy) -> Window<'static> {
    Window {
        alias: "chat",
        upstream: "gpt-4o",
        tokens,
        policy,
    }
}

fn fit_in(
    req: &ChatRequest,
    tokens: u32,
    policy: ContextPolicy,
) -> Result<(Cow<'_, ChatRequest>, Option<Trimmed>), GatewayError> {
    fit(req, tokens::upper_bound(req), window(tokens, policy))
}

fn count(req: &ChatRequest) -> u64 {
    tokens::count_input_for("gpt-4o", req).tokens
}

/// The rules every truncated conversation keeps.
fn assert_integrity(original: &ChatRequest, fitted: &ChatRequest) {
    assert_eq!(fitted.system, original.system, "the system prompt stays");
    assert!(fitted.raw.is_none(), "no fast path for a changed request");
    let first = fitted.messages.first().expect("some messages are kept");
    assert_eq!(first.role, Role::User, "starts with a user message");
    for (i, m) in fitted.messages.iter().enumerate() {
        if let Some(id) = &m.tool_call_id {
            let called = fitted.messages[..i]
                .iter()
                .any(|c| c.tool_calls.iter().any(|t| &t.id == id));
            assert!(called, "the call of result {id} is kept");
        }
        for c in &m.tool_calls {
            let answered = fitted.messages[i + 1..]
                .iter()
                .any(|r| r.tool_call_id.as_deref() == Some(c.id.as_str()));
            assert!(answered, "the result of call {} is kept", c.id);
        }
    }
    // Kept messages are in their original order.
    let mut from = 0;
    for m in &fitted.messages {
        let at = original.messages[from..]
            .iter()
            .position(|o| o == m)
            .expect("a kept message is one of the original's, in order");
        from += at + 1;
    }
    assert_eq!(
        original.messages.last(),
        fitted.messages.last(),
        "the latest turn stays"
    );
}

#[test]
fn a_request_that_fits_is_borrowed_not_copied() {
    let req = conversation(300);
    let total = u32::try_from(count(&req)).unwrap() + 100;
    for policy in [
        ContextPolicy::Reject,
        ContextPolicy::TruncateOldest,
        ContextPolicy::MiddleOut,
    ] {
        let (fitted, trimmed) = fit_in(&req, total, policy).unwrap();
        assert!(matches!(fitted, Cow::Borrowed(_)), "{policy:?}");
        assert!(trimmed.is_none());
    }
}

#[test]
fn reject_answers_with_the_counts() {
    let req = conversation(300);
    let input = count(&req);
    let err = fit_in(&req, 1000, ContextPolicy::Reject).unwrap_err();
    match err {
        GatewayError::ContextWindowExceeded {
            alias,
            input: counted,
            max_tokens,
            window,
        } => {
            assert_eq!(alias, "chat");
            assert_eq!(counted, input);
            assert_eq!(max_tokens, 100);
            assert_eq!(window, 1000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncate_oldest_keeps_the_system_prompt_and_the_latest_turns() {
    let req = conversation(400);
    let before = count(&req);
    for budget in [300, 1000, 2500, 9000] {
        let (fitted, trimmed) = fit_in(&req, budget, ContextPolicy::TruncateOldest).unwrap();
        let trimmed = trimmed.expect("truncated");
        assert!(matches!(fitted, Cow::Owned(_)));
        assert_integrity(&req, &fitted);
        let after = count(&fitted);
        assert!(after + 100 <= u64::from(budget), "{after} within {budget}");
        assert_eq!(trimmed.input_before, before);
        assert_eq!(trimmed.input_after, after);
        assert_eq!(trimmed.dropped, req.messages.len() - fitted.messages.len());
        assert_eq!(
            trimmed.header_value(),
            format!("truncated_oldest;dropped={}", trimmed.dropped)
        );
        // A suffix of the conversation: the oldest turns went.
        assert!(req.messages.ends_with(&fitted.messages));
        // And as many turns as fit: one more turn would not.
        let kept = fitted.messages.len();
        let start = req.messages.len() - kept;
        let previous_turn = req.messages[..start]
            .iter()
            .rposition(|m| m.role == Role::User)
            .unwrap();
        let mut more = fitted.clone().into_owned();
        more.messages = req.messages[previous_turn..].to_vec();
        assert!(count(&more) + 100 > u64::from(budget), "{budget}");
    }
}

#[test]
fn middle_out_keeps_the_first_and_the_latest_turns() {
    let req = conversation(400);
    for budget in [600, 2500, 9000] {
        let (fitted, trimmed) = fit_in(&req, budget, ContextPolicy::MiddleOut).unwrap();
        let trimmed = trimmed.expect("truncated");
        assert_integrity(&req, &fitted);
        assert!(count(&fitted) + 100 <= u64::from(budget));
        assert_eq!(
            trimmed.header_value(),
            format!("truncated_middle;dropped={}", trimmed.dropped)
        );
        // The first turn (question 0 and its answer) is kept...
        assert_eq!(fitted.messages[..2], req.messages[..2], "{budget}");
        // ...then one contiguous run was dropped: a head of the original, then its tail.
        let head = fitted
            .messages
            .iter()
            .zip(&req.messages)
            .take_while(|(a, b)| a == b)
            .count();
        assert!(head >= 2 && head < fitted.messages.len());
        assert!(req.messages.ends_with(&fitted.messages[head..]));
    }
    // With room for more than the ends, early turns are kept beside the first one too: the
    // dropped run sits in the middle.
    let (fitted, _) = fit_in(&req, 9000, ContextPolicy::MiddleOut).unwrap();
    let second_question = &req.messages[2];
    assert_eq!(second_question.role, Role::User);
    assert!(fitted.messages.contains(second_question));
}

#[test]
fn tool_calls_stay_with_their_results_at_every_cut() {
    // Every budget from tiny to nearly all: each cut point lands somewhere else, including
    // right after a tool call.
    let req = conversation(60);
    let all = u32::try_from(count(&req)).unwrap();
    for budget in (150..all).step_by(7) {
        for policy in [ContextPolicy::TruncateOldest, ContextPolicy::MiddleOut] {
            if let Ok((fitted, _)) = fit_in(&req, budget, policy) {
                assert_integrity(&req, &fitted);
                assert!(count(&fitted) + 100 <= u64::from(budget));
            }
        }
    }
}

#[test]
fn a_leading_assistant_message_goes_with_the_first_turn() {
    let mut req = conversation(50);
    req.messages
        .insert(0, text(Role::Assistant, "Hello! How can I help?"));
    let (fitted, _) = fit_in(&req, 800, ContextPolicy::TruncateOldest).unwrap();
    assert_integrity(&req, &fitted);
    let (fitted, _) = fit_in(&req, 800, ContextPolicy::MiddleOut).unwrap();
    // The first turn, kept whole, is what the client sent first.
    assert_eq!(fitted.messages[0].role, Role::Assistant);
    assert_eq!(fitted.messages[1], req.messages[1]);
}

#[test]
fn when_the_last_turn_alone_does_not_fit_the_answer_is_400_with_the_counts() {
    let mut req = conversation(100);
    let huge = "lorem ipsum dolor sit amet ".repeat(400);
    req.messages.push(text(Role::User, &huge));
    let input = count(&req);
    for policy in [ContextPolicy::TruncateOldest, ContextPolicy::MiddleOut] {
        match fit_in(&req, 1500, policy).unwrap_err() {
            GatewayError::ContextWindowExceeded {
                input: counted,
                window,
                ..
            } => {
                assert_eq!(counted, input);
                assert_eq!(window, 1500);
            }
            other => panic!("{other:?}"),
        }
    }
    // max_tokens alone over the window: nothing can fit.
    let mut req = conversation(10);
    req.max_tokens = Some(5000);
    assert!(fit_in(&req, 4000, ContextPolicy::TruncateOldest).is_err());
}

#[test]
fn middle_out_drops_the_first_turn_when_it_does_not_fit_beside_the_last() {
    let mut req = conversation(20);
    let long = "a long opening question with many words ".repeat(100);
    req.messages[0] = text(Role::User, &long);
    let (fitted, _) = fit_in(&req, 400, ContextPolicy::MiddleOut).unwrap();
    assert_integrity(&req, &fitted);
    assert!(!fitted.messages.contains(&req.messages[0]));
}

#[test]
fn turns_start_at_user_messages() {
    let req = conversation(4);
    // turn 1 has a tool call and its result: 4 messages.
    assert_eq!(turns(&req.messages), vec![0..2, 2..6, 6..8, 8..10]);
    assert_eq!(turns(&[]), Vec::<Range<usize>>::new());
    let lone = [text(Role::Assistant, "hi")];
    assert_eq!(turns(&lone), vec![0..1]);
}

#[test]
fn the_copy_keeps_every_other_field() {
    let mut req = conversation(200);
    req.temperature = Some(0.3);
    req.stop = vec!["END".into()];
    req.stream = true;
    req.extra
        .insert("metadata".into(), serde_json::json!({"a": 1}));
    let (fitted, _) = fit_in(&req, 1200, ContextPolicy::TruncateOldest).unwrap();
    let mut expected = req.clone();
    expected.messages = fitted.messages.clone();
    expected.raw = None;
    assert_eq!(fitted.into_owned(), expected);
}

/// The pipeline's policy: the API's (`ctx.context_policy`) over the alias's; a truncated call
/// is tagged and noted on the context; the alias without a configured window takes its first
/// target's catalog window.
#[tokio::test]
async fn the_pipeline_honours_an_apis_policy_over_the_aliass() {
    let yaml = r#"
providers: { demo: { type: mock } }
models:
  small: { targets: [ { provider: demo, model: echo } ], context_window: 500 }
  catalogued: { targets: [ { provider: demo, model: gpt-4o-mini }, { provider: demo, model: echo } ] }
"#;
    let config = crate::config::load_str("t.yaml", yaml, &|_| None).expect("valid");
    assert_eq!(config.models["small"].context_window, Some(500));
    assert_eq!(config.models["catalogued"].context_window, Some(128_000));
    assert_eq!(config.models["small"].context_policy, ContextPolicy::Reject);
    let gateway = crate::Gateway::new(config).expect("builds");
    let snapshot = gateway.snapshot();
    let mut req = conversation(100);
    req.model = "small".into();
    req.raw = None;
    let context = || crate::RequestContext {
        principal: Some(crate::auth::Principal::Admin),
        ..crate::RequestContext::default()
    };

    let mut ctx = context();
    let refused = snapshot.chat(&mut ctx, &req).await.unwrap_err();
    assert_eq!(refused.error.code(), "context_length_exceeded");
    assert!(ctx.trimmed.is_none());

    let mut ctx = context();
    ctx.context_policy = Some(ContextPolicy::MiddleOut);
    let served = snapshot
        .chat(&mut ctx, &req)
        .await
        .expect("truncated and served");
    assert_eq!(served.routed.value.choices.len(), 1);
    let trimmed = ctx.trimmed.expect("noted");
    assert_eq!(trimmed.policy, ContextPolicy::MiddleOut);
    assert!(trimmed.dropped > 0 && trimmed.input_after + 100 <= 500);
    assert!(ctx
        .tags
        .contains(&("context".to_owned(), "truncated_middle".to_owned())));
}
