//! Black-box tests of the call log, metrics and traces (issue 5): real HTTP from clients to
//! gateways on port 0, real HTTP from them to the testkit's mock providers, `/metrics` parsed
//! with a Prometheus text parser, spans received by an in-process OTLP/HTTP collector. One
//! test binary, one module per area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and their helpers fail loudly"
)]

mod observability {
    #[path = "../common/db.rs"]
    #[allow(dead_code, reason = "a shared helper; these tests use part of it")]
    pub mod db;
    #[path = "../usage/kit.rs"]
    pub mod kit;
    mod metrics;
    mod traces;
}
