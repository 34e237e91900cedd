//! Black-box tests of the gateway: real HTTP from a client to the gateway, real HTTP from the
//! gateway to the testkit's mock providers, all on loopback port 0. One test binary, one module
//! per area.

// Test helpers outside #[test] functions fail loudly by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and their helpers fail loudly"
)]

mod gateway {
    mod cli;
    mod errors;
    pub mod harness;
    mod matrix;
    mod routing;
    mod streaming;
}
