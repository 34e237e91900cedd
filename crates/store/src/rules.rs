//! Rate-limit rules and budgets stored through the admin API or `apply`: the JSON of core's
//! [`RateLimitRule`] and [`BudgetRule`] in `rate_limit_rules` and `budget_rules`, keyed by the
//! rule's name. Like stored providers and models, every change writes an audit row in its
//! transaction and publishes [`Change::Config`] after commit, storing what is stored already
//! changes nothing, and rules managed by `apply` are read-only to everyone else.
//!
//! Only the name is checked here; the rule's content is validated by core's config
//! validation, which the caller runs before storing.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::Actor;
use crate::db::{now_ms, Store};
use crate::error::StoreError;
use crate::providers::validate_config_name;
use crate::rows::{check_managed, check_may_set_managed, from_json, snapshot, to_json};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use switchboard_core::limits::{BudgetRule, RateLimitRule};

/// A stored rule with its bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredRule<R> {
    pub rule: R,
    /// `apply` for rules owned by config as code.
    pub managed_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub type StoredRateLimit = StoredRule<RateLimitRule>;
pub type StoredBudget = StoredRule<BudgetRule>;

/// What the generic code needs of a rule type: its table's statements and its name.
trait RuleTable: Serialize + DeserializeOwned + Clone + PartialEq {
    /// The audit object kind and the start of audit actions (`budget.create`).
    const KIND: &'static str;
    const SELECT_ONE: &'static str;
    const SELECT_ALL: &'static str;
    const INSERT: &'static str;
    const UPDATE: &'static str;
    const DELETE: &'static str;
    fn name(&self) -> Option<&str>;
}

macro_rules! rule_table {
    ($ty:ty, $kind:literal, $table:literal) => {
        impl RuleTable for $ty {
            const KIND: &'static str = $kind;
            const SELECT_ONE: &'static str = concat!(
                "SELECT name, body, managed_by, created_at, updated_at FROM ",
                $table,
                " WHERE name = $1"
            );
            const SELECT_ALL: &'static str = concat!(
                "SELECT name, body, managed_by, created_at, updated_at FROM ",
                $table,
                " ORDER BY name"
            );
            const INSERT: &'static str = concat!(
                "INSERT INTO ",
                $table,
                " (name, body, managed_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)"
            );
            const UPDATE: &'static str = concat!(
                "UPDATE ",
                $table,
                " SET body = $1, managed_by = $2, updated_at = $3 WHERE name = $4"
            );
            const DELETE: &'static str = concat!("DELETE FROM ", $table, " WHERE name = $1");
            fn name(&self) -> Option<&str> {
                self.name.as_deref()
            }
        }
    };
}

rule_table!(RateLimitRule, "rate_limit", "rate_limit_rules");
rule_table!(BudgetRule, "budget", "budget_rules");

