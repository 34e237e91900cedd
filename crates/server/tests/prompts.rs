//! Black-box tests of issue 6 (prompts, prompt APIs, workflows, context windows): real HTTP
//! from clients to gateways on port 0 and from them to the testkit's mock providers.
//! One test binary, one module per area; kits of other binaries are reused by path.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and their helpers fail loudly"
)]

mod prompts {
    #[path = "../admin/kit.rs"]
    #[allow(unused, reason = "a kit shared with other test binaries")]
    pub mod admin_kit;
    #[path = "../common/db.rs"]
    #[allow(unused, reason = "a kit shared with other test binaries")]
    pub mod db;
    #[path = "../usage/kit.rs"]
    #[allow(unused, reason = "a kit shared with other test binaries")]
    pub mod kit;

    // Prompt APIs: serving, lifecycle, OpenAPI documents, access (apis*.rs).
    mod apis;
    // Workflows (sequence and DAG of steps).
    mod workflows;
    // Stored prompts and APIs: admin API, immutability, labels, playground, apply/export.
    mod stored;
    // Context-window policies and chat requests that reference a stored prompt.
    mod chat_prompt;
    mod context;
    // docs/prompts-and-apis.md's worked example, run as written.
    mod worked_example;
}
