//! Prompts and prompt APIs stored through the admin API or `apply`: the mapping of a config
//! file's `prompts:` or `apis:` entry, as JSON, kept like stored models (audit row in the same
//! transaction, `managed_by`, [`Change::Config`] after each change). The gateway merges them
//! into its config through [`Store::stored_layer`](crate::Store::stored_layer).
//!
//! Prompt versions are immutable, and this is the one place that enforces it for stored
//! prompts: [`Store::put_prompt`] refuses, inside its write transaction, a mapping in which an
//! existing version has other content or is missing ([`StoreError::Immutable`]). Writes are
//! serialised (`begin_write`), so the check reads what is committed: two writers that both
//! append "the next version" cannot both win with different texts.

use crate::common::{Actor, Page, PageRequest};
use crate::db::Store;
use crate::entries::{no_guard, Put, APIS, PROMPTS};
use crate::error::StoreError;
use crate::records::{StoredApi, StoredPrompt};
use serde_json::Value;
use switchboard_core::config::immutable;

/// The guard of prompt puts: no stored version changes or disappears.
fn versions_unchanged(name: &str, old: &Value, new: &Value) -> Result<(), StoreError> {
    immutable::check_stored(name, old, new).map_err(StoreError::Immutable)
}

impl Store {
    /// Creates or replaces a stored prompt. Refused with [`StoreError::Immutable`] when a
    /// version the stored prompt has is changed or left out (labels may change freely).
    /// Storing what is stored already changes nothing (no audit row, no change event).
    pub async fn put_prompt(
        &self,
        actor: &Actor,
        name: &str,
        settings: Value,
        managed_by: Option<String>,
    ) -> Result<StoredPrompt, StoreError> {
        let put = Put {
            actor,
            name,
            settings,
            managed_by,
        };
        self.put_entry(&PROMPTS, put, versions_unchanged).await
    }

    /// The stored prompt `name`.
    pub async fn get_prompt(&self, name: &str) -> Result<StoredPrompt, StoreError> {
        self.get_entry(&PROMPTS, name).await
    }

    /// A page of stored prompts in name order; the cursor is the last name seen.
    pub async fn list_prompts(&self, page: &PageRequest) -> Result<Page<StoredPrompt>, StoreError> {
        let page = self.list_entries(&PROMPTS, page).await?;
        Ok(page)
    }

    /// Every stored prompt in name order, for building the gateway's config.
    pub async fn stored_prompts(&self) -> Result<Vec<StoredPrompt>, StoreError> {
        let all = self.all_entries(&PROMPTS).await?;
        Ok(all)
    }

    /// Deletes a stored prompt with all its versions (the caller checks that no API uses it).
    pub async fn delete_prompt(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        self.delete_entry(&PROMPTS, actor, name).await
    }

    /// Creates or replaces a stored prompt API.
    pub async fn put_api(
        &self,
        actor: &Actor,
        name: &str,
        settings: Value,
        managed_by: Option<String>,
    ) -> Result<StoredApi, StoreError> {
        let put = Put {
            actor,
            name,
            settings,
            managed_by,
        };
        self.put_entry(&APIS, put, no_guard).await
    }

    /// The stored API `name`.
    pub async fn get_api(&self, name: &str) -> Result<StoredApi, StoreError> {
        self.get_entry(&APIS, name).await
    }

    /// A page of stored APIs in name order; the cursor is the last name seen.
    pub async fn list_apis(&self, page: &PageRequest) -> Result<Page<StoredApi>, StoreError> {
        let page = self.list_entries(&APIS, page).await?;
        Ok(page)
    }

    /// Every stored API in name order, for building the gateway's config.
    pub async fn stored_apis(&self) -> Result<Vec<StoredApi>, StoreError> {
        let all = self.all_entries(&APIS).await?;
        Ok(all)
    }

    /// Deletes a stored API.
    pub async fn delete_api(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        self.delete_entry(&APIS, actor, name).await
    }
}