fn rule_from_row<R: RuleTable>(row: &AnyRow) -> Result<StoredRule<R>, StoreError> {
    Ok(StoredRule {
        rule: from_json("body", &row.try_get::<String, _>("body")?)?,
        managed_by: row.try_get("managed_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn not_found<R: RuleTable>(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: R::KIND,
        name: name.to_owned(),
    }
}

async fn rule_in_tx<R: RuleTable>(
    tx: &mut Transaction<'static, Any>,
    name: &str,
) -> Result<Option<StoredRule<R>>, StoreError> {
    let row = sqlx::query(R::SELECT_ONE)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(rule_from_row).transpose()
}

impl Store {
    async fn list_rules<R: RuleTable>(&self) -> Result<Vec<StoredRule<R>>, StoreError> {
        let rows = sqlx::query(R::SELECT_ALL).fetch_all(&self.pool).await?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn get_rule<R: RuleTable>(&self, name: &str) -> Result<StoredRule<R>, StoreError> {
        let row = sqlx::query(R::SELECT_ONE)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(rule_from_row)
            .transpose()?
            .ok_or_else(|| not_found::<R>(name))
    }

    async fn put_rule<R: RuleTable>(
        &self,
        actor: &Actor,
        rule: R,
        managed_by: Option<String>,
    ) -> Result<bool, StoreError> {
        let name = rule.name().map(str::to_owned).ok_or_else(|| {
            StoreError::Invalid(format!("a stored {} rule needs a `name`", R::KIND))
        })?;
        validate_config_name(R::KIND, &name)?;
        check_may_set_managed(actor, managed_by.is_some())?;
        let mut tx = self.begin_write().await?;
        let existing = rule_in_tx::<R>(&mut tx, &name).await?;
        if let Some(existing) = &existing {
            check_managed(actor, R::KIND, &name, existing.managed_by.as_deref())?;
            if existing.rule == rule && existing.managed_by == managed_by {
                return Ok(false);
            }
        }
        let now = now_ms();
        let stored = StoredRule {
            rule,
            managed_by,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let body = to_json(&stored.rule)?;
        let verb = if existing.is_some() {
            sqlx::query(R::UPDATE)
                .bind(body)
                .bind(&stored.managed_by)
                .bind(stored.updated_at)
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            "update"
        } else {
            sqlx::query(R::INSERT)
                .bind(&name)
                .bind(body)
                .bind(&stored.managed_by)
                .bind(stored.created_at)
                .bind(stored.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    StoreError::unique(e, || format!("{} `{name}` already exists", R::KIND))
                })?;
            "create"
        };
        let action = format!("{}.{verb}", R::KIND);
        let record = AuditRecord {
            actor,
            action: &action,
            object_kind: R::KIND,
            object_id: &name,
            org_id: None,
            before: existing.as_ref().map(snapshot).transpose()?,
            after: Some(snapshot(&stored)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Config).await;
        Ok(existing.is_none())
    }

    async fn delete_rule<R: RuleTable>(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = rule_in_tx::<R>(&mut tx, name)
            .await?
            .ok_or_else(|| not_found::<R>(name))?;
        check_managed(actor, R::KIND, name, before.managed_by.as_deref())?;
        sqlx::query(R::DELETE).bind(name).execute(&mut *tx).await?;
        let action = format!("{}.delete", R::KIND);
        let record = AuditRecord {
            actor,
            action: &action,
            object_kind: R::KIND,
            object_id: name,
            org_id: None,
            before: Some(snapshot(&before)?),
            after: None,
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        self.publish(Change::Config).await;
        Ok(())
    }

    /// Every stored rate-limit rule, in name order.
    pub async fn list_rate_limits(&self) -> Result<Vec<StoredRateLimit>, StoreError> {
        self.list_rules().await
    }

    /// The stored rate-limit rule `name`.
    pub async fn get_rate_limit(&self, name: &str) -> Result<StoredRateLimit, StoreError> {
        self.get_rule(name).await
    }

    /// Creates or replaces the rate-limit rule named by `rule.name` (which must be set);
    /// `true` when it was created. Only `apply` may pass `managed_by` or change a managed
    /// rule. Storing what is stored already changes nothing (no audit row, no change event).
    pub async fn put_rate_limit(
        &self,
        actor: &Actor,
        rule: RateLimitRule,
        managed_by: Option<String>,
    ) -> Result<bool, StoreError> {
        self.put_rule(actor, rule, managed_by).await
    }

    /// Deletes the stored rate-limit rule `name`.
    pub async fn delete_rate_limit(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        self.delete_rule::<RateLimitRule>(actor, name).await
    }

    /// Every stored budget, in name order.
    pub async fn list_budgets(&self) -> Result<Vec<StoredBudget>, StoreError> {
        self.list_rules().await
    }

    /// The stored budget `name`.
    pub async fn get_budget(&self, name: &str) -> Result<StoredBudget, StoreError> {
        self.get_rule(name).await
    }

    /// Creates or replaces the budget named by `rule.name` (which must be set); `true` when it
    /// was created. Same rules as [`Store::put_rate_limit`].
    pub async fn put_budget(
        &self,
        actor: &Actor,
        rule: BudgetRule,
        managed_by: Option<String>,
    ) -> Result<bool, StoreError> {
        self.put_rule(actor, rule, managed_by).await
    }

    /// Deletes the stored budget `name`.
    pub async fn delete_budget(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        self.delete_rule::<BudgetRule>(actor, name).await
    }
}
