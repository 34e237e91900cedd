//! Fitting a chat request into its alias's context window (`models.<alias>.context_window`,
//! else the built-in catalog's window of the first target's model), by the alias's or the
//! API's `context_policy`:
//!
//! - `reject`: 400 `context_length_exceeded` with the counts.
//! - `truncate_oldest`: keep the system prompt, the tools and the latest turns; drop whole
//!   oldest turns.
//! - `middle_out`: keep the first turn and the latest turns; drop whole turns from the middle
//!   outwards.
//!
//! A *turn* starts at a user message and runs to the next one: the assistant's answer, its tool
//! calls and their results stay together, so truncation never separates a tool call from its
//! result, and every kept turn after the first starts with a user message (providers refuse a
//! conversation that starts with an assistant or tool message). Anything before the first user
//! message belongs to the first turn. When the last turn alone does not fit, the request is
//! refused as under `reject`.
//!
//! The reply is reserved as the pre-existing check did: the client's `max_tokens`, else nothing
//! (a target that needs a `max_tokens` gets the alias's `default_max_tokens` without it
//! counting here). Counting only happens when the cheap byte bound says the request may not
//! fit, and a request is copied only when turns are dropped.

use crate::config::prompts::ContextPolicy;
use crate::error::GatewayError;
use crate::tokens;
use std::borrow::Cow;
use std::ops::Range;
use switchboard_types::{ChatRequest, Message, Role};

#[cfg(test)]
mod tests;

/// The name of a policy, as configured and as shown in the `x-switchboard-context` header.
pub fn policy_name(policy: ContextPolicy) -> &'static str {
    match policy {
        ContextPolicy::Reject => "reject",
        ContextPolicy::TruncateOldest => "truncate_oldest",
        ContextPolicy::MiddleOut => "middle_out",
    }
}

/// What truncation did to a request: recorded on the request context for the response header
/// (`x-switchboard-context: truncated_oldest;dropped=N`), the usage tag and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trimmed {
    pub policy: ContextPolicy,
    /// Messages dropped.
    pub dropped: usize,
    /// Input tokens before and after (as counted for the first target's model).
    pub input_before: u64,
    pub input_after: u64,
}

impl Trimmed {
    /// What was done, in the past tense: `truncated_oldest` or `truncated_middle`.
    pub fn action(&self) -> &'static str {
        match self.policy {
            ContextPolicy::MiddleOut => "truncated_middle",
            ContextPolicy::TruncateOldest | ContextPolicy::Reject => "truncated_oldest",
        }
    }

    /// The `x-switchboard-context` header value.
    pub fn header_value(&self) -> String {
        format!("{};dropped={}", self.action(), self.dropped)
    }
}

/// A request's window, what to do when it does not fit, and how to count its tokens.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    /// The alias, for the error message.
    pub alias: &'a str,
    /// The upstream model whose tokenizer counts (the first target's).
    pub upstream: &'a str,
    pub tokens: u32,
    pub policy: ContextPolicy,
}

/// `req` as it may be sent within `window`: itself when it fits (no copy), a copy without some
/// turns when the policy allows truncation, or 400 `context_length_exceeded`. `bound` is
/// [`tokens::upper_bound`] of `req`, already computed by the caller.
pub fn fit<'r>(
    req: &'r ChatRequest,
    bound: u64,
    window: Window<'_>,
) -> Result<(Cow<'r, ChatRequest>, Option<Trimmed>), GatewayError> {
    let reserved = req.max_tokens.map_or(0, u64::from);
    let limit = u64::from(window.tokens);
    if bound + reserved <= limit {
        return Ok((Cow::Borrowed(req), None));
    }
    let parts = tokens::breakdown_for(window.upstream, req);
    let input = parts.total();
    if input + reserved <= limit {
        return Ok((Cow::Borrowed(req), None));
    }
    let exceeded = || GatewayError::ContextWindowExceeded {
        alias: window.alias.to_owned(),
        input,
        max_tokens: reserved,
        window: window.tokens,
    };
    // What the kept messages may add up to.
    let Some(budget) = limit.checked_sub(reserved + parts.fixed) else {
        return Err(exceeded());
    };
    if window.policy == ContextPolicy::Reject {
        return Err(exceeded());
    }
    let turns = turns(&req.messages);
    let sizes: Vec<u64> = turns
        .iter()
        .map(|t| parts.messages[t.clone()].iter().sum())
        .collect();
    let kept = match window.policy {
        ContextPolicy::Reject | ContextPolicy::TruncateOldest => oldest(&sizes, budget),
        ContextPolicy::MiddleOut => middle_out(&sizes, budget),
    }
    .ok_or_else(exceeded)?;
    let kept_turns = || kept.turns(turns.len());
    let messages: Vec<Message> = kept_turns()
        .flat_map(|k| turns[k].clone())
        .map(|i| req.messages[i].clone())
        .collect();
    let kept_tokens: u64 = kept_turns().map(|k| sizes[k]).sum();
    let trimmed = Trimmed {
        policy: window.policy,
        dropped: req.messages.len() - messages.len(),
        input_before: input,
        input_after: parts.fixed + kept_tokens,
    };
    Ok((Cow::Owned(with_messages(req, messages)), Some(trimmed)))
}

