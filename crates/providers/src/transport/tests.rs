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

// ---- the plain-HTTP pool ---------------------------------------------------------------------

mod plain_pool {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex as StdMutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const BODY: &str = r#"{"ok":true}"#;

    /// How the raw test server treats a connection after each answer.
    #[derive(Clone, Copy)]
    enum After {
        KeepAlive,
        /// Answers with `connection: close` and closes.
        Close,
        /// Keeps the connection, then closes it once idle for this long.
        CloseWhenIdle(Duration),
    }

    struct Server {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        heads: Arc<StdMutex<Vec<String>>>,
    }

    /// A bare HTTP/1.1 server on a TCP socket, so that the test sees connections as they are.
    async fn server(after: After) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(StdMutex::new(Vec::new()));
        let (count, seen) = (accepted.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let idle = match after {
                            After::CloseWhenIdle(limit) => limit,
                            _ => Duration::from_secs(60),
                        };
                        let Ok(Some(head)) =
                            tokio::time::timeout(idle, read_request(&mut socket, &mut buf)).await
                        else {
                            return; // idle for too long, or the client closed
                        };
                        seen.lock().unwrap().push(head);
                        let close = matches!(after, After::Close);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{BODY}",
                            BODY.len(),
                            if close { "connection: close\r\n" } else { "" },
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Server {
            addr,
            accepted,
            heads,
        }
    }

    /// Reads one request (head and `content-length` body); `None` when the client closed.
    async fn read_request(socket: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    buf.drain(..end + 4 + length);
                    return Some(head);
                }
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn upstream() -> Upstream<'static> {
        Upstream {
            model: "m",
            timeouts: crate::Timeouts {
                connect: Duration::from_secs(2),
                first_byte: Duration::from_secs(5),
                total: Duration::from_secs(10),
                idle: Duration::from_secs(5),
            },
            default_max_tokens: 16,
            request_id: "req-pool",
            traceparent: None,
        }
    }

    fn uri(server: &Server) -> Uri {
        format!("http://{}/v1/chat/completions", server.addr)
            .parse()
            .unwrap()
    }

    async fn post(transport: &Transport, server: &Server) -> Answer {
        let headers = with_common_headers(HeaderMap::new());
        let call = upstream();
        transport
            .post(PostJson {
                uri: uri(server),
                headers: &headers,
                body: b"{}".to_vec(),
                call: &call,
                error_message: |_| None,
                secret: None,
            })
            .await
            .unwrap()
    }

    async fn round_trip(transport: &Transport, server: &Server) {
        let body = post(transport, server).await.bytes().await.unwrap();
        assert_eq!(&body[..], BODY.as_bytes());
    }

    #[tokio::test]
    async fn connections_are_reused_and_requests_are_origin_form() {
        let server = server(After::KeepAlive).await;
        let transport = Transport::default();
        for _ in 0..5 {
            round_trip(&transport, &server).await;
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(transport.plain.idle_count(&uri(&server)), 1);
        let heads = server.heads.lock().unwrap();
        assert!(
            heads[0].starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
            "{heads:?}"
        );
        let host = format!("host: {}", server.addr);
        assert!(
            heads[0].lines().any(|l| l.eq_ignore_ascii_case(&host)),
            "{heads:?}"
        );
        assert!(heads[0].contains("x-request-id: req-pool"), "{heads:?}");
    }

    #[tokio::test]
    async fn concurrent_requests_open_connections_that_are_then_shared() {
        let server = server(After::KeepAlive).await;
        let transport = Transport::default();
        let (a, b) = tokio::join!(post(&transport, &server), post(&transport, &server));
        a.bytes().await.unwrap();
        b.bytes().await.unwrap();
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
        for _ in 0..4 {
            round_trip(&transport, &server).await;
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_not_reused() {
        let server = server(After::Close).await;
        let transport = Transport::default();
        for _ in 0..3 {
            round_trip(&transport, &server).await;
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_idle_connection_closed_by_the_server_is_replaced() {
        let server = server(After::CloseWhenIdle(Duration::from_millis(50))).await;
        let transport = Transport::default();
        round_trip(&transport, &server).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        round_trip(&transport, &server).await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unread_body_closes_its_connection() {
        let server = server(After::KeepAlive).await;
        let transport = Transport::default();
        drop(post(&transport, &server).await);
        round_trip(&transport, &server).await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
        round_trip(&transport, &server).await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let headers = with_common_headers(HeaderMap::new());
        let call = upstream();
        let err = Transport::default()
            .post(PostJson {
                uri: format!("http://{addr}/x").parse().unwrap(),
                headers: &headers,
                body: Vec::new(),
                call: &call,
                error_message: |_| None,
                secret: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Connect(_)), "{err:?}");
    }
}
