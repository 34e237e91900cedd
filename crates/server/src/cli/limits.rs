//! `switchboard limits status`: every rate limit and budget that applies to an organisation, a
//! team, an app or a key, with its current use and what remains (`GET
//! /admin/v1/limits/status`), as a table or, with `--json`, the API's answer.

use super::client::{segment, ApiArgs, CliError, CliResult, Client};
use super::table::Table;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LimitsArgs {
    #[command(subcommand)]
    pub command: LimitsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LimitsCommand {
    /// Show the limits and budgets that apply to a subject and how they stand now.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Organisation name.
    #[arg(long)]
    pub org: String,
    /// Team name.
    #[arg(long)]
    pub team: Option<String>,
    /// App name (needs --team).
    #[arg(long, requires = "team")]
    pub app: Option<String>,
    /// A virtual key's id: its team and app are taken from the key.
    #[arg(long = "key", value_name = "KEY_ID")]
    pub key_id: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// One limit of the answer (the fields the table shows).
#[derive(Debug, Deserialize)]
struct Status {
    rule: String,
    subject: String,
    limit_kind: String,
    limit: i64,
    used: i64,
    remaining: i64,
    reset_ms: u64,
    resets_at: Option<String>,
    limit_usd: Option<String>,
    used_usd: Option<String>,
    remaining_usd: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Report {
    data: Vec<Status>,
}

pub async fn run(args: LimitsArgs) -> ExitCode {
    let result = match &args.command {
        LimitsCommand::Status(a) => status(a).await,
    };
    super::report(result)
}

async fn status(args: &StatusArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let mut query = vec![format!("org={}", segment(&args.org))];
    for (name, value) in [
        ("team", &args.team),
        ("app", &args.app),
        ("key_id", &args.key_id),
    ] {
        if let Some(value) = value {
            query.push(format!("{name}={}", segment(value)));
        }
    }
    let path = format!("/limits/status?{}", query.join("&"));
    let answer: Value = client.json(Method::GET, &path, None).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
        return Ok(());
    }
    let report: Report = serde_json::from_value(answer)
        .map_err(|e| CliError::new(format!("the server's answer is not what was expected: {e}")))?;
    if report.data.is_empty() {
        println!("no rate limits or budgets apply");
    } else {
        print!("{}", render(&report.data));
    }
    Ok(())
}

fn render(rows: &[Status]) -> String {
    let mut table = Table::new([
        "RULE",
        "SUBJECT",
        "LIMIT",
        "USED",
        "MAX",
        "REMAINING",
        "RESETS",
    ]);
    for row in rows {
        let money = |usd: &Option<String>, micros: i64| match usd {
            Some(usd) => format!("${usd}"),
            None => micros.to_string(),
        };
        let resets = match (&row.resets_at, row.reset_ms) {
            (Some(at), _) => at.clone(),
            (None, 0) => "-".to_owned(),
            (None, ms) => format!("in {}s", ms.div_ceil(1000)),
        };
        table.row([
            row.rule.clone(),
            row.subject.clone(),
            row.limit_kind.clone(),
            money(&row.used_usd, row.used),
            money(&row.limit_usd, row.limit),
            money(&row.remaining_usd, row.remaining),
            resets,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_show_dollars() {
        let rows = [Status {
            rule: "b".into(),
            subject: "acme".into(),
            limit_kind: "budget".into(),
            limit: 5_000_000,
            used: 1_500_000,
            remaining: 3_500_000,
            reset_ms: 0,
            resets_at: Some("2026-01-01T00:00:00Z".into()),
            limit_usd: Some("5".into()),
            used_usd: Some("1.5".into()),
            remaining_usd: Some("3.5".into()),
        }];
        let text = render(&rows);
        assert!(text.contains("$1.5"), "{text}");
        assert!(text.contains("$5 "), "{text}");
        assert!(text.contains("2026-01-01T00:00:00Z"), "{text}");
    }
}
