//! Usage accounting: a [`UsageRecord`] for every request that reached admission, built by a
//! [`Meter`] that records on `Drop` (so a client that disconnects mid-stream is billed for what
//! it consumed) and sent through a bounded [`UsageQueue`] to the store's batch writer.

mod bodies;
mod meter;
mod queue;
mod record;
mod rollup;

pub use bodies::{cut, BodyQueue, BodyReceiver, CallBody, Redactor, REDACTED};
pub use meter::{ClientInfo, Meter, MeterStart, MeterState};

pub use queue::{UsageQueue, UsageReceiver, UsageSlot, DEFAULT_CAPACITY};
pub use record::{
    AttemptLog, CallDetails, CallKind, Caller, Outcome, UsageRecord, UsageSource, RESERVED_TAGS,
};
pub use rollup::{bucket_index, LATENCY_BUCKETS_MS};
