//! Black-box tests of the admin API and the CLI that drives it: a gateway started on port 0
//! with its own database (SQLite, and Postgres when `SWITCHBOARD_TEST_POSTGRES` is set), real
//! HTTP, and the `switchboard` binary. One test binary, one module per area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and their helpers fail loudly"
)]

mod admin {
    mod apply;
    mod approval;
    mod cli;
    mod cluster;
    mod data_plane;
    #[path = "../common/db.rs"]
    pub mod db;
    mod input;
    mod isolation;
    mod kit;
    mod lifecycle;
    mod limits;
    mod matrix;
    mod openapi;
}
