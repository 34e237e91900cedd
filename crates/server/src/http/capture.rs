//! Body capture for the call log (`logging.bodies`): for the selected calls only, the request
//! as received and the response as sent (the JSON answer, or the SSE text of a stream) are
//! redacted, cut to `logging.max_body_bytes` and offered to the body queue, which drops (and
//! counts) rather than waits when full. Calls that are not selected cost one check.

use super::AppState;
use switchboard_core::auth::Principal;
use switchboard_core::config::{Config, ProviderConfig};
use switchboard_core::usage::{cut, BodyQueue, CallBody, Redactor};
use switchboard_core::RequestContext;
use switchboard_providers::ProviderSettings;

/// A selected call's request body, waiting for its response.
pub struct Capture {
    queue: BodyQueue,
    redactor: Redactor,
    request_id: String,
    started_at_ms: i64,
    request: String,
    max: usize,
}

/// A capture when `logging.bodies` selects this call of `alias`.
pub fn start(
    state: &AppState,
    config: &Config,
    ctx: &RequestContext,
    alias: &str,
    request: &[u8],
) -> Option<Capture> {
    let logging = &config.logging;
    if logging.bodies.is_empty() {
        return None;
    }
    let (org, team) = match &ctx.principal {
        Some(Principal::Key(grant)) => (Some(grant.org.as_str()), grant.team.as_deref()),
        _ => (None, None),
    };
    if !logging.bodies.selects(alias, org, team) {
        return None;
    }
    let secrets = config.providers.values().filter_map(api_key).collect();
    Some(Capture {
        queue: state.runtime.bodies.clone(),
        redactor: Redactor::new(&logging.redact_fields, secrets),
        request_id: ctx.request_id.clone(),
        started_at_ms: switchboard_types::calendar::now_ms(),
        request: String::from_utf8_lossy(request).into_owned(),
        max: logging.max_body_bytes,
    })
}

/// A provider's API key, scrubbed from logged bodies wherever it appears.
fn api_key(provider: &ProviderConfig) -> Option<String> {
    match &provider.settings {
        ProviderSettings::Openai { api_key, .. } => api_key.as_ref().map(|k| k.expose().to_owned()),
        ProviderSettings::AzureOpenai { api_key, .. }
        | ProviderSettings::Anthropic { api_key, .. }
        | ProviderSettings::Gemini { api_key, .. } => Some(api_key.expose().to_owned()),
        _ => None,
    }
}

impl Capture {
    /// Redacts, cuts and queues the bodies (`response` is `None` for a failed call).
    pub fn finish(self, response: Option<&[u8]>) {
        let (request, cut_request) = cut(self.redactor.redact(&self.request), self.max);
        let (response, cut_response) = match response {
            Some(bytes) => {
                let (text, was_cut) = cut(
                    self.redactor.redact(&String::from_utf8_lossy(bytes)),
                    self.max,
                );
                (Some(text), was_cut)
            }
            None => (None, false),
        };
        self.queue.offer(CallBody {
            request_id: self.request_id,
            started_at_ms: self.started_at_ms,
            request: Some(request),
            response,
            truncated: cut_request || cut_response,
        });
    }
}

/// Queues the request body of a call that failed before it had an answer.
pub fn failed(capture: Option<Capture>) {
    if let Some(capture) = capture {
        capture.finish(None);
    }
}

/// A stream's capture: collects the SSE bytes sent (up to a little over the cap, so that the
/// cut is seen) and queues the bodies when the stream ends or the client leaves.
pub struct StreamCapture {
    capture: Option<Capture>,
    sent: Vec<u8>,
}

impl StreamCapture {
    pub fn new(capture: Option<Capture>) -> StreamCapture {
        StreamCapture {
            capture,
            sent: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if let Some(capture) = &self.capture {
            // Redaction may shorten the text, so keep some over the cap to cut after it.
            let room = (capture.max * 2).saturating_sub(self.sent.len());
            self.sent.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }
}

impl Drop for StreamCapture {
    fn drop(&mut self) {
        if let Some(capture) = self.capture.take() {
            capture.finish(Some(&self.sent));
        }
    }
}
