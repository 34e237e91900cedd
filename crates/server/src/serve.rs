//! `switchboard serve`: load the config (or start the offline demo), bind, serve until a
//! shutdown signal, and let in-flight requests finish.

use crate::http::{self, PeerIp};
use crate::reload;
use crate::runtime::{ConfigSource, Runtime};
use anyhow::Context as _;
use futures::FutureExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rand::RngCore as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::config::{self, Secret};
use switchboard_core::Gateway;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a shutdown waits for in-flight requests (long streams included) before exiting.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The config file `serve` reads when no `--config` is given.
pub const DEFAULT_CONFIG: &str = "switchboard.yaml";

pub async fn run(config_path: Option<PathBuf>, demo_listen: SocketAddr) -> anyhow::Result<()> {
    let path = config_path.or_else(|| {
        let default = PathBuf::from(DEFAULT_CONFIG);
        default.exists().then_some(default)
    });
    let (source, demo_key) = match path {
        Some(path) => (ConfigSource::File(path), None),
        None => {
            let key = Secret(demo_key());
            let text = config::demo_yaml(&key, demo_listen);
            let source = ConfigSource::Text {
                name: "(demo)".to_owned(),
                text,
            };
            (source, Some(key))
        }
    };
    let runtime = Runtime::open(source).await?;
    let listen = runtime.gateway.snapshot().config.listen;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let server = start_runtime(listener, runtime)?;
    tracing::info!(addr = %server.addr, "Switchboard is listening.");
    if let Some(key) = demo_key {
        // Printed once the socket accepts, so that the curl line works the moment it appears.
        print_demo_banner(key.expose(), server.addr, Path::new(DEFAULT_CONFIG));
    }
    shutdown_signal().await;
    tracing::info!(
        grace_secs = SHUTDOWN_GRACE.as_secs(),
        "Shutting down: finishing in-flight requests."
    );
    server.shutdown_within(SHUTDOWN_GRACE).await;
    Ok(())
}

/// A running gateway (also what integration tests start on port 0).
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub runtime: Arc<Runtime>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops accepting connections, waits for in-flight requests to finish, then writes their
    /// usage records and settles their limit counters.
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::MAX).await;
    }

    /// [`Server::shutdown`], waiting at most `grace` for in-flight requests. The usage records
    /// of every request that ended are written either way; the usage writer then waits its own
    /// grace (10 s) for requests still running, and a record that comes later is lost with the
    /// process (logged).
    pub async fn shutdown_within(self, grace: Duration) {
        self.stop.cancel();
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(%err, "The server task failed."),
            Err(_) => {
                tracing::warn!(
                    "In-flight requests did not finish within the grace period; cutting them off."
                )
            }
        }
        self.runtime.drain().await;
        // Spans of the last requests are queued by now (their meters have dropped).
        let gateway = self.gateway.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || gateway.shutdown_telemetry()).await {
            tracing::warn!(%err, "The trace exporter did not stop cleanly.");
        }
    }
}

/// Opens storage, builds the gateway from `source` and serves it on `listener`. A file source
/// is reloaded on SIGHUP and whenever the file changes; stored changes are followed always.
pub async fn start(listener: TcpListener, source: ConfigSource) -> anyhow::Result<Server> {
    // Before the gateway is built: its router registers per-target metric handles.
    let _ = http::metrics::handle();
    let runtime = Runtime::open(source).await?;
    start_runtime(listener, runtime)
}

fn start_runtime(listener: TcpListener, runtime: Runtime) -> anyhow::Result<Server> {
    let addr = listener.local_addr()?;
    // Installed before the first request, so that no count is lost.
    let _ = http::metrics::handle();
    let runtime = Arc::new(runtime);
    let gateway = runtime.gateway.clone();
    let stop = CancellationToken::new();
    if let ConfigSource::File(path) = &runtime.source {
        reload::spawn(runtime.clone(), path.clone(), stop.clone());
    }
    runtime.follow_changes(stop.clone());
    runtime.alerts.start(stop.clone());
    let app = http::App::new(runtime.clone());
    let task = tokio::spawn(accept_loop(listener, app, stop.clone()));
    Ok(Server {
        addr,
        gateway,
        runtime,
        stop,
        task,
    })
}

/// How long a client may take to send a request's headers. Without it, a client that opens
/// connections and trickles bytes would hold them forever.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Accepts connections until `stop`, then lets every open connection finish its in-flight
/// requests (graceful shutdown) before returning.
async fn accept_loop(listener: TcpListener, app: http::App, stop: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off briefly, keep serving.
                    tracing::warn!(%err, "Could not accept a connection.");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Nagle's algorithm meeting delayed ACKs stalls small responses by ~40 ms: disable it
        // on every accepted connection.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "Could not set TCP_NODELAY.");
        }
        // The peer's address goes with every request of the connection, for the call log.
        let peer = PeerIp::of(&peer);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            app.clone()
                .serve(req, peer.clone())
                .map(Ok::<_, std::convert::Infallible>)
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            futures::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// A fresh admin key for the embedded offline demo (192 random bits).
fn demo_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sk-sb-demo-{hex}")
}

fn print_demo_banner(key: &str, listen: SocketAddr, default: &Path) {
    println!(
        "\nSwitchboard demo: no {} here, so this runs offline with the built-in mock provider\n\
         behind the model `demo`. Write a config file (see examples/) to serve real providers.\n\n\
         Admin key (shown once): {key}\n\nTry:\n  curl http://{listen}/v1/chat/completions \\\n    \
         -H \"Authorization: Bearer {key}\" -H 'content-type: application/json' \\\n    \
         -d '{{\"model\":\"demo\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'\n",
        default.display()
    );
}
