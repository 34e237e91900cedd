//! Reading the request's headers into a `RequestContext`: the credentials (from whichever
//! header a client SDK uses), the request id and the trace context; and the [`Edge`]
//! extractor, the request's origin for the call log.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use switchboard_core::usage::ClientInfo;
use switchboard_core::{Credentials, RequestContext};

/// Longest user agent kept in the call log; longer ones are cut (at a character boundary).
const MAX_USER_AGENT: usize = 256;

/// The TCP peer's IP address as text, handed by the accept loop to `App::serve` with every
/// request of a connection (and put in the extensions of those that go through the router, for
/// [`Edge`]). Formatted once per connection: formatting an address on every request was ~1% of the
/// gateway's instructions.
#[derive(Clone, Debug)]
pub struct PeerIp(pub Arc<str>);

impl PeerIp {
    pub fn of(addr: &SocketAddr) -> PeerIp {
        PeerIp(addr.ip().to_string().into())
    }
}

/// Where a request came from: the TCP peer ([`PeerIp`]; `x-forwarded-for` is not trusted), the
/// user agent and the path called. Never fails: a request served without connection info just
/// has no address.
pub struct Edge(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Edge {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Edge(client_info(parts, parts.extensions.get::<PeerIp>())))
    }
}

/// What [`Edge`] extracts, for a request whose peer is `peer`.
pub fn client_info(parts: &Parts, peer: Option<&PeerIp>) -> ClientInfo {
    let user_agent = parts
        .headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| cut(ua, MAX_USER_AGENT).to_owned());
    ClientInfo {
        ip: peer.map(|PeerIp(ip)| ip.to_string()),
        user_agent,
        route: Some(parts.uri.path().to_owned()),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Longest incoming `x-request-id` we echo; longer or non-printable ones are replaced.
const MAX_REQUEST_ID: usize = 128;

/// A UUIDv7 in 32 hex digits: unique across instances and sortable by time in logs. Encoded
/// into a stack buffer, not through `Display`, since it runs on every request.
pub fn new_request_id() -> String {
    let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
    uuid::Uuid::now_v7()
        .simple()
        .encode_lower(&mut buf)
        .to_owned()
}

// Header names as constants: looking a header up by `&str` parses the name on every call.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const X_TRACE_ID: HeaderName = HeaderName::from_static("x-switchboard-trace-id");
const KEY_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
    HeaderName::from_static("x-goog-api-key"),
];

pub fn request_context(headers: &HeaderMap) -> RequestContext {
    let found = ContextHeaders::find(headers);
    let request_id = text(found.request_id)
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    RequestContext {
        request_id,
        traceparent: trace_context(text(found.traceparent), text(found.trace_id)),
        credentials: Credentials {
            api_key: api_key(text(found.authorization), found.keys.map(text)),
        },
        principal: None,
        tags: text(found.tags).map(tags).unwrap_or_default(),
        client: ClientInfo::default(),
        context_policy: None,
        trimmed: None,
    }
}

/// The headers a request context is read from: each one's first value, as `get` gives it.
/// Found in one pass over the request's few headers: a lookup by name hashes the name every
/// time, and there are eight names to look for.
#[derive(Default)]
struct ContextHeaders<'a> {
    request_id: Option<&'a HeaderValue>,
    traceparent: Option<&'a HeaderValue>,
    trace_id: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
    /// The values of [`KEY_HEADERS`], in that order.
    keys: [Option<&'a HeaderValue>; 3],
    tags: Option<&'a HeaderValue>,
}

impl<'a> ContextHeaders<'a> {
    fn find(headers: &'a HeaderMap) -> Self {
        let mut found = ContextHeaders::default();
        for (name, value) in headers {
            let slot = if name == AUTHORIZATION {
                &mut found.authorization
            } else if name == X_REQUEST_ID {
                &mut found.request_id
            } else if name == TRACEPARENT {
                &mut found.traceparent
            } else if name == X_TRACE_ID {
                &mut found.trace_id
            } else if name == X_TAGS {
                &mut found.tags
            } else if let Some(i) = KEY_HEADERS.iter().position(|key| name == key) {
                &mut found.keys[i]
            } else {
                continue;
            };
            // The map yields a name's values in order; the first one counts.
            slot.get_or_insert(value);
        }
        found
    }
}

/// A header's value when it is text.
fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// At most this many tags per request, each key and value at most `MAX_TAG_LEN` bytes: tags
/// are labels for analytics, not payloads.
const MAX_TAGS: usize = 16;
const MAX_TAG_LEN: usize = 64;
const X_TAGS: HeaderName = HeaderName::from_static("x-switchboard-tags");

/// `x-switchboard-tags: k=v,k2=v2`. Entries without `=`, with an empty key, or over the size
/// caps are left out (documented in docs/usage-and-limits.md).
fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let (key, value) = (key.trim(), value.trim());
            let fits = !key.is_empty() && key.len() <= MAX_TAG_LEN && value.len() <= MAX_TAG_LEN;
            let ours = switchboard_core::usage::RESERVED_TAGS.contains(&key);
            (fits && !ours).then(|| (key.to_owned(), value.to_owned()))
        })
        .take(MAX_TAGS)
        .collect()
}

