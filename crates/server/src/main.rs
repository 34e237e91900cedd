//! `switchboard`: the command line. Each subcommand is a thin wrapper over a library function;
//! `anyhow` lives only here.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use switchboard::{cli, mock_upstream, serve};

// The request path allocates many small, short-lived buffers across threads; mimalloc serves
// them markedly cheaper than glibc's malloc (about a tenth of the gateway's CPU in profiles).
// Its v2 line (the crate's `v2` feature): the crate calls `mi_malloc_aligned` for every
// allocation, which v3 serves through a slower path (~60 instructions); 1.2% fewer
// instructions and ~3% more throughput per request with v2 (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "An AI gateway: one endpoint in front of every LLM provider."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway. With no config file at all, starts an offline demo.
    Serve {
        /// Config file (YAML). Default ./switchboard.yaml; when it does not exist and no
        /// --config is given, an embedded demo starts.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address for the demo (ignored when a config file is used: set `listen:`).
        #[arg(long, default_value = "127.0.0.1:8080")]
        demo_listen: SocketAddr,
    },
    /// Validate a config file; prints every problem with file, line, column and key.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Make the stored providers, models, orgs, teams, apps, rate limits and budgets equal to a
    /// file (config as code): prints the diff, then applies it.
    Apply(cli::apply::ApplyArgs),
    /// Write the stored config as YAML that `apply` accepts (provider API keys are left out).
    Export(cli::apply::ExportArgs),
    /// Create, list, revoke and rotate virtual keys through the admin API.
    Keys(cli::keys::KeysArgs),
    /// Usage totals (requests, errors, tokens, cost), filtered and grouped, from the admin API.
    Usage(cli::usage::UsageArgs),
    /// The call log: list, show one request, export as JSON lines.
    Logs(cli::logs::LogsArgs),
    /// Requests, errors, latency percentiles, tokens and cost over time (or a top list).
    Analytics(cli::analytics::AnalyticsArgs),
    /// The rate limits and budgets that apply to an org, team, app or key, and how they stand.
    Limits(cli::limits::LimitsArgs),
    /// Run the storage migrations (serve runs them too); safe to repeat.
    Migrate(cli::db::DbArgs),
    /// The hash-chained audit log.
    Audit(cli::db::AuditArgs),
    /// A fast OpenAI-compatible mock upstream, for the benchmark.
    #[command(hide = true)]
    MockUpstream {
        #[arg(long, default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        #[arg(long, default_value_t = 20)]
        chunks: u32,
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    switchboard::telemetry::init();
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<ExitCode> = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                config,
                demo_listen,
            } => {
                serve::run(config, demo_listen).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Check { config } => Ok(check(&config)),
            Command::Apply(args) => Ok(cli::apply::apply(args).await),
            Command::Export(args) => Ok(cli::apply::export(args).await),
            Command::Keys(args) => Ok(cli::keys::run(args).await),
            Command::Usage(args) => Ok(cli::usage::run(args).await),
            Command::Limits(args) => Ok(cli::limits::run(args).await),
            Command::Logs(args) => Ok(cli::logs::run(args).await),
            Command::Analytics(args) => Ok(cli::analytics::run(args).await),
            Command::Migrate(args) => Ok(cli::db::migrate(args).await),
            Command::Audit(args) => Ok(cli::db::audit(args).await),
            Command::MockUpstream {
                listen,
                chunks,
                chunk_delay_ms,
                latency_ms,
            } => {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                eprintln!(
                    "mock upstream listening on http://{}",
                    listener.local_addr()?
                );
                let opts = mock_upstream::MockUpstreamOptions {
                    chunks,
                    chunk_delay_ms,
                    latency_ms,
                };
                mock_upstream::run(listener, opts, serve::shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match switchboard_core::config::load_file(path) {
        Ok(config) => {
            println!(
                "{}: OK ({} providers, {} models)",
                path.display(),
                config.providers.len(),
                config.models.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for problem in &errors.problems {
                eprintln!("{problem}");
            }
            eprintln!("{}: {} problem(s)", path.display(), errors.problems.len());
            ExitCode::FAILURE
        }
    }
}

/// The async runtime. With one CPU available (a container limit, or `taskset`), a
/// current-thread runtime serves the same load with less cross-thread signalling than a
/// one-worker multi-thread runtime.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus == 1 && std::env::var_os("SWITCHBOARD_MULTI_THREAD").is_none() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    }
}
