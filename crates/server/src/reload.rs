//! Config reload on SIGHUP and on file change. A new config that fails to parse, validate or
//! build is refused and the running one stays; either way the outcome is logged.

use crate::runtime::Runtime;
use notify::{RecursiveMode, Watcher as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Editors write a file in several steps: wait this long after the last change event.
const SETTLE: Duration = Duration::from_millis(200);

/// Why a reload happened, for the log.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    Signal,
    FileChanged,
}

pub fn spawn(runtime: Arc<Runtime>, path: PathBuf, stop: CancellationToken) {
    let (tx, mut rx) = mpsc::channel::<Trigger>(16);
    let watcher = watch_file(&path, tx.clone());
    spawn_sighup(tx, stop.clone());
    tokio::spawn(async move {
        // Keep the watcher alive as long as this task runs.
        let _watcher = watcher;
        loop {
            let trigger = tokio::select! {
                () = stop.cancelled() => return,
                t = rx.recv() => match t { Some(t) => t, None => return },
            };
            // Coalesce the burst of events one save produces.
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            reload_once(&runtime, &path, trigger).await;
        }
    });
}

async fn reload_once(runtime: &Runtime, path: &std::path::Path, trigger: Trigger) {
    let file = path.display().to_string();
    match runtime.reload().await {
        Ok(()) => tracing::info!(%file, ?trigger, "Config reloaded."),
        Err(why) => {
            tracing::error!(%file, ?trigger, %why, "Config reload refused; the running config stays.")
        }
    }
}

/// How often the config file is looked at for changes.
const POLL: Duration = Duration::from_secs(1);

/// Watches the config file by polling it (its metadata and a hash of its contents) every
/// [`POLL`], and reports changes. Polling a path follows editors that replace the file, and
/// costs one look a second. An event watch (inotify) would have to watch the file's folder for
/// that, and the folder often holds the SQLite database too: every write of its WAL woke the
/// watcher's thread, about a thousand times a second under load, on the cores serving requests.
fn watch_file(path: &std::path::Path, tx: mpsc::Sender<Trigger>) -> Option<notify::PollWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.kind.is_modify() || event.kind.is_create() {
                let _ = tx.try_send(Trigger::FileChanged);
            }
        }
    };
    let config = notify::Config::default()
        .with_poll_interval(POLL)
        .with_compare_contents(true);
    let mut watcher = match notify::PollWatcher::new(handler, config) {
        Ok(w) => w,
        Err(err) => {
            tracing::warn!(%err, "Cannot watch the config file; reload with SIGHUP.");
            return None;
        }
    };
    if let Err(err) = watcher.watch(path, RecursiveMode::NonRecursive) {
        tracing::warn!(%err, "Cannot watch the config file; reload with SIGHUP.");
        return None;
    }
    Some(watcher)
}

#[cfg(unix)]
fn spawn_sighup(tx: mpsc::Sender<Trigger>, stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("Cannot listen for SIGHUP.");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                s = hup.recv() => if s.is_none() { return },
            }
            let _ = tx.try_send(Trigger::Signal);
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_tx: mpsc::Sender<Trigger>, _stop: CancellationToken) {}
