//! Helpers every table module shares: JSON kept as TEXT (lists, maps, settings) with a bad
//! stored value turned into an error instead of a panic, keyset paging, name and list checks,
//! and the rule that objects managed by `apply` are read-only to everyone else.

use crate::common::Actor;
use crate::error::StoreError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Serialises a value for a TEXT column.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("cannot encode: {e}")))
}

/// Serialises an optional value for a nullable TEXT column.
pub(crate) fn to_json_opt<T: Serialize>(value: Option<&T>) -> Result<Option<String>, StoreError> {
    value.map(to_json).transpose()
}

/// Parses a TEXT column written by [`to_json`]. A value that does not parse means the row was
/// changed outside the store: reported as a decode error of the database.
pub(crate) fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Database(sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(e),
        })
    })
}

/// [`from_json`] of a nullable column.
pub(crate) fn from_json_opt<T: DeserializeOwned>(
    column: &str,
    text: Option<String>,
) -> Result<Option<T>, StoreError> {
    text.map(|t| from_json(column, &t)).transpose()
}

/// The JSON form of a record for the audit log.
pub(crate) fn snapshot<T: Serialize>(record: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(record).map_err(|e| StoreError::Invalid(format!("cannot encode: {e}")))
}

/// Where a page starts: rows whose id (or name) sorts after this; empty for the first page,
/// since every id sorts after "".
pub(crate) fn cursor(page: &crate::PageRequest) -> String {
    page.cursor.clone().unwrap_or_default()
}

/// `limit + 1` rows are fetched so that [`crate::Page::from_rows`] can tell whether more follow.
pub(crate) fn fetch_limit(page: &crate::PageRequest) -> i64 {
    i64::from(page.limit()) + 1
}

/// The rule for names of orgs, teams and apps, which appear in URLs and the CLI.
/// The rule itself lives in core (config files check it too).
pub(crate) fn validate_slug(kind: &str, name: &str) -> Result<(), StoreError> {
    if switchboard_core::config::is_slug(name) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {kind} name `{name}`: {}",
            switchboard_core::config::SLUG_RULE
        )))
    }
}

/// Refuses changes to an object owned by config as code, unless `apply` itself makes them.
pub(crate) fn check_managed(
    actor: &Actor,
    kind: &'static str,
    name: &str,
    managed_by: Option<&str>,
) -> Result<(), StoreError> {
    if managed_by.is_some() && !actor.is_apply() {
        return Err(StoreError::Managed {
            kind,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Only `apply` marks objects as managed (or releases them): `setting` says whether the call
/// sets `managed_by`.
pub(crate) fn check_may_set_managed(actor: &Actor, setting: bool) -> Result<(), StoreError> {
    if setting && !actor.is_apply() {
        return Err(StoreError::Invalid(
            "only `switchboard apply` can mark objects as managed".to_owned(),
        ));
    }
    Ok(())
}

/// The most entries a model or API list may have.
const MAX_LIST: usize = 1000;

/// Checks a list of model aliases or API names (`None` means "all" and is always fine).
pub(crate) fn validate_list(field: &str, list: Option<&[String]>) -> Result<(), StoreError> {
    let Some(list) = list else { return Ok(()) };
    if list.len() > MAX_LIST {
        return Err(StoreError::Invalid(format!(
            "`{field}` has at most {MAX_LIST} entries"
        )));
    }
    if list.iter().any(|entry| entry.trim().is_empty()) {
        return Err(StoreError::Invalid(format!(
            "`{field}` cannot contain empty names"
        )));
    }
    Ok(())
}
