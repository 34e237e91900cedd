//! Rate limits and budgets, step 3 of the pipeline. `rules.rs` is what the config says;
//! `limiter.rs` turns the rules that match a request into counters and admits it (all
//! counters or none); `admission.rs` is what an admitted request holds until it ends, when it
//! is settled with what it really used; `backend.rs` is where counters live (in memory in
//! `local.rs`, or shared through Redis by the store crate); `state.rs` outlives config
//! snapshots and settles in the background; `period.rs` is the budget calendar; `alerts.rs`
//! the budget threshold webhook.

mod admission;
mod alerts;
pub mod backend;
mod limiter;
mod local;
pub mod period;
pub mod rules;
mod state;
#[cfg(test)]
mod tests;

pub use admission::{Admission, HeaderTriple, RateHeaders};
pub use alerts::micros_text;
pub use backend::{
    lease_bucket, lease_bucket_ms, lease_expiry, BackendError, Counter, CounterKind, CounterState,
    Demand, LimitBackend, Settle, SettleKind, SpendChange, Verdict, LEASE_BUCKETS,
};
pub use limiter::{subject, LimitReport, Limiter, Plan, Refusal, RequestGate, Who};
pub use local::LocalBackend;
pub use rules::{BudgetAction, BudgetRule, Match, Period, RateLimitRule, Scope};
pub use state::{Crossing, LimitState, SpendSource};

pub(crate) use crate::clock::now_ms;
