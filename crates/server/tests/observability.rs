//! Black-box tests of issue 5 (call log, metrics, traces, analytics, alerts): gateways on port
//! 0 with their own database (SQLite, and Postgres when `SWITCHBOARD_TEST_POSTGRES` is set),
//! real HTTP, and the `switchboard` binary. One test binary, one module per area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and their helpers fail loudly"
)]

mod observability {
    mod alerts;
    mod analytics;
    pub mod analytics_kit;
    #[path = "../common/db.rs"]
    pub mod db;
    #[path = "../admin/kit.rs"]
    pub mod kit;
    mod log_api;
    mod log_cli;
}
