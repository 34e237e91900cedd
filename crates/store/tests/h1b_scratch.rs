//! TEMPORARY (H1b) scratch runner until tests/store.rs exists.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
#[path = "store/changes.rs"]
mod changes;
