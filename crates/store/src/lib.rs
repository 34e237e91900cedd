//! Storage for Switchboard: SQLite (the default, a file in WAL mode) or Postgres, chosen by the
//! `database:` URL, through sqlx's `Any` driver so that both share one code path (portable SQL,
//! `$1` placeholders, ids and times made by the application). Migrations are embedded, one
//! folder per database, and run by `serve` and `switchboard migrate`.
//!
//! What lives here: tenancy (orgs, teams, apps, users, memberships), virtual keys,
//! subscriptions, stored providers, models, prompts and prompt APIs, stored rate-limit rules and budgets, the usage
//! ledger and its batch writer, the hash-chained audit log, encryption of provider keys at
//! rest, and the change feed that tells every instance when access data or stored config
//! changed. Every change made through [`Store`] writes its audit row in the same transaction.

mod access;
mod apps;
pub(crate) mod audit;
mod calllog;
mod changes;
mod common;
mod crypto;
mod db;
mod entries;
mod error;
mod keys;
mod layer;
mod limits;
mod models;
mod orgs;
mod prompts;
mod providers;
mod records;
mod rows;
mod rules;
mod spend;
mod subscriptions;
mod teams;
mod usage;
mod users;

pub use audit::{redact, GENESIS_HASH, REDACTED};
pub use calllog::{
    percentile_ms, CallBodies, CallLogEntry, Dimension, Interval, LogCursor, LogFilter, LogPage,
    RollupPoint, RollupQuery, RollupStats, TopOrder, LATENCY_BUCKETS, MAX_PAGE,
};
pub use changes::{Change, ChangeListeners, PG_CHANNEL, REDIS_CHANNEL};
pub use common::{Actor, Page, PageRequest, APPLY};
pub use crypto::{SecretCipher, SECRET_KEY_ENV};
pub use db::{redact_url, Backend, Store, StoreOptions};
pub use error::StoreError;
pub use keys::{CreatedKey, KeyFilter, KeyPatch, KeyRecord, NewKey};
pub use limits::RedisLimits;
pub use records::{
    App, AppPatch, AuditEntry, AuditReport, Membership, NewApp, NewOrg, NewTeam, NewUser, Org,
    OrgPatch, StoredApi, StoredEntry, StoredModel, StoredPrompt, StoredProvider, Team, TeamPatch,
    User,
};
pub use rules::{StoredBudget, StoredRateLimit, StoredRule};
pub use subscriptions::{Subscription, SubscriptionFilter, SubscriptionKind, SubscriptionStatus};
pub use usage::{
    BodyStats, BodyWriter, BodyWriterHandle, RetentionStats, RetentionTask, UsageFilter,
    UsageGroup, UsageTotals, UsageWriter, WriterHandle, WriterOptions, WriterStats, CATCH_UP,
    ROLLUP_BUCKET_MS, SPILL_PREFIX, SPILL_SUFFIX,
};
