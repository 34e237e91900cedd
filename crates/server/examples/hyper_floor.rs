//! The floor of the gateway's HTTP stack: a reverse proxy that does nothing but pass each
//! request to the upstream and its answer back, on the same crates and the same server setup
//! the gateway serves with (tokio's current-thread runtime, hyper-util's HTTP/1-or-2 connection
//! builder with a header-read timer and a graceful-shutdown watcher, as in `serve.rs`; hyper's
//! HTTP/1.1 client connection driven by a task of its own; mimalloc). No routing, no JSON, no
//! usage record, one upstream connection per client connection.
//!
//! `bench/run.sh` runs it beside nginx and the gateway as the target `floor`, and
//! `FLOOR=1 bench/callgrind.sh` counts its instructions: what this proxy costs a request is what
//! any gateway built on these crates pays before doing any work of its own.
//!
//! With a third argument, a SQLite database URL, it also writes one usage record a request
//! through the gateway's own usage queue and writer (`switchboard_store::UsageWriter`: batches,
//! rollups, the same row as the `off` target's), and nothing else: the target `floor-ledger`.
//! `floor-ledger` against `floor` is what the billing row costs on the serving core; against
//! `off`, what all of the gateway's other work costs. The records are built from constants
//! (tokens, model) since the answer is not read, the row's shape is the `off` target's. At
//! exit (SIGTERM) the writer's unflushed batch is not waited for: a measuring tool, not a
//! gateway.
//!
//! Usage: `cargo run --release -p switchboard --example hyper_floor -- LISTEN UPSTREAM [LEDGER]`
//! (both `host:port`; LEDGER e.g. `sqlite:///tmp/floor.db`).

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::usage::{
    CallKind, Caller, Outcome, UsageQueue, UsageReceiver, UsageRecord, UsageSource,
};
use switchboard_store::{Store, StoreOptions, UsageWriter, WriterOptions};
use switchboard_types::{MicroUsd, Usage};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gateway's limit on a client's request headers (`serve.rs`), set the same way here so
/// that the server connection runs the same timer.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The client connection's upstream. Sending takes `&mut`; an HTTP/1.1 server connection
/// serves one request at a time, so the lock is never contended.
type Upstream = Arc<Mutex<SendRequest<Incoming>>>;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: hyper_floor LISTEN UPSTREAM [LEDGER] (host:port, host:port, URL)");
    };
    let listen: SocketAddr = listen.parse()?;
    let upstream: SocketAddr = upstream.parse()?;
    let ledger = args.next();
    // The usage writer reports failures (a full disk, a locked database) through tracing.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream, ledger))
}

async fn serve(
    listen: SocketAddr,
    upstream: SocketAddr,
    ledger: Option<String>,
) -> anyhow::Result<()> {
    let usage = match ledger {
        Some(url) => Some(start_ledger(&url).await?),
        None => None,
    };
    let listener = TcpListener::bind(listen).await?;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    // Never shut down: the watcher is here because the gateway wraps every connection in one.
    let graceful = GracefulShutdown::new();
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly, keep serving.
                eprintln!("could not accept a connection: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let usage = usage.clone();
        tokio::spawn(async move {
            if let Err(err) = proxy_connection(client, upstream, &builder, watcher, usage).await {
                eprintln!("connection ended: {err}");
            }
        });
    }
}

