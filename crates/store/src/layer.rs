//! Everything stored that joins the server's config file on every load: providers (API keys
//! decrypted), models, rate-limit rules, budgets, prompts and prompt APIs, as the `StoredLayer`
//! the config loader merges. One place, so that a reload, the admin API's validation and
//! `apply` see the same.

use crate::{Store, StoreError};
use switchboard_core::config::StoredLayer;

impl Store {
    pub async fn stored_layer(&self) -> Result<StoredLayer, StoreError> {
        let json = |value: Result<serde_json::Value, serde_json::Error>| value.ok();
        Ok(StoredLayer {
            providers: self.stored_providers_decrypted().await?,
            models: self
                .stored_models()
                .await?
                .into_iter()
                .map(|m| (m.name, m.settings))
                .collect(),
            rate_limits: self
                .list_rate_limits()
                .await?
                .into_iter()
                .filter_map(|s| json(serde_json::to_value(s.rule)))
                .collect(),
            budgets: self
                .list_budgets()
                .await?
                .into_iter()
                .filter_map(|s| json(serde_json::to_value(s.rule)))
                .collect(),
            prompts: self
                .stored_prompts()
                .await?
                .into_iter()
                .map(|p| (p.name, p.settings))
                .collect(),
            apis: self
                .stored_apis()
                .await?
                .into_iter()
                .map(|a| (a.name, a.settings))
                .collect(),
        })
    }
}
