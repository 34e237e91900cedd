//! What the router does after a failed attempt: the verdict on a [`ProviderError`] (try
//! again, skip a misconfigured target, or stop), and how long to wait before the next try
//! (exponential backoff with full jitter, at least the provider's `retry-after`, capped).

use crate::config::RetryPolicy;
use crate::error::GatewayError;
use rand::Rng;
use std::time::Duration;
use switchboard_protocols::ConvertError;
use switchboard_providers::ProviderError;

/// The router's reading of one failed attempt.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The target is unwell or busy (429, 5xx, connect, timeout, transient in-band error):
    /// counts against its circuit; another try may succeed, after a backoff.
    Retry,
    /// The provider refused the gateway itself (401, 403, 404): the provider's config (key,
    /// deployment, base URL) is wrong, not the client's request. Counts against the target,
    /// which is skipped for the rest of the request; the next try goes without waiting.
    Misconfigured,
    /// The request itself is at fault: no target would take it, so routing stops (no fallbacks)
    /// and the client gets this error. Says nothing about the target's health.
    Reject(GatewayError),
    /// The provider's answer could not be used (decode error, non-retryable in-band error):
    /// routing stops and the client gets a 502.
    Fail,
}

pub(crate) fn classify(err: &ProviderError) -> Verdict {
    match err {
        ProviderError::Unsupported { param, message } => {
            let convert = match param {
                Some(param) => ConvertError::unsupported(param.clone(), message.clone()),
                None => ConvertError::invalid(None, message.clone()),
            };
            Verdict::Reject(GatewayError::BadRequest(convert))
        }
        err if err.is_retryable() => Verdict::Retry,
        ProviderError::Status {
            status: 401 | 403 | 404,
            ..
        } => Verdict::Misconfigured,
        ProviderError::Status {
            status, message, ..
        } if (400..500).contains(status) => Verdict::Reject(GatewayError::UpstreamRejected {
            status: *status,
            message: message.clone(),
        }),
        _ => Verdict::Fail,
    }
}

/// The wait before retry number `retry` (1 for the first retry): a uniform draw in
/// `[0, min(max_backoff, backoff * 2^(retry-1))]` ("full jitter", which spreads the retries of
/// many clients), but never less than the provider's `retry-after` (itself capped by
/// `max_backoff`, so that a provider cannot park a request for minutes).
pub(crate) fn backoff(
    policy: &RetryPolicy,
    retry: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let doublings = retry.saturating_sub(1).min(31);
    let ceiling = policy
        .backoff
        .saturating_mul(1u32 << doublings)
        .min(policy.max_backoff);
    let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    let jittered = Duration::from_nanos(rng.random_range(0..=ceiling_nanos));
    let asked = retry_after.map_or(Duration::ZERO, |wait| wait.min(policy.max_backoff));
    jittered.max(asked)
}
