//! The floor of the gateway's HTTP stack: a reverse proxy that does nothing but pass each
//! request to the upstream and its answer back, on the same crates the gateway serves with
//! (tokio's current-thread runtime, hyper's HTTP/1.1 server and client connections, mimalloc).
//! No routing, no JSON, no usage record, one upstream connection per client connection.
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
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(err) = proxy_connection(client, upstream).await {
                eprintln!("connection ended: {err}");
            }
        });
    }
}

/// Serves one client connection over one upstream connection of its own.
async fn proxy_connection(client: TcpStream, upstream: SocketAddr) -> anyhow::Result<()> {
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
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
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
