//! Config as code: make the stored providers, models, prompts, APIs, organisations, teams,
//! apps, rate limits and budgets equal to a YAML document (the config file's schema), and write
//! the stored state back as such a document (`export`).
//!
//! A run: read the server's own file (its entries are not stored, so a document may not name
//! them), validate the document with the config loader (problems name file, line, column and
//! key) and the server's file with the result as its stored layer (what the next reload will
//! see), read everything stored, check that no stored prompt version would change or go
//! (versions are immutable), diff ([`Plan`]), then unless it is a dry run execute the plan as
//! the `apply` actor ([`execute`]). Nothing is written before every check passed. Runs are
//! serialised within a process so that two applies never interleave their steps.
//!
//! `routes()` is the admin API's face of it (`POST /admin/v1/config/apply`,
//! `GET /admin/v1/config/export`); `switchboard apply`/`export` call those.

mod change;
mod document;
mod execute;
mod http;
mod plan;
mod rules;
mod state;

pub use change::{summary, Change, Kind, Op};
pub use document::{Document, ServerFile};
pub use execute::{execute, sync_file_orgs, FILE};
pub use http::{openapi_routes, routes, ApplyResponse, NDJSON};
pub use plan::Plan;

use crate::runtime::ConfigSource;
use document::{final_layer, KeyIntent};
use serde::Serialize;
use state::Current;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use switchboard_core::config::immutable;
use switchboard_core::config::{Problem, StoredLayer};
use switchboard_store::{Store, StoreError, SECRET_KEY_ENV};

/// Why an apply (or export) did not happen, or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The document (or the server's file with the result) is not valid: nothing was changed.
    #[error("{context}:\n{}", render(problems))]
    Invalid {
        context: String,
        problems: Vec<Problem>,
    },
    /// Reading the stored state failed: nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A step failed after others had been committed.
    #[error(
        "apply stopped at `{}`: {}. {} change(s) were applied before it and {} were not \
         attempted; fix the cause and apply again to finish",
        .0.failed,
        .0.error,
        .0.applied.len(),
        .0.not_attempted
    )]
    Partial(Box<PartialFailure>),
    /// The server cannot do it (its own file cannot be read, ...).
    #[error("{0}")]
    Server(String),
}

/// What a partly applied plan did (see [`ApplyError::Partial`]).
#[derive(Debug)]
pub struct PartialFailure {
    /// The changes committed before the failure.
    pub applied: Vec<Change>,
    pub failed: Change,
    /// Changes after the failed one, not tried.
    pub not_attempted: usize,
    pub error: StoreError,
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    lines.join("\n")
}

/// The result of [`apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The plan, in the order it runs; all of it was applied when `applied` is true.
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
    /// False for a dry run.
    pub applied: bool,
}

impl ServerFile {
    /// The server's file as it is now (re-read from disk: it may have changed since startup).
    pub fn from_source(source: &ConfigSource) -> Result<ServerFile, ApplyError> {
        match source {
            ConfigSource::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Ok(ServerFile {
                    name: source.name(),
                    text,
                }),
                Err(err) => Err(ApplyError::Server(format!(
                    "cannot read the server's config file {}: {err}",
                    source.name()
                ))),
            },
            ConfigSource::Text { name, text } => Ok(ServerFile {
                name: name.clone(),
                text: text.clone(),
            }),
        }
    }
}

/// One apply at a time per process: plans are computed from what is stored, so two runs
/// interleaving their steps would each act on a stale picture.
static RUNNING: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

