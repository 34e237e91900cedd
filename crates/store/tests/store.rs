//! Integration tests of the store, each run on SQLite and (when `SWITCHBOARD_TEST_POSTGRES` is
//! set) on Postgres; the cases live in `tests/store/*.rs`, the harness in `tests/store/common.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

// A crate root finds modules next to itself, so each one names its file under `store/`.
#[macro_use]
#[path = "store/common.rs"]
mod common;
#[path = "store/access.rs"]
mod access;
#[path = "store/audit.rs"]
mod audit;
#[path = "store/calllog.rs"]
mod calllog;
#[path = "store/changes.rs"]
mod changes;
#[path = "store/config.rs"]
mod config;
#[path = "store/keys.rs"]
mod keys;
#[path = "store/limits.rs"]
mod limits;
#[path = "store/log_reads.rs"]
mod log_reads;
#[path = "store/migrations.rs"]
mod migrations;
#[path = "store/prompts.rs"]
mod prompts;
#[path = "store/rules.rs"]
mod rules;
#[path = "store/subscriptions.rs"]
mod subscriptions;
#[path = "store/tenancy.rs"]
mod tenancy;
#[path = "store/usage.rs"]
mod usage;
#[path = "store/users.rs"]
mod users;
