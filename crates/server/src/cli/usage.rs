//! `switchboard usage`: usage totals from the admin API (`GET /admin/v1/usage`), as a table or,
//! with `--json`, the API's answer. `--from`/`--to` take a date (`2025-01-31`), a UTC time
//! (`2025-01-31T14:05:00Z`), Unix milliseconds, or a duration back from now (`7d`, `12h`).

use super::client::{segment, ApiArgs, CliError, CliResult, Client};
use super::table::{parse_duration, Table};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// Organisation name.
    #[arg(long)]
    pub org: Option<String>,
    /// Team name (needs --org).
    #[arg(long, requires = "org")]
    pub team: Option<String>,
    /// App name (needs --team).
    #[arg(long, requires = "team")]
    pub app: Option<String>,
    /// A virtual key's id (see `switchboard keys list`).
    #[arg(long = "key", value_name = "KEY_ID")]
    pub key_id: Option<String>,
    /// The model alias asked for.
    #[arg(long)]
    pub alias: Option<String>,
    /// Requests started at or after: a date, a UTC time, Unix ms, or a duration ago (7d).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub from: Option<i64>,
    /// Requests started before: a date, a UTC time, Unix ms, or a duration ago.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub to: Option<i64>,
    /// Group the totals by key, app, team, org, alias, model or day.
    #[arg(long, value_parser = ["key", "app", "team", "org", "alias", "model", "day"])]
    pub group_by: Option<String>,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// One row of the answer (the fields the table shows).
#[derive(Debug, Deserialize)]
struct Row {
    group: Option<String>,
    requests: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    cached_input_tokens: i64,
    cost_usd: String,
}

#[derive(Debug, Deserialize)]
struct Report {
    data: Vec<Row>,
    total: Row,
}

pub async fn run(args: UsageArgs) -> ExitCode {
    super::report(usage(&args).await)
}

async fn usage(args: &UsageArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let mut query = Vec::new();
    let texts = [
        ("org", &args.org),
        ("team", &args.team),
        ("app", &args.app),
        ("key_id", &args.key_id),
        ("alias", &args.alias),
        ("group_by", &args.group_by),
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
    let path = if query.is_empty() {
        "/usage".to_owned()
    } else {
        format!("/usage?{}", query.join("&"))
    };
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
    print!("{}", render(args.group_by.as_deref(), &report));
    Ok(())
}

fn render(group_by: Option<&str>, report: &Report) -> String {
    let header = group_by.map_or_else(|| "SCOPE".to_owned(), str::to_uppercase);
    let mut table = Table::new([
        header.as_str(),
        "REQUESTS",
        "ERRORS",
        "INPUT",
        "OUTPUT",
        "CACHED",
        "COST_USD",
    ]);
    let mut push = |label: String, row: &Row| {
        table.row([
            label,
            row.requests.to_string(),
            row.errors.to_string(),
            row.input_tokens.to_string(),
            row.output_tokens.to_string(),
            row.cached_input_tokens.to_string(),
            row.cost_usd.clone(),
        ]);
    };
    if group_by.is_some() {
        for row in &report.data {
            push(row.group.clone().unwrap_or_else(|| "-".to_owned()), row);
        }
    }
    push("total".to_owned(), &report.total);
    table.render()
}

/// A time for --from/--to, as Unix milliseconds.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("`{text}` is too large"));
    }
    if let Ok(ago) = parse_duration(text) {
        let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms().saturating_sub(ago));
    }
    parse_utc(text).ok_or_else(|| {
        format!(
            "`{text}` is not a time: use a date (2025-01-31), a UTC time \
             (2025-01-31T14:05:00Z), Unix milliseconds, or a duration ago (7d, 12h)"
        )
    })
}

/// `YYYY-MM-DD`, optionally followed by `THH:MM[:SS]` and `Z`, in UTC.
fn parse_utc(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.trim_end_matches('Z'))),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut seconds = 0;
    if let Some(time) = time {
        let mut fields = time.split(':');
        let hours: i64 = fields.next()?.parse().ok()?;
        let minutes: i64 = fields.next()?.parse().ok()?;
        let secs: i64 = match fields.next() {
            Some(s) => s.parse().ok()?,
            None => 0,
        };
        if fields.next().is_some() || hours > 23 || minutes > 59 || secs > 60 {
            return None;
        }
        seconds = hours * 3600 + minutes * 60 + secs;
    }
    Some((switchboard_types::calendar::days_from_civil(year, month, day) * 86_400 + seconds) * 1000)
}

use switchboard_types::calendar::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time("2025-01-31T14:05:00Z"), Ok(1_738_332_300_000));
        assert_eq!(parse_time("2025-01-31T14:05"), Ok(1_738_332_300_000));
        let week = parse_time("7d").unwrap();
        assert!((now_ms() - week - 7 * 86_400_000).abs() < 60_000);
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2025-13-01").is_err());
    }

    #[test]
    fn tables_have_a_total() {
        let row = |group: Option<&str>, requests| Row {
            group: group.map(str::to_owned),
            requests,
            errors: 0,
            input_tokens: 10,
            output_tokens: 5,
            cached_input_tokens: 0,
            cost_usd: "0.5".to_owned(),
        };
        let report = Report {
            data: vec![row(Some("a"), 1), row(Some("b"), 2)],
            total: row(None, 3),
        };
        let text = render(Some("key"), &report);
        assert!(text.starts_with("KEY "), "{text}");
        assert!(text.lines().last().unwrap().starts_with("total"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(render(None, &report).lines().count(), 2);
    }
}
