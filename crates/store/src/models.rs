//! Model aliases stored through the admin API or `apply`: the mapping of a config file's
//! `models:` entry, as JSON. The gateway merges them into its config (see
//! [`Store::stored_models`]); every change publishes [`Change::Config`].

use crate::common::{Actor, Page, PageRequest};
use crate::db::Store;
use crate::entries::{no_guard, Put, MODELS};
use crate::error::StoreError;
use crate::records::StoredModel;
use serde_json::Value;

impl Store {
    /// Creates or replaces a stored model alias. Storing what is stored already changes
    /// nothing (no audit row, no change event), so `apply` is idempotent.
    pub async fn put_model(
        &self,
        actor: &Actor,
        name: &str,
        settings: Value,
        managed_by: Option<String>,
    ) -> Result<StoredModel, StoreError> {
        let put = Put {
            actor,
            name,
            settings,
            managed_by,
        };
        self.put_entry(&MODELS, put, no_guard).await
    }

    /// The stored model alias `name`.
    pub async fn get_model(&self, name: &str) -> Result<StoredModel, StoreError> {
        self.get_entry(&MODELS, name).await
    }

    /// A page of stored model aliases in name order; the cursor is the last name seen.
    pub async fn list_models(&self, page: &PageRequest) -> Result<Page<StoredModel>, StoreError> {
        self.list_entries(&MODELS, page).await
    }

    /// Every stored model alias in name order, for building the gateway's config.
    pub async fn stored_models(&self) -> Result<Vec<StoredModel>, StoreError> {
        self.all_entries(&MODELS).await
    }

    /// Deletes a stored model alias.
    pub async fn delete_model(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        self.delete_entry(&MODELS, actor, name).await
    }
}
