//! The client and maintenance subcommands of `switchboard`: `apply`/`export` (config as code),
//! `keys` (virtual keys), `usage`, `logs`, `analytics` and `limits status`, which talk to a running server's admin
//! API, and `migrate` and
//! `audit verify`, which open the database directly. `main.rs` only parses and dispatches.
//! Every failure prints `error: <message>` on stderr and exits 1.

pub mod analytics;
pub mod apply;
pub mod client;
pub mod db;
pub mod keys;
pub mod limits;
pub mod logs;
pub mod table;
pub mod usage;

use std::process::ExitCode;

/// The exit of a command: success, or `error: <message>` and 1.
pub fn report(result: client::CliResult<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