/// The turns of a conversation as ranges of message indices: a new turn at every user message
/// after the first (anything before the first user message joins the first turn).
fn turns(messages: &[Message]) -> Vec<Range<usize>> {
    let first_user = messages.iter().position(|m| m.role == Role::User);
    let mut starts: Vec<usize> = vec![0];
    starts.extend(
        messages
            .iter()
            .enumerate()
            .filter(|(i, m)| m.role == Role::User && Some(*i) > first_user)
            .map(|(i, _)| i),
    );
    let mut turns = Vec::with_capacity(starts.len());
    for (k, start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(messages.len());
        if start < &end {
            turns.push(*start..end);
        }
    }
    turns
}

/// The turns a policy keeps: the first `head` and those from `tail` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Kept {
    head: usize,
    tail: usize,
}

impl Kept {
    /// The kept turn indices of a conversation of `n` turns, in order.
    fn turns(self, n: usize) -> impl Iterator<Item = usize> {
        (0..self.head).chain(self.tail..n)
    }
}

/// `truncate_oldest`: the longest run of latest turns within `budget` (never none: the last
/// turn must fit).
fn oldest(sizes: &[u64], budget: u64) -> Option<Kept> {
    let n = sizes.len();
    let mut total = 0;
    let mut from = n;
    while from > 0 && total + sizes[from - 1] <= budget {
        total += sizes[from - 1];
        from -= 1;
    }
    (from < n).then_some(Kept {
        head: 0,
        tail: from,
    })
}

/// `middle_out`: keep the first and the last turn, and drop a run of turns centred on the
/// middle of the conversation, widened one turn at a time on alternate sides (so the early and
/// the latest context shrink evenly) until the rest fits. When the first and last turns alone
/// do not fit, the first goes too (as `truncate_oldest`).
fn middle_out(sizes: &[u64], budget: u64) -> Option<Kept> {
    let n = sizes.len();
    let last = *sizes.last()?;
    if n >= 3 {
        let mut kept: u64 = sizes.iter().sum();
        // The dropped run is `lo..hi`, within `1..n - 1`.
        let mid = (n / 2).clamp(1, n - 2);
        let (mut lo, mut hi) = (mid, mid + 1);
        kept -= sizes[mid];
        while kept > budget {
            let grow_right = hi < n - 1 && (hi - mid <= mid - lo || lo == 1);
            if grow_right {
                kept -= sizes[hi];
                hi += 1;
            } else if lo > 1 {
                lo -= 1;
                kept -= sizes[lo];
            } else {
                break;
            }
        }
        if kept <= budget {
            return Some(Kept { head: lo, tail: hi });
        }
    }
    if n >= 2 && sizes[0] + last <= budget {
        return Some(Kept {
            head: 1,
            tail: n - 1,
        });
    }
    // The first turn does not fit beside the last: the latest turns that fit.
    oldest(sizes, budget)
}

/// A copy of `req` with other messages and without the client's body: the body no longer
/// says what is sent, so the same-protocol fast path must not forward it. Written field by
/// field (not `clone` then replace) so that the dropped turns and the raw body, the large
/// parts, are never copied; a new field of `ChatRequest` fails to compile here until it is
/// handled.
fn with_messages(req: &ChatRequest, messages: Vec<Message>) -> ChatRequest {
    let ChatRequest {
        model,
        system,
        messages: _,
        tools,
        tool_choice,
        parallel_tool_calls,
        max_tokens,
        temperature,
        top_p,
        top_k,
        stop,
        seed,
        n,
        presence_penalty,
        frequency_penalty,
        response_format,
        logprobs,
        top_logprobs,
        reasoning_effort,
        thinking_budget,
        user,
        stream,
        stream_include_usage,
        extra,
        raw: _,
        prompt,
    } = req;
    ChatRequest {
        model: model.clone(),
        system: system.clone(),
        messages,
        tools: tools.clone(),
        tool_choice: tool_choice.clone(),
        parallel_tool_calls: *parallel_tool_calls,
        max_tokens: *max_tokens,
        temperature: *temperature,
        top_p: *top_p,
        top_k: *top_k,
        stop: stop.clone(),
        seed: *seed,
        n: *n,
        presence_penalty: *presence_penalty,
        frequency_penalty: *frequency_penalty,
        response_format: response_format.clone(),
        logprobs: *logprobs,
        top_logprobs: *top_logprobs,
        reasoning_effort: reasoning_effort.clone(),
        thinking_budget: *thinking_budget,
        user: user.clone(),
        stream: *stream,
        stream_include_usage: *stream_include_usage,
        extra: extra.clone(),
        raw: None,
        prompt: prompt.clone(),
    }
}
