//! Unit tests of the transport: `retry-after` parsing, message summaries, and the connect limit.

use super::*;
use std::time::UNIX_EPOCH;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn retry_after_seconds() {
    let h = headers(&[("retry-after", "7")]);
    assert_eq!(
        retry_after(&h, SystemTime::now()),
        Some(Duration::from_secs(7))
    );
}

#[test]
fn retry_after_fractional_seconds() {
    let h = headers(&[("retry-after", " 1.5 ")]);
    assert_eq!(
        retry_after(&h, SystemTime::now()),
        Some(Duration::from_millis(1500))
    );
}

#[test]
fn retry_after_ms_wins() {
    let h = headers(&[("retry-after", "7"), ("retry-after-ms", "250")]);
    assert_eq!(
        retry_after(&h, SystemTime::now()),
        Some(Duration::from_millis(250))
    );
}

#[test]
fn retry_after_bad_ms_falls_back_to_seconds() {
    let h = headers(&[("retry-after", "3"), ("retry-after-ms", "-5")]);
    assert_eq!(
        retry_after(&h, SystemTime::now()),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn retry_after_http_date() {
    // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 seconds after the epoch.
    let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]);
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
    assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
    let later = UNIX_EPOCH + Duration::from_secs(784_111_777 + 30);
    assert_eq!(retry_after(&h, later), Some(Duration::ZERO));
}

#[test]
fn retry_after_absent_or_garbage() {
    assert_eq!(retry_after(&HeaderMap::new(), SystemTime::now()), None);
    let h = headers(&[("retry-after", "soon")]);
    assert_eq!(retry_after(&h, SystemTime::now()), None);
    let h = headers(&[("retry-after", "1e400")]);
    assert_eq!(retry_after(&h, SystemTime::now()), None);
}

#[test]
fn summarise_redacts_collapses_and_truncates() {
    assert_eq!(
        summarise("bad key  sk-secret\n given", Some("sk-secret")),
        "bad key ***** given"
    );
    let long = "é".repeat(1000);
    let short = summarise(&long, None);
    assert_eq!(short.chars().count(), MAX_MESSAGE_CHARS + 3);
    assert!(short.ends_with("..."));
}

/// The connect limit covers the TLS handshake too: a server that accepts TCP but never answers
/// the handshake is a connect timeout, not a first-byte one.
#[tokio::test]
async fn a_stalled_tls_handshake_is_a_connect_timeout() {
    // Connections queue in the backlog and are never served.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = crate::ProviderSettings::Anthropic {
        base_url: Some(format!("https://{addr}")),
        api_key: "sk-test-secret".into(),
        version: None,
    };
    let provider = crate::build("stalled", &settings).unwrap();
    let call = Upstream {
        model: "m",
        timeouts: crate::Timeouts {
            connect: Duration::from_millis(200),
            ..crate::Timeouts::default()
        },
        default_max_tokens: 16,
        request_id: "req-1",
        traceparent: None,
    };
    let req = switchboard_types::ChatRequest {
        model: "m".into(),
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let err = provider.chat(&call, &req).await.unwrap_err();
    assert_eq!(err, ProviderError::Timeout(TimeoutKind::Connect));
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[test]
fn host_header_keeps_only_a_non_default_port() {
    let host = |url: &str| {
        with_common_headers(HeaderMap::new(), url)
            .get(HOST)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        host("https://api.openai.com/v1").as_deref(),
        Some("api.openai.com")
    );
    assert_eq!(
        host("http://127.0.0.1:8000/v1").as_deref(),
        Some("127.0.0.1:8000")
    );
    assert_eq!(host("http://localhost:80").as_deref(), Some("localhost"));
    assert_eq!(
        host("https://example.com:8443/").as_deref(),
        Some("example.com:8443")
    );
    assert_eq!(
        host("http://[::1]:11434/v1").as_deref(),
        Some("[::1]:11434")
    );
}

#[test]
fn a_providers_own_host_header_wins() {
    let mut own = HeaderMap::new();
    own.insert(HOST, HeaderValue::from_static("gateway.internal"));
    let headers = with_common_headers(own, "http://10.0.0.1:8080");
    assert_eq!(headers.get(HOST).unwrap(), "gateway.internal");
}
