//! The `switchboard` binary's library: the HTTP edge (axum + tower-http), the data-plane routes
//! per API family, config reload and graceful shutdown. Domain logic lives in
//! `switchboard-core`; handlers here only parse the client's format, call the pipeline and
//! render the result in the client's format.

pub mod admin;
pub mod alerts;
pub mod apply;
pub mod cli;
pub mod http;
pub mod mock_upstream;
pub mod reload;
pub mod runtime;
pub mod serve;
pub mod telemetry;