/// Serves one client connection over one upstream connection of its own.
async fn proxy_connection(
    client: TcpStream,
    upstream: SocketAddr,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    usage: Option<UsageQueue>,
) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let server_side = TcpStream::connect(upstream).await?;
    server_side.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(server_side)).await?;
    tokio::spawn(connection);
    let sender: Upstream = Arc::new(Mutex::new(sender));
    let client = TokioIo::new(client);
    // Two services rather than one with an optional ledger, so that `floor` runs exactly the
    // pass-through it always ran (the ledger's answer body type and queue are not on its path).
    let served = match usage {
        None => {
            let service = service_fn(move |request: Request<Incoming>| {
                let sender = sender.clone();
                async move { send(&sender, request).await }
            });
            let connection = builder.serve_connection_with_upgrades(client, service);
            watcher.watch(connection.into_owned()).await
        }
        Some(usage) => {
            let service = service_fn(move |request: Request<Incoming>| {
                let sender = sender.clone();
                let usage = usage.clone();
                async move { forward_recorded(&sender, request, &usage).await }
            });
            let connection = builder.serve_connection_with_upgrades(client, service);
            watcher.watch(connection.into_owned()).await
        }
    };
    served.map_err(|err| anyhow::anyhow!(err))
}

/// The answer's body with a ledger: the upstream's, or none when the usage queue is full (503).
type Body = Either<Incoming, Empty<Bytes>>;

/// Passes the request on and writes its usage record.
async fn forward_recorded(
    sender: &Upstream,
    request: Request<Incoming>,
    usage: &UsageQueue,
) -> Result<Response<Body>, hyper::Error> {
    // As the gateway does: a slot is reserved at admission, so that the record can always be
    // sent, and a request that finds the queue full is shed.
    let Some(slot) = usage.reserve() else {
        let mut shed = Response::new(Either::Right(Empty::new()));
        *shed.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        return Ok(shed);
    };
    let started = std::time::Instant::now();
    let started_at_ms = switchboard_types::calendar::now_ms();
    // A failed call is recorded too, as the gateway records it (hyper then closes the
    // connection).
    let (status, answer) = match send(sender, request).await {
        Ok(response) => (response.status().as_u16(), Ok(response.map(Either::Left))),
        Err(err) => (502, Err(err)),
    };
    slot.send(record(started_at_ms, started.elapsed(), status));
    answer
}

async fn send(
    sender: &Upstream,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, hyper::Error> {
    let mut sender = sender.lock().await;
    sender.ready().await?;
    sender.send_request(request).await
}

/// The store, its migrations and the usage writer, as the gateway starts them (the writer's
/// default batch and flush interval).
async fn start_ledger(url: &str) -> anyhow::Result<UsageQueue> {
    let store = Store::connect(url, &StoreOptions::default()).await?;
    store.migrate().await?;
    let (queue, records): (UsageQueue, UsageReceiver) =
        UsageQueue::channel(switchboard_core::usage::DEFAULT_CAPACITY);
    // Never stopped: the process ends at SIGTERM (see the module docs).
    let tasks = TaskTracker::new();
    UsageWriter::spawn(
        store,
        records,
        WriterOptions::default(),
        &tasks,
        CancellationToken::new(),
    );
    Ok(queue)
}

/// A record shaped like those of the benchmark's `off` target: the admin key (no caller), the
/// call log's own columns off, the mock's usage.
fn record(started_at_ms: i64, took: Duration, status: u16) -> UsageRecord {
    let ok = status == 200;
    // The gateway's request id: a UUIDv7 in 32 hex digits, encoded without the formatter.
    let mut id = [0u8; uuid::fmt::Simple::LENGTH];
    let request_id = uuid::Uuid::now_v7()
        .simple()
        .encode_lower(&mut id)
        .to_owned();
    UsageRecord {
        request_id,
        started_at_ms,
        caller: Caller::default(),
        kind: CallKind::Chat,
        alias: "bench".to_owned(),
        served_alias: None,
        provider: Some("mock".to_owned()),
        model: Some("bench-upstream".to_owned()),
        stream: false,
        usage: Usage {
            input_tokens: 12,
            output_tokens: 20,
            ..Usage::default()
        },
        usage_source: UsageSource::Reported,
        cost: MicroUsd(230),
        priced: true,
        latency_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        ttft_ms: None,
        attempts: 1,
        outcome: if ok { Outcome::Ok } else { Outcome::Error },
        status,
        error_code: (!ok).then(|| "upstream_error".to_owned()),
        tags: Vec::new(),
        details: Default::default(),
    }
}
