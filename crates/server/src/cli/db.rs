//! `switchboard migrate` and `switchboard audit verify`: storage commands that open the
//! database directly (no server needed). The database is `--database URL`, or the `database:` of
//! `--config FILE` (default `./switchboard.yaml` when it exists), or the default SQLite file.

use super::client::{CliError, CliResult};
use crate::runtime::DEFAULT_DATABASE;
use crate::serve::DEFAULT_CONFIG;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use switchboard_core::config::{expand_text, Escapes};
use switchboard_store::{redact_url, Store, StoreOptions};

/// Which database to open.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Config file whose `database:` to use (default ./switchboard.yaml when it exists).
    #[arg(long, short, conflicts_with = "database")]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://FILE or postgres://...), instead of a config file.
    #[arg(long)]
    pub database: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exit 1 and name the first bad entry when it was
    /// tampered with.
    Verify(DbArgs),
}

impl DbArgs {
    /// The database URL these arguments name.
    pub fn url(&self) -> CliResult<String> {
        if let Some(url) = &self.database {
            return Ok(url.clone());
        }
        let path = match &self.config {
            Some(path) => path.clone(),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG);
                if !default.exists() {
                    return Ok(DEFAULT_DATABASE.to_owned());
                }
                default
            }
        };
        database_of(&path)
    }
}

/// The `database:` of a config file (`${VAR}` expanded), or the default. Only that key is
/// read, so that a migration does not need every provider's variables set.
fn database_of(path: &Path) -> CliResult<String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("cannot read {shown}: {e}")))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| CliError::new(format!("{shown} is not valid YAML: {e}")))?;
    let Some(value) = doc.get("database") else {
        return Ok(DEFAULT_DATABASE.to_owned());
    };
    let Some(raw) = value.as_str() else {
        return Err(CliError::new(format!(
            "{shown}: `database` must be a URL string"
        )));
    };
    let env = |name: &str| std::env::var(name).ok();
    expand_text(raw, &env, Escapes::Resolve).map_err(|problems| {
        let why: Vec<String> = problems.into_iter().map(|p| p.message).collect();
        CliError::new(format!("{shown}: database: {}", why.join("; ")))
    })
}

async fn open(args: &DbArgs) -> CliResult<(Store, String)> {
    let url = args.url()?;
    let shown = redact_url(&url);
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .map_err(|e| CliError::new(format!("cannot open the database {shown}: {e}")))?;
    Ok((store, shown))
}

pub async fn migrate(args: DbArgs) -> ExitCode {
    super::report(run_migrate(&args).await)
}

async fn run_migrate(args: &DbArgs) -> CliResult<()> {
    let (store, shown) = open(args).await?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::new(format!("cannot migrate {shown}: {e}")))?;
    println!("database {shown} is migrated and up to date");
    Ok(())
}

pub async fn audit(args: AuditArgs) -> ExitCode {
    match args.command {
        AuditCommand::Verify(db) => verify(&db).await,
    }
}

async fn verify(args: &DbArgs) -> ExitCode {
    let (store, shown) = match open(args).await {
        Ok(opened) => opened,
        Err(err) => return super::report(Err(err)),
    };
    let report = match store.verify_audit().await {
        Ok(report) => report,
        Err(e) => {
            return super::report(Err(CliError::new(format!(
                "cannot read the audit log of {shown}: {e}"
            ))))
        }
    };
    match report.first_bad {
        None => {
            println!("audit log intact: {} entries", report.checked);
            ExitCode::SUCCESS
        }
        Some(seq) => {
            let reason = report
                .reason
                .as_deref()
                .unwrap_or("it does not match the chain");
            println!("audit log TAMPERED at entry {seq}: {reason}");
            ExitCode::FAILURE
        }
    }
}
