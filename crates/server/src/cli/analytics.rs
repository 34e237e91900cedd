//! `switchboard analytics`: a time series (or, with `--top N`, a top list) from the admin API's
//! analytics routes, as a table or the API's JSON.

use super::client::{segment, ApiArgs, CliResult, Client};
use super::table::{format_time, Table};
use super::usage::parse_time;
use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct AnalyticsArgs {
    /// Group by alias, target, team, app, key or tag (default: one series).
    #[arg(long, value_parser = ["none", "alias", "target", "team", "app", "key", "tag"])]
    pub group_by: Option<String>,
    /// Bucket width of the series.
    #[arg(long, value_parser = ["minute", "hour", "day"])]
    pub interval: Option<String>,
    /// From: a date, a UTC time, Unix ms, or a duration ago (default 24h).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub from: Option<i64>,
    /// To: a date, a UTC time, Unix ms, or a duration ago (default now).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub to: Option<i64>,
    #[arg(long)]
    pub org: Option<String>,
    /// Filter (at most one of team, alias, target, key, tag).
    #[arg(long)]
    pub team: Option<String>,
    #[arg(long, requires = "team")]
    pub app: Option<String>,
    #[arg(long)]
    pub alias: Option<String>,
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long = "key", value_name = "KEY_ID")]
    pub key_id: Option<String>,
    #[arg(long)]
    pub tag: Option<String>,
    /// Show the top N groups over the range instead of a series (needs --group-by).
    #[arg(
        long,
        value_name = "N",
        requires = "group_by",
        conflicts_with = "interval"
    )]
    pub top: Option<usize>,
    /// What --top orders by.
    #[arg(long, value_parser = ["requests", "cost", "tokens", "errors", "latency"], requires = "top")]
    pub order_by: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub async fn run(args: AnalyticsArgs) -> ExitCode {
    super::report(analytics(&args).await)
}

async fn analytics(args: &AnalyticsArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let mut query = Vec::new();
    let texts = [
        ("group_by", &args.group_by),
        ("interval", &args.interval),
        ("org", &args.org),
        ("team", &args.team),
        ("app", &args.app),
        ("alias", &args.alias),
        ("target", &args.target),
        ("key_id", &args.key_id),
        ("tag", &args.tag),
        ("order_by", &args.order_by),
    ];
    for (name, value) in texts {
        if let Some(value) = value {
            query.push(format!("{name}={}", segment(value)));
        }
    }
    for (name, value) in [("from", args.from), ("to", args.to)] {
        if let Some(value) = value {
            query.push(format!("{name}={value}"));
        }
    }
    let route = match args.top {
        Some(n) => {
            query.push(format!("limit={n}"));
            "/analytics/top"
        }
        None => "/analytics/timeseries",
    };
    let path = format!("{route}?{}", query.join("&"));
    let answer: Value = client.json(Method::GET, &path, None).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    print!("{}", render(&answer, args.top.is_none()));
    Ok(())
}

fn render(answer: &Value, series: bool) -> String {
    let mut table = Table::new([
        "TIME", "GROUP", "REQUESTS", "ERRORS", "ERROR_%", "P50_MS", "P95_MS", "P99_MS", "TTFT_MS",
        "TOKENS", "COST_USD",
    ]);
    let ms = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
    };
    for p in answer["data"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        table.row([
            if series {
                format_time(p["t"].as_i64().unwrap_or(0))
            } else {
                "-".to_owned()
            },
            p["group"].as_str().unwrap_or("-").to_owned(),
            p["requests"].to_string(),
            p["errors"].to_string(),
            format!("{:.1}", p["error_rate"].as_f64().unwrap_or(0.0) * 100.0),
            ms(&p["p50_ms"]),
            ms(&p["p95_ms"]),
            ms(&p["p99_ms"]),
            ms(&p["avg_ttft_ms"]),
            p["total_tokens"].to_string(),
            p["cost_usd"].as_str().unwrap_or("0").to_owned(),
        ]);
    }
    table.render()
}
