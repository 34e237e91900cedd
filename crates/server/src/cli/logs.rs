//! `switchboard logs list|show|export`: the call log from the admin API (`GET
//! /admin/v1/logs`, `/logs/{request_id}`, `/logs/export`). `list` prints a table (or the API's
//! JSON with `--json`) and says how to get the next page; `export` writes JSON lines to a file
//! or stdout as they arrive, with a running count on stderr.

use super::client::{segment, ApiArgs, CliError, CliResult, Client};
use super::table::{format_time, Table};
use super::usage::parse_time;
use reqwest::Method;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(subcommand)]
    pub command: LogsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LogsCommand {
    /// One page of calls, newest first.
    List {
        #[command(flatten)]
        filters: Filters,
        /// Rows per page (1..=1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Start after this cursor (printed at the end of the previous page).
        #[arg(long)]
        cursor: Option<String>,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Every call recorded under one request id, with its details and stored bodies (JSON).
    Show {
        request_id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Every matching call as JSON lines, newest first.
    Export {
        #[command(flatten)]
        filters: Filters,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Stop after this many rows.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// The filters every log command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Filters {
    /// Calls started at or after: a date, a UTC time, Unix ms, or a duration ago (1h).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub from: Option<i64>,
    /// Calls started before: a date, a UTC time, Unix ms, or a duration ago.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub to: Option<i64>,
    #[arg(long)]
    pub org: Option<String>,
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long, requires = "team")]
    pub app: Option<String>,
    /// A virtual key's id.
    #[arg(long = "key", value_name = "KEY_ID")]
    pub key_id: Option<String>,
    #[arg(long)]
    pub alias: Option<String>,
    /// `provider/model`, or a provider.
    #[arg(long)]
    pub target: Option<String>,
    /// ok, error or cancelled.
    #[arg(long, value_parser = ["ok", "error", "cancelled"])]
    pub outcome: Option<String>,
    /// The HTTP status the client got.
    #[arg(long)]
    pub status: Option<u16>,
    #[arg(long)]
    pub error_code: Option<String>,
    /// A tag, `key=value`.
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long)]
    pub request_id: Option<String>,
}

impl Filters {
    fn query(&self) -> Vec<String> {
        let mut query = Vec::new();
        let texts = [
            ("org", &self.org),
            ("team", &self.team),
            ("app", &self.app),
            ("key_id", &self.key_id),
            ("alias", &self.alias),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("error_code", &self.error_code),
            ("tag", &self.tag),
            ("request_id", &self.request_id),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                query.push(format!("{name}={}", segment(value)));
            }
        }
        let numbers = [
            ("from", self.from),
            ("to", self.to),
            ("status", self.status.map(i64::from)),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                query.push(format!("{name}={value}"));
            }
        }
        query
    }
}

fn path(base: &str, query: &[String]) -> String {
    if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", query.join("&"))
    }
}

pub async fn run(args: LogsArgs) -> ExitCode {
    super::report(match args.command {
        LogsCommand::List {
            filters,
            limit,
            cursor,
            json,
            api,
        } => list(&filters, limit, cursor, json, &api).await,
        LogsCommand::Show { request_id, api } => show(&request_id, &api).await,
        LogsCommand::Export {
            filters,
            output,
            limit,
            api,
        } => export(&filters, output, limit, &api).await,
    })
}

async fn list(
    filters: &Filters,
    limit: usize,
    cursor: Option<String>,
    json: bool,
    api: &ApiArgs,
) -> CliResult<()> {
    let client = Client::new(api)?;
    let mut query = filters.query();
    query.push(format!("limit={limit}"));
    if let Some(cursor) = cursor {
        query.push(format!("cursor={}", segment(&cursor)));
    }
    let answer: Value = client
        .json(Method::GET, &path("/logs", &query), None)
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    let mut table = Table::new([
        "STARTED",
        "REQUEST_ID",
        "ORG/TEAM",
        "ALIAS",
        "TARGET",
        "STATUS",
        "LATENCY_MS",
        "TOKENS",
        "COST_USD",
    ]);
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    for row in answer["data"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let target = match (row["provider"].as_str(), row["model"].as_str()) {
            (Some(p), Some(m)) => format!("{p}/{m}"),
            _ => "-".to_owned(),
        };
        let status = match row["error_code"].as_str() {
            Some(code) => format!("{} {code}", row["status"]),
            None => row["status"].to_string(),
        };
        let tokens =
            row["input_tokens"].as_i64().unwrap_or(0) + row["output_tokens"].as_i64().unwrap_or(0);
        table.row([
            format_time(row["started_at_ms"].as_i64().unwrap_or(0)),
            text(&row["request_id"]),
            format!("{}/{}", text(&row["org"]), text(&row["team"])),
            text(&row["alias"]),
            target,
            status,
            row["latency_ms"].to_string(),
            tokens.to_string(),
            text(&row["cost_usd"]),
        ]);
    }
    print!("{}", table.render());
    if let Some(next) = answer["next_cursor"].as_str() {
        println!("more: --cursor {next}");
    }
    Ok(())
}

async fn show(request_id: &str, api: &ApiArgs) -> CliResult<()> {
    let client = Client::new(api)?;
    let answer: Value = client
        .json(Method::GET, &format!("/logs/{}", segment(request_id)), None)
        .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    Ok(())
}

/// How long an export may run in all (the client's usual timeout is for one answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

async fn export(
    filters: &Filters,
    output: Option<PathBuf>,
    limit: Option<usize>,
    api: &ApiArgs,
) -> CliResult<()> {
    let client = Client::new(api)?;
    let mut query = filters.query();
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    let request = client
        .request(Method::GET, &path("/logs/export", &query))
        .timeout(EXPORT_TIMEOUT);
    let mut response = client.send(request).await?;
    let mut out: Box<dyn Write> = match &output {
        Some(file) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(file)
                .map_err(|e| CliError::new(format!("cannot create {}: {e}", file.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let write_err = |e: std::io::Error| CliError::new(format!("cannot write the export: {e}"));
    let mut rows: u64 = 0;
    let mut last_report = std::time::Instant::now();
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            CliError::new(format!(
                "the export was cut off after {rows} rows: {}",
                e.without_url()
            ))
        })?;
        let Some(chunk) = chunk else { break };
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        out.write_all(&chunk).map_err(write_err)?;
        if last_report.elapsed() >= Duration::from_millis(500) {
            eprint!("\rexported {rows} rows");
            last_report = std::time::Instant::now();
        }
    }
    out.flush().map_err(write_err)?;
    let to = output.map_or_else(|| "stdout".to_owned(), |f| f.display().to_string());
    eprintln!("\rexported {rows} rows to {to}");
    Ok(())
}
