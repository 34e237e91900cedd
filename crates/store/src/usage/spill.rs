//! Spill files: where the usage writer puts the records it could not commit because the
//! database was still down when the process shut down, so that billing data survives until the
//! next start imports it.
//!
//! A spill file is `<dir>/switchboard-usage-spill-<unix_ms>.jsonl`, one [`UsageRecord`] as JSON
//! per line. It is written under a `.tmp` name, synced and renamed, so a file with the final
//! name is always complete. Each instance should have a spill directory of its own: two
//! instances starting at once on one directory could both import the same file.

use std::io;
use std::path::{Path, PathBuf};
use switchboard_core::usage::UsageRecord;
use tokio::io::AsyncWriteExt;

/// How spill file names start.
pub const SPILL_PREFIX: &str = "switchboard-usage-spill-";
/// How spill file names end.
pub const SPILL_SUFFIX: &str = ".jsonl";

/// Why a spill file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpillError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {source}")]
    Line {
        line: usize,
        source: serde_json::Error,
    },
}

/// Writes `records` to a new spill file in `dir` (created if missing) and returns its path.
pub(crate) async fn write(
    dir: &Path,
    records: &[UsageRecord],
    now_ms: i64,
) -> Result<PathBuf, io::Error> {
    tokio::fs::create_dir_all(dir).await?;
    let mut text = String::new();
    for record in records {
        let line = serde_json::to_string(record).map_err(io::Error::other)?;
        text.push_str(&line);
        text.push('\n');
    }
    // Two spills in the same millisecond (tests, or a restart loop) get a counter.
    let mut attempt = 0u32;
    loop {
        let name = if attempt == 0 {
            format!("{SPILL_PREFIX}{now_ms}{SPILL_SUFFIX}")
        } else {
            format!("{SPILL_PREFIX}{now_ms}-{attempt}{SPILL_SUFFIX}")
        };
        let path = dir.join(&name);
        if tokio::fs::try_exists(&path).await? {
            attempt += 1;
            continue;
        }
        let tmp = dir.join(format!("{name}.tmp"));
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(text.as_bytes()).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await?;
        return Ok(path);
    }
}

/// The spill files in `dir`, oldest name first; none when `dir` does not exist.
pub(crate) async fn list(dir: &Path) -> Result<Vec<PathBuf>, io::Error> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(SPILL_PREFIX) && name.ends_with(SPILL_SUFFIX) {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Every record of a spill file; any line that does not parse fails the whole file (it is then
/// left in place for an operator, not half imported).
pub(crate) async fn read(path: &Path) -> Result<Vec<UsageRecord>, SpillError> {
    let text = tokio::fs::read_to_string(path).await?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|source| SpillError::Line {
                line: i + 1,
                source,
            })
        })
        .collect()
}