/// Validates `doc` and computes what applying it would change. Writes nothing.
pub async fn plan(store: &Store, server: &ServerFile, doc: &Document) -> Result<Plan, ApplyError> {
    let file = server.entries()?;
    let current = Current::read(store).await?;
    let keyed: BTreeSet<String> = current
        .providers
        .values()
        .filter(|p| p.has_api_key)
        .map(|p| p.name.clone())
        .collect();
    let mut now = final_layer(
        current
            .providers
            .values()
            .map(|p| (p.name.clone(), p.settings.clone(), p.has_api_key)),
        current
            .models
            .values()
            .map(|m| (m.name.clone(), m.settings.clone())),
    );
    now.prompts = stored_entries(current.prompts.values().map(|p| (&p.name, &p.settings)));
    now.apis = stored_entries(current.apis.values().map(|a| (&a.name, &a.settings)));
    let desired = document::read(doc, &file, &server.name, &now, &keyed)?;
    versions_kept(doc, &desired, &current)?;

    let sets_keys: Vec<&String> = desired
        .providers
        .iter()
        .flatten()
        .filter(|(_, p)| matches!(p.key, KeyIntent::Set(_)))
        .map(|(name, _)| name)
        .collect();
    let mut stored_keys = BTreeMap::new();
    if !sets_keys.is_empty() {
        require_cipher(store, doc, &sets_keys)?;
        if sets_keys.iter().any(|name| keyed.contains(*name)) {
            stored_keys = store
                .stored_providers_decrypted()
                .await?
                .into_iter()
                .filter_map(|(name, settings)| {
                    let key = settings.get("api_key")?.as_str()?.to_owned();
                    Some((name, key))
                })
                .collect();
        }
    }

    // What storage will hold afterwards, checked with the server's file as a reload would.
    let providers = match &desired.providers {
        Some(providers) => {
            let entries = providers.iter().map(|(name, p)| {
                let mut settings = p.settings.clone();
                let keeps = match &p.key {
                    KeyIntent::Keep => keyed.contains(name),
                    KeyIntent::Remove => false,
                    KeyIntent::Set(key) => {
                        if let serde_json::Value::Object(map) = &mut settings {
                            map.insert("api_key".into(), key.clone().into());
                        }
                        false
                    }
                };
                (name.clone(), settings, keeps)
            });
            final_layer(entries, []).providers
        }
        None => now.providers.clone(),
    };
    let models = match &desired.models {
        Some(models) => models.iter().map(|(n, v)| (n.clone(), v.clone())).collect(),
        None => now.models.clone(),
    };
    let named = |want: &Option<BTreeMap<String, serde_json::Value>>, now: &[_]| match want {
        Some(entries) => entries
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect(),
        None => now.to_vec(),
    };
    let mut layer = StoredLayer {
        providers,
        models,
        prompts: named(&desired.prompts, &now.prompts),
        apis: named(&desired.apis, &now.apis),
        ..StoredLayer::default()
    };
    rules::final_rules(&desired, &current, &mut layer);
    document::check_final(server, &file, &layer)?;

    let ctx = plan::Context {
        stored_keys: &stored_keys,
        file_orgs: &file.orgs,
    };
    Ok(plan::diff(&desired, &current, &ctx))
}

fn stored_entries<'a>(
    entries: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
) -> Vec<(String, serde_json::Value)> {
    entries.map(|(n, v)| (n.clone(), v.clone())).collect()
}

/// Stored prompt versions are immutable: a document that changes or drops one is refused
/// before anything is written (the store would refuse that step, leaving a partial apply).
fn versions_kept(
    doc: &Document,
    desired: &document::Desired,
    current: &Current,
) -> Result<(), ApplyError> {
    let problems: Vec<Problem> = desired
        .prompts
        .iter()
        .flatten()
        .filter_map(|(name, want)| {
            let have = current.prompts.get(name)?;
            let conflict = immutable::check_stored(name, &have.settings, want).err()?;
            let (line, column) = document::find_entry(&doc.text, "prompts", name).unzip();
            Some(Problem {
                file: doc.name.clone(),
                line,
                column,
                key: format!("prompts.{name}.versions"),
                message: conflict.to_string(),
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Invalid {
            context: format!("{} cannot be applied", doc.name),
            problems,
        })
    }
}

/// Storing an API key needs the encryption key: say so before anything is written.
fn require_cipher(store: &Store, doc: &Document, providers: &[&String]) -> Result<(), ApplyError> {
    if store.has_cipher() {
        return Ok(());
    }
    let why = format!(
        "the server cannot store provider API keys: set {SECRET_KEY_ENV} on the server \
         (base64 of 32 random bytes, e.g. `openssl rand -base64 32`) and restart it"
    );
    let problems = providers
        .iter()
        .map(|name| {
            let (line, column) = document::find_entry(&doc.text, "providers", name).unzip();
            Problem {
                file: doc.name.clone(),
                line,
                column,
                key: format!("providers.{name}.api_key"),
                message: why.clone(),
            }
        })
        .collect();
    Err(ApplyError::Invalid {
        context: format!("{} cannot be applied", doc.name),
        problems,
    })
}

/// Plans `doc` and, unless `dry_run`, executes the plan. `on_plan` sees the plan before
/// anything is written; `progress` hears of each change as it is committed.
pub async fn apply(
    store: &Store,
    server: &ServerFile,
    doc: &Document,
    dry_run: bool,
    on_plan: &mut (dyn FnMut(&Plan) + Send),
    progress: &mut (dyn FnMut(&Change) + Send),
) -> Result<Outcome, ApplyError> {
    let _running = RUNNING.lock().await;
    let plan = plan(store, server, doc).await?;
    on_plan(&plan);
    if !dry_run {
        execute(store, &plan, progress).await?;
    }
    Ok(Outcome {
        changes: plan.changes,
        notes: plan.notes,
        applied: !dry_run,
    })
}

/// The stored state as a YAML document that [`apply`] accepts: applying it right away plans
/// nothing. Provider API keys are left out; the server file's organisations too.
pub async fn export(store: &Store, server: &ServerFile) -> Result<String, ApplyError> {
    let file = server.entries()?;
    let current = Current::read(store).await?;
    state::export_yaml(&current, &file.orgs)
}
