//! What can go wrong in storage. The admin API maps each variant to a status; database details
//! stay in logs, never in responses.

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or belongs to another tenant: the caller cannot tell).
    #[error("{kind} `{name}` not found")]
    NotFound { kind: &'static str, name: String },
    /// A unique name is taken, or the change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The object is owned by config as code and cannot be changed through the admin API.
    #[error("{kind} `{name}` is managed by `switchboard apply`; change the file and apply it")]
    Managed { kind: &'static str, name: String },
    /// A stored prompt's version would change or disappear: versions are immutable (409).
    #[error(transparent)]
    Immutable(#[from] switchboard_core::config::immutable::VersionConflict),
    /// The input is not acceptable (a message for the caller).
    #[error("{0}")]
    Invalid(String),
    /// Encryption of secrets at rest is not possible (no key, or a wrong key).
    #[error("{0}")]
    Crypto(String),
    /// The database failed or is unreachable. Internal: never shown to clients.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The usage writer's SQLite connection failed (`usage/sqlite_ledger.rs`). Internal, like
    /// `Database`.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Turns a unique-constraint violation into a readable conflict, anything else stays a
    /// database error.
    pub(crate) fn unique(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(message())
            }
            _ => StoreError::Database(err),
        }
    }
}
