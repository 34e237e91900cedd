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

// ---- the plain-HTTP client -------------------------------------------------------------------

mod plain_http {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const BODY: &str = r#"{"ok":true}"#;

    /// What the raw test server sends for one request: pieces written with a pause between
    /// them (so that the client sees them in separate reads), then whether to close.
    struct Reply {
        pieces: Vec<Vec<u8>>,
        close: bool,
    }

    fn ok_reply() -> Reply {
        Reply {
            pieces: vec![format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
                BODY.len()
            )
            .into_bytes()],
            close: false,
        }
    }

    /// How the server answers: from the request's head and body length.
    type Answer = fn(&str, usize) -> Reply;

    struct Server {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        heads: Arc<parking_lot::Mutex<Vec<(String, usize)>>>,
    }

    /// A bare HTTP/1.1 server on a TCP socket, so that the test sees connections and bytes as
    /// they are. Connections idle for `idle` are closed by the server.
    async fn server_with(answer: Answer, idle: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (count, seen) = (accepted.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Ok(Some((head, length))) =
                            tokio::time::timeout(idle, read_request(&mut socket, &mut buf)).await
                        else {
                            return; // idle for too long, or the client closed
                        };
                        let reply = answer(&head, length);
                        seen.lock().push((head, length));
                        for (i, piece) in reply.pieces.iter().enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if socket.write_all(piece).await.is_err() {
                                return;
                            }
                        }
                        if reply.close {
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

    async fn server(answer: Answer) -> Server {
        server_with(answer, Duration::from_secs(60)).await
    }

    /// Reads one request (head and `content-length` body): the head and the body's length;
    /// `None` when the client closed.
    async fn read_request(
        socket: &mut tokio::net::TcpStream,
        buf: &mut Vec<u8>,
    ) -> Option<(String, usize)> {
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
                    return Some((head, length));
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

    async fn post_body(
        transport: &Transport,
        server: &Server,
        body: Vec<u8>,
    ) -> Result<Answer2, ProviderError> {
        let headers = with_common_headers(HeaderMap::new());
        let call = upstream();
        transport
            .post(PostJson {
                uri: uri(server),
                headers: &headers,
                body,
                call: &call,
                error_message: |body| Some(String::from_utf8_lossy(body).into_owned()),
                secret: None,
            })
            .await
    }

    type Answer2 = super::Answer;

    async fn post(transport: &Transport, server: &Server) -> Answer2 {
        post_body(transport, server, b"{}".to_vec()).await.unwrap()
    }

    async fn round_trip(transport: &Transport, server: &Server) -> Bytes {
        post(transport, server).await.bytes().await.unwrap()
    }

    #[tokio::test]
    async fn connections_are_reused_and_requests_are_origin_form() {
        let server = server(|_, _| ok_reply()).await;
        let transport = Transport::default();
        for _ in 0..5 {
            assert_eq!(&round_trip(&transport, &server).await[..], BODY.as_bytes());
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(transport.plain.idle_count(&uri(&server)), 1);
        let heads = server.heads.lock();
        let (head, length) = &heads[0];
        assert!(
            head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
            "{head}"
        );
        let host = format!("host: {}", server.addr);
        assert!(
            head.lines().any(|l| l.eq_ignore_ascii_case(&host)),
            "{head}"
        );
        assert!(head.contains("x-request-id: req-pool"), "{head}");
        assert_eq!(*length, 2);
    }

    #[tokio::test]
    async fn concurrent_requests_open_connections_that_are_then_shared() {
        let server = server(|_, _| ok_reply()).await;
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
        let server = server(|_, _| {
            let mut reply = ok_reply();
            reply.pieces = vec![format!(
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
                BODY.len()
            )
            .into_bytes()];
            reply.close = true;
            reply
        })
        .await;
        let transport = Transport::default();
        for _ in 0..3 {
            round_trip(&transport, &server).await;
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_idle_connection_closed_by_the_server_is_replaced() {
        let server = server_with(|_, _| ok_reply(), Duration::from_millis(50)).await;
        let transport = Transport::default();
        round_trip(&transport, &server).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        round_trip(&transport, &server).await;
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unread_body_closes_its_connection() {
        let server = server(|_, _| ok_reply()).await;
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

    /// A chunked body in pieces that split the head, a chunk size and a chunk's data; an
    /// interim 100 Continue before the answer; the connection is reused after it.
    #[tokio::test]
    async fn chunked_bodies_split_anywhere_are_joined() {
        let server = server(|_, _| Reply {
            pieces: vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-enc".to_vec(),
                b"oding: chunked\r\n\r\n5\r\n{\"ok".to_vec(),
                b"\"\r\n".to_vec(),
                b"7\r\n:true}\n\r\n0\r".to_vec(),
                b"\n\r\n".to_vec(),
            ],
            close: false,
        })
        .await;
        let transport = Transport::default();
        for _ in 0..2 {
            assert_eq!(
                &round_trip(&transport, &server).await[..],
                b"{\"ok\":true}\n"
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    /// Streams read chunk by chunk see each piece as it arrives.
    #[tokio::test]
    async fn chunked_streams_deliver_pieces_as_they_come() {
        let server = server(|_, _| Reply {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
                b"3\r\none\r\n".to_vec(),
                b"3\r\ntwo\r\n".to_vec(),
                b"0\r\n\r\n".to_vec(),
            ],
            close: false,
        })
        .await;
        let transport = Transport::default();
        let mut body = post(&transport, &server).await.body;
        let mut pieces = Vec::new();
        while let Some(frame) = body.frame().await {
            pieces.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(pieces, vec![Bytes::from("one"), Bytes::from("two")]);
        assert_eq!(transport.plain.idle_count(&uri(&server)), 1);
    }

    /// Without any framing, the body runs to the connection's close, which is then not reused.
    #[tokio::test]
    async fn an_unframed_body_runs_to_the_close() {
        let server = server(|_, _| Reply {
            pieces: vec![
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"a\":".to_vec(),
                b"1}".to_vec(),
            ],
            close: true,
        })
        .await;
        let transport = Transport::default();
        for _ in 0..2 {
            assert_eq!(&round_trip(&transport, &server).await[..], b"{\"a\":1}");
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    }

    /// A body cut short by the server is an error, never a shorter answer.
    #[tokio::test]
    async fn a_truncated_body_is_an_error() {
        let server = server(|_, _| Reply {
            pieces: vec![b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"a\":".to_vec()],
            close: true,
        })
        .await;
        let err = post(&Transport::default(), &server)
            .await
            .bytes()
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Closed(_)), "{err:?}");
    }

    /// An error status keeps its `retry-after` and message, and the connection stays usable.
    #[tokio::test]
    async fn error_answers_keep_their_wait_and_their_connection() {
        let server = server(|head, _| {
            if head.contains("x-fail") {
                return ok_reply();
            }
            Reply {
                pieces: vec![b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 9\r\n\r\nslow down"
                    .to_vec()],
                close: false,
            }
        })
        .await;
        let transport = Transport::default();
        for _ in 0..2 {
            let Err(err) = post_body(&transport, &server, b"{}".to_vec()).await else {
                panic!("a 429 is an error");
            };
            assert_eq!(
                err,
                ProviderError::Status {
                    status: 429,
                    message: "slow down".into(),
                    retry_after: Some(Duration::from_secs(3)),
                }
            );
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    }

    /// A body larger than what is copied after the head goes out whole.
    #[tokio::test]
    async fn large_bodies_are_sent_whole() {
        let server = server(|_, _| ok_reply()).await;
        let transport = Transport::default();
        let big = vec![b'x'; 300 * 1024];
        let answer = post_body(&transport, &server, big.clone()).await.unwrap();
        answer.bytes().await.unwrap();
        assert_eq!(server.heads.lock()[0].1, big.len());
    }

    /// A server that answers garbage gives a `Closed` error, not a hang or a panic.
    #[tokio::test]
    async fn a_garbage_answer_is_an_error() {
        let server = server(|_, _| Reply {
            pieces: vec![b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()],
            close: true,
        })
        .await;
        let Err(err) = post_body(&Transport::default(), &server, b"{}".to_vec()).await else {
            panic!("garbage is an error");
        };
        assert!(matches!(err, ProviderError::Closed(_)), "{err:?}");
    }
}
