//! The store as the limiter's [`SpendSource`]: recorded spend seeds budget counters after a
//! restart (or when Redis lost them), so a budget does not start again from zero.

use crate::Store;
use switchboard_core::limits::{Scope, SpendSource};

#[async_trait::async_trait]
impl SpendSource for Store {
    async fn spend_since(&self, scope: Scope, subject: &str, since_ms: i64) -> Result<i64, String> {
        Store::spend_since(self, scope, subject, since_ms)
            .await
            .map_err(|err| err.to_string())
    }
}
