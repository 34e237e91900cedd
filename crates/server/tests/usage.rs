//! Black-box tests of usage records, rate limits and budgets (issue 4): real HTTP from clients
//! to gateways on port 0, real HTTP from them to the testkit's mock providers, usage records
//! read back from the store after the usage writer reports them written. Postgres and Redis
//! are used only when `SWITCHBOARD_TEST_POSTGRES` / `SWITCHBOARD_TEST_REDIS` name them; tests
//! that need Redis print a SKIPPED line without it. One test binary, one module per area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and their helpers fail loudly"
)]

mod usage {
    pub mod budgets;
    #[path = "../common/db.rs"]
    pub mod db;
    mod failures;
    pub mod kit;
    mod limits;
    mod processes;
    mod records;
    mod redis;
}
