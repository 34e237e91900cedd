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
//! Usage: `cargo run --release -p switchboard --example hyper_floor -- LISTEN UPSTREAM`
//! (both `host:port`).

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

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
        anyhow::bail!("usage: hyper_floor LISTEN UPSTREAM (both host:port)");
    };
    let listen: SocketAddr = listen.parse()?;
    let upstream: SocketAddr = upstream.parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
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
        tokio::spawn(async move {
            if let Err(err) = proxy_connection(client, upstream, &builder, watcher).await {
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
) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let server_side = TcpStream::connect(upstream).await?;
    server_side.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(server_side)).await?;
    tokio::spawn(connection);
    let sender: Upstream = Arc::new(Mutex::new(sender));
    let service = service_fn(move |request: Request<Incoming>| {
        let sender = sender.clone();
        async move { forward(&sender, request).await }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(client), service);
    watcher
        .watch(connection.into_owned())
        .await
        .map_err(|err| anyhow::anyhow!(err))?;
    Ok(())
}

async fn forward(
    sender: &Upstream,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, hyper::Error> {
    let mut sender = sender.lock().await;
    sender.ready().await?;
    sender.send_request(request).await
}