/// The W3C `traceparent` to propagate upstream: the client's own when it is well formed, else
/// one made from `x-switchboard-trace-id` (32 hex digits) with a fresh parent span id. Anything
/// malformed is dropped rather than passed on to confuse the provider's tracing.
fn trace_context(traceparent: Option<&str>, trace_id: Option<&str>) -> Option<String> {
    if let Some(parent) = traceparent.filter(|v| is_traceparent(v)) {
        return Some(parent.to_owned());
    }
    let trace_id = trace_id.filter(|v| is_hex(v, 32))?;
    let span_id: u64 = rand::random();
    Some(format!(
        "00-{}-{span_id:016x}-01",
        trace_id.to_ascii_lowercase()
    ))
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `version-traceid-parentid-flags`, e.g. `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
fn is_traceparent(text: &str) -> bool {
    let mut parts = text.split('-');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(v), Some(t), Some(p), Some(f), None)
            if is_hex(v, 2) && is_hex(t, 32) && is_hex(p, 16) && is_hex(f, 2)
    )
}

/// `Authorization: Bearer KEY`, `x-api-key` (Anthropic SDKs), `api-key` (Azure SDKs) or
/// `x-goog-api-key` (Google SDKs), first found wins.
fn api_key(authorization: Option<&str>, keys: [Option<&str>; 3]) -> Option<String> {
    if let Some(value) = authorization {
        let value = value.trim();
        if let Some(key) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        {
            return Some(key.trim().to_owned());
        }
    }
    keys.into_iter()
        .flatten()
        .next()
        .map(|v| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(HeaderName::from_static(name), value.parse().unwrap());
        }
        map
    }

    fn context(pairs: &[(&'static str, &str)]) -> RequestContext {
        request_context(&headers(pairs))
    }

    #[test]
    fn trace_context_is_propagated_only_when_well_formed() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            context(&[("traceparent", parent)]).traceparent.as_deref(),
            Some(parent)
        );
        assert_eq!(context(&[("traceparent", "garbage")]).traceparent, None);
        let made = context(&[("x-switchboard-trace-id", "4BF92F3577B34DA6A3CE929D0E0E4736")])
            .traceparent
            .unwrap();
        assert!(is_traceparent(&made), "{made}");
        assert!(made.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_eq!(
            context(&[("x-switchboard-trace-id", "short")]).traceparent,
            None
        );
    }

    #[test]
    fn tags_are_pairs_within_caps() {
        let got = context(&[(
            "x-switchboard-tags",
            "team=ml, run = 7,bad,=x,k=,prompt=mine@9,api=x",
        )])
        .tags;
        let want: Vec<(String, String)> = [("team", "ml"), ("run", "7"), ("k", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        let many = (0..40)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            context(&[("x-switchboard-tags", &many)]).tags.len(),
            MAX_TAGS
        );
    }

    #[test]
    fn long_user_agents_are_cut_on_a_character_boundary() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aéb", 3), "aé");
    }

    #[test]
    fn keys_come_from_every_sdk_header() {
        for (name, value) in [
            ("authorization", "Bearer sk-1"),
            ("x-api-key", "sk-1"),
            ("api-key", "sk-1"),
            ("x-goog-api-key", " sk-1 "),
        ] {
            assert_eq!(
                context(&[(name, value)]).credentials.api_key.as_deref(),
                Some("sk-1"),
                "{name}"
            );
        }
        assert_eq!(context(&[]).credentials.api_key, None);
    }

    #[test]
    fn the_first_key_header_in_sdk_order_wins_whatever_the_order_sent() {
        let key = |pairs: &[(&'static str, &str)]| context(pairs).credentials.api_key;
        let sent = [
            ("x-goog-api-key", "google"),
            ("api-key", "azure"),
            ("x-api-key", "anthropic"),
            ("authorization", "Bearer openai"),
        ];
        assert_eq!(key(&sent).as_deref(), Some("openai"));
        assert_eq!(key(&sent[..3]).as_deref(), Some("anthropic"));
        assert_eq!(key(&sent[..2]).as_deref(), Some("azure"));
        // An authorization that is not a bearer token leaves the key to the other headers.
        assert_eq!(
            key(&[("authorization", "Basic abc"), ("api-key", "azure")]).as_deref(),
            Some("azure")
        );
        // So does a key header whose value is not text.
        let mut map = headers(&[("api-key", "azure")]);
        map.insert("x-api-key", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(
            request_context(&map).credentials.api_key.as_deref(),
            Some("azure")
        );
    }

    #[test]
    fn a_repeated_header_counts_by_its_first_value() {
        let mut map = HeaderMap::new();
        map.append(X_REQUEST_ID, HeaderValue::from_static("first"));
        map.append(X_REQUEST_ID, HeaderValue::from_static("second"));
        assert_eq!(request_context(&map).request_id, "first");
        // A first value that is not text counts as absent, as `HeaderMap::get` would have it.
        let mut map = HeaderMap::new();
        map.append(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        map.append(AUTHORIZATION, HeaderValue::from_static("Bearer sk-2"));
        assert_eq!(request_context(&map).credentials.api_key, None);
    }
}
