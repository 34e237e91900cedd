//! Black-box tests of issue 5 (call log, metrics, traces, analytics, alerts): real HTTP from
//! clients to gateways on port 0 and from them to the testkit's mock providers, `/metrics`
//! parsed with a Prometheus text parser, spans received by an in-process OTLP/HTTP collector.
//! One test binary, one module per area; kits of other binaries are reused by path.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and their helpers fail loudly"
)]

mod observability {
    #[path = "../admin/kit.rs"]
    pub mod admin_kit;
    mod alerts;
    mod analytics;
    pub mod analytics_kit;
    #[path = "../common/db.rs"]
    pub mod db;
    mod grafana;
    #[path = "../usage/kit.rs"]
    pub mod kit;
    mod log_api;
    mod log_cli;
    mod log_rows;
    mod metrics;
    mod traces;
}
