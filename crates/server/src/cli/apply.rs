//! `switchboard apply` and `switchboard export`: config as code from the shell. `apply` expands
//! `${VAR}` with the caller's environment (the server never expands a document with its own),
//! sends the document to the admin API, prints the diff, and shows one line per change as the
//! server commits it; `--dry-run` prints the diff only.

use super::client::{segment, ApiArgs, CliError, CliResult, Client};
use crate::apply::{summary, Change};
use serde::Deserialize;
use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use switchboard_core::config::{expand_text, Escapes};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The config document (YAML: `providers:`, `models:`, `prompts:`, `apis:`, `orgs:`, ...).
    #[arg(long = "file", short = 'f')]
    pub file: PathBuf,
    /// Print the diff only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON (`{changes, notes, applied, summary}`) instead of a diff.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// One event of the streamed answer.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Plan {
        changes: Vec<Change>,
        #[serde(default)]
        notes: Vec<String>,
    },
    Applied {
        change: Change,
    },
    Done {
        applied: bool,
    },
    Error {
        error: Value,
    },
}

/// The non-streamed answer.
#[derive(Debug, Deserialize)]
struct Outcome {
    changes: Vec<Change>,
    #[serde(default)]
    notes: Vec<String>,
    applied: bool,
}

pub async fn apply(args: ApplyArgs) -> ExitCode {
    super::report(run_apply(&args).await)
}

async fn run_apply(args: &ApplyArgs) -> CliResult<()> {
    let shown = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::new(format!("cannot read {shown}: {e}")))?;
    let env = |name: &str| std::env::var(name).ok();
    let text = expand_text(&text, &env, Escapes::Keep).map_err(|problems| {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{shown}:{}:{}: {}", p.line, p.column, p.message))
            .collect();
        CliError::new(lines.join("\n"))
    })?;
    let client = Client::new(&args.api)?;
    let path = format!(
        "/config/apply?dry_run={}&name={}",
        args.dry_run,
        segment(&shown)
    );
    let response = client.post_yaml(&path, text, crate::apply::NDJSON).await?;
    let streamed = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(crate::apply::NDJSON));
    if !streamed {
        let text = response
            .text()
            .await
            .map_err(|e| CliError::new(format!("cannot read the answer: {e}")))?;
        let outcome: Outcome = serde_json::from_str(&text).map_err(|e| {
            CliError::new(format!("the server's answer is not what was expected: {e}"))
        })?;
        if args.json {
            print_json(&outcome.changes, &outcome.notes, outcome.applied);
        } else {
            print_plan(&outcome.changes, &outcome.notes, args.dry_run);
            if outcome.applied && !outcome.changes.is_empty() {
                println!("applied: {}", summary(&outcome.changes));
            }
        }
        return Ok(());
    }
    follow(response, args).await
}

/// Reads the event stream: the plan, then one line per committed change.
async fn follow(mut response: reqwest::Response, args: &ApplyArgs) -> CliResult<()> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut plan: Option<(Vec<Change>, Vec<String>)> = None;
    let mut done = 0usize;
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| CliError::new(format!("the connection broke during apply: {e}")))?;
        let Some(chunk) = chunk else {
            return Err(CliError::new(
                "the server closed the connection before the apply finished; run \
                 `switchboard apply --dry-run` to see what is left",
            ));
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: Event = serde_json::from_slice(&line).map_err(|e| {
                CliError::new(format!("the server's answer is not what was expected: {e}"))
            })?;
            match event {
                Event::Plan { changes, notes } => {
                    if !args.json {
                        print_plan(&changes, &notes, args.dry_run);
                    }
                    plan = Some((changes, notes));
                }
                Event::Applied { change } => {
                    done += 1;
                    if !args.json {
                        let total = plan.as_ref().map_or(0, |(c, _)| c.len());
                        eprintln!("[{done}/{total}] applied {change}");
                    }
                }
                Event::Done { applied } => {
                    let (changes, notes) = plan.unwrap_or_default();
                    if args.json {
                        print_json(&changes, &notes, applied);
                    } else if applied && !changes.is_empty() {
                        println!("applied: {}", summary(&changes));
                    }
                    return Ok(());
                }
                Event::Error { error } => {
                    let message = error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("the apply failed")
                        .to_owned();
                    return Err(CliError::new(message));
                }
            }
        }
    }
}

fn print_plan(changes: &[Change], notes: &[String], dry_run: bool) {
    for note in notes {
        println!("note: {note}");
    }
    if changes.is_empty() {
        println!("no changes: storage already matches the file");
        return;
    }
    for change in changes {
        println!("{change}");
    }
    println!("{}", summary(changes));
    if dry_run {
        println!("dry run: nothing was changed");
    }
}

fn print_json(changes: &[Change], notes: &[String], applied: bool) {
    let value = serde_json::json!({
        "changes": changes,
        "notes": notes,
        "applied": applied,
        "summary": summary(changes),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
}

pub async fn export(args: ExportArgs) -> ExitCode {
    super::report(run_export(&args).await)
}

async fn run_export(args: &ExportArgs) -> CliResult<()> {
    let client = Client::new(&args.api)?;
    let yaml = client.text("/config/export").await?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &yaml)
                .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(yaml.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| CliError::new(format!("cannot write the export: {e}")))?;
        }
    }
    Ok(())
}
