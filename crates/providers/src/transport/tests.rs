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

/// A keep-alive HTTP/1.1 server for the pool's tests: answers every request on a connection
/// with `body`, counts the connections it accepted, and after `close_after` answers on one
/// connection closes it.
struct CountingServer {
    addr: std::net::SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingServer {
    async fn start(body: &'static str, close_after: usize) -> CountingServer {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..close_after {
                        // The tests' requests arrive in one read: headers and a small body.
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tcp.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        CountingServer { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = format!("http://{}/v1/chat/completions", self.addr)
            .parse()
            .unwrap();
        request
            .headers_mut()
            .insert(HOST, HeaderValue::from_str(&self.addr.to_string()).unwrap());
        request
    }
}

async fn read_all(response: Response<UpstreamBody>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

/// One request through `pool` to `server`, its answer read to the end.
async fn round_trip(pool: &Arc<PlainPool>, server: &CountingServer) -> Bytes {
    let response = pool
        .send(server.request(), Duration::from_secs(2))
        .await
        .unwrap();
    read_all(response).await
}

#[tokio::test]
async fn plain_http_connections_are_reused_once_their_body_is_read() {
    let server = CountingServer::start(r#"{"ok":true}"#, usize::MAX).await;
    let pool = Arc::new(PlainPool::default());
    for _ in 0..3 {
        assert_eq!(round_trip(&pool, &server).await, r#"{"ok":true}"#);
    }
    assert_eq!(server.accepted(), 1);
    assert_eq!(pool.idle(&server.addr.to_string()), 1);

    // Two at once need two connections; both come back.
    let (a, b) = tokio::join!(
        pool.send(server.request(), Duration::from_secs(2)),
        pool.send(server.request(), Duration::from_secs(2))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    read_all(a).await;
    read_all(b).await;
    assert_eq!(server.accepted(), 2);
    assert_eq!(pool.idle(&server.addr.to_string()), 2);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
    let server = CountingServer::start(r#"{"ok":true}"#, usize::MAX).await;
    let pool = Arc::new(PlainPool::default());
    let response = pool
        .send(server.request(), Duration::from_secs(2))
        .await
        .unwrap();
    drop(response);
    assert_eq!(pool.idle(&server.addr.to_string()), 0);
    round_trip(&pool, &server).await;
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    // One answer per connection, then the server closes it.
    let server = CountingServer::start(r#"{"ok":true}"#, 1).await;
    let pool = Arc::new(PlainPool::default());
    round_trip(&pool, &server).await;
    // Once hyper's connection task has read the server's close, the pooled connection is known
    // closed and must not be taken.
    let authority = server.addr.to_string();
    for _ in 0..200 {
        if pool.idle(&authority) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pool.idle(&authority), 0);
    assert_eq!(round_trip(&pool, &server).await, r#"{"ok":true}"#);
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_refused_plain_connection_is_a_connect_error() {
    // Bind then drop: nothing listens on the port any more.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let pool = Arc::new(PlainPool::default());
    let mut request = Request::new(Full::new(Bytes::new()));
    *request.uri_mut() = format!("http://{addr}/v1/models").parse().unwrap();
    let err = pool
        .send(request, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn a_connection_idle_too_long_is_not_reused() {
    let server = CountingServer::start(r#"{"ok":true}"#, usize::MAX).await;
    let pool = Arc::new(PlainPool::default());
    round_trip(&pool, &server).await;
    assert_eq!(pool.idle(&server.addr.to_string()), 1);
    // The pool reads tokio's clock: move it past the idle limit, then let it run again.
    tokio::time::pause();
    tokio::time::advance(POOL_IDLE + Duration::from_secs(1)).await;
    tokio::time::resume();
    round_trip(&pool, &server).await;
    assert_eq!(server.accepted(), 2);
    assert_eq!(pool.idle(&server.addr.to_string()), 1);
}
