//! Small types every table module shares: who made a change, and cursor paging.

use serde::{Deserialize, Serialize};

/// Who made a change, as recorded in the audit log: `admin_key`, `user:<subject>` or `apply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
}

impl Actor {
    pub fn new(id: impl Into<String>) -> Actor {
        Actor { id: id.into() }
    }

    /// The bootstrap admin key.
    pub fn admin_key() -> Actor {
        Actor::new("admin_key")
    }

    /// Config as code (`switchboard apply`), the owner of managed objects.
    pub fn apply() -> Actor {
        Actor::new(APPLY)
    }

    pub fn is_apply(&self) -> bool {
        self.id == APPLY
    }
}

/// The `managed_by` value of objects owned by config as code.
pub const APPLY: &str = "apply";

/// One page of a list: at most `limit` items after `cursor` (the id of the last item seen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 500;

    /// The limit to use, clamped to `1..=MAX_LIMIT`.
    pub fn limit(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
}

/// A page of results; `next_cursor` is set when more may follow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order (the extra row only says
    /// that more exist); `id` gives each item's cursor.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more { rows.last().map(id) } else { None };
        Page {
            items: rows,
            next_cursor,
        }
    }
}
