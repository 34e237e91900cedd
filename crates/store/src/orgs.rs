//! Organisations (tenants): the top of the tenancy tree. Deleting one deletes everything in it
//! (teams, apps, keys, subscriptions, memberships) through the schema's cascades.

use crate::audit::{self, AuditRecord};
use crate::changes::Change;
use crate::common::{Actor, Page, PageRequest};
use crate::db::{new_id, now_ms, Store};
use crate::error::StoreError;
use crate::records::{NewOrg, Org, OrgPatch};
use crate::rows::{
    check_managed, check_may_set_managed, cursor, fetch_limit, snapshot, validate_slug,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const KIND: &str = "organisation";

macro_rules! select_org {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, display_name, managed_by, created_at, updated_at FROM orgs ",
            $tail
        )
    };
}

fn org_from_row(row: &AnyRow) -> Result<Org, StoreError> {
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        managed_by: row.try_get("managed_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn not_found(name: &str) -> StoreError {
    StoreError::NotFound {
        kind: KIND,
        name: name.to_owned(),
    }
}

/// The org named `name`, read inside a write transaction.
async fn org_in_tx(tx: &mut Transaction<'static, Any>, name: &str) -> Result<Org, StoreError> {
    let row = sqlx::query(select_org!("WHERE name = $1"))
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref()
        .map(org_from_row)
        .transpose()?
        .ok_or_else(|| not_found(name))
}

impl Store {
    /// Creates an organisation; its name must be a free slug.
    pub async fn create_org(&self, actor: &Actor, new: NewOrg) -> Result<Org, StoreError> {
        validate_slug(KIND, &new.name)?;
        check_may_set_managed(actor, new.managed_by.is_some())?;
        let now = now_ms();
        let org = Org {
            id: new_id("org"),
            name: new.name,
            display_name: new.display_name,
            managed_by: new.managed_by,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO orgs (id, name, display_name, managed_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(&org.display_name)
        .bind(&org.managed_by)
        .bind(org.created_at)
        .bind(org.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("{KIND} `{}` already exists", org.name)))?;
        let record = AuditRecord {
            actor,
            action: "org.create",
            object_kind: "org",
            object_id: &org.id,
            org_id: Some(&org.id),
            before: None,
            after: Some(snapshot(&org)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        Ok(org)
    }

    /// The organisation named `name`.
    pub async fn get_org(&self, name: &str) -> Result<Org, StoreError> {
        let row = sqlx::query(select_org!("WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(org_from_row)
            .transpose()?
            .ok_or_else(|| not_found(name))
    }

    /// The organisation with this id.
    pub async fn get_org_by_id(&self, id: &str) -> Result<Org, StoreError> {
        let row = sqlx::query(select_org!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(org_from_row)
            .transpose()?
            .ok_or_else(|| not_found(id))
    }

    /// A page of organisations in id (creation) order; `only` restricts it to these ids (the
    /// organisations a signed-in user belongs to).
    pub async fn list_orgs(
        &self,
        page: &PageRequest,
        only: Option<&[String]>,
    ) -> Result<Page<Org>, StoreError> {
        let cursor = cursor(page);
        let rows = match only {
            None => {
                sqlx::query(select_org!("WHERE id > $1 ORDER BY id LIMIT $2"))
                    .bind(cursor)
                    .bind(fetch_limit(page))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some([]) => Vec::new(),
            Some(ids) => {
                let placeholders: Vec<String> =
                    (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
                // Only generated placeholders are spliced in; the ids themselves are bound.
                let sql = format!(
                    "{} AND id IN ({}) ORDER BY id LIMIT $2",
                    select_org!("WHERE id > $1"),
                    placeholders.join(", ")
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(cursor)
                    .bind(fetch_limit(page));
                for id in ids {
                    query = query.bind(id.clone());
                }
                query.fetch_all(&self.pool).await?
            }
        };
        let items = rows
            .iter()
            .map(org_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(items, page.limit(), |o| o.id.clone()))
    }

    /// Changes an organisation's display name (or, for `apply`, who manages it).
    pub async fn update_org(
        &self,
        actor: &Actor,
        name: &str,
        patch: OrgPatch,
    ) -> Result<Org, StoreError> {
        let mut tx = self.begin_write().await?;
        let before = org_in_tx(&mut tx, name).await?;
        check_managed(actor, KIND, name, before.managed_by.as_deref())?;
        let mut org = before.clone();
        if let Some(display_name) = patch.display_name {
            org.display_name = display_name;
        }
        check_may_set_managed(actor, patch.managed_by.is_some())?;
        if let Some(managed_by) = patch.managed_by {
            org.managed_by = managed_by;
        }
        if org == before {
            return Ok(before);
        }
        org.updated_at = now_ms();
        sqlx::query(
            "UPDATE orgs SET display_name = $1, managed_by = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&org.display_name)
        .bind(&org.managed_by)
        .bind(org.updated_at)
        .bind(&org.id)
        .execute(&mut *tx)
        .await?;
        let record = AuditRecord {
            actor,
            action: "org.update",
            object_kind: "org",
            object_id: &org.id,
            org_id: Some(&org.id),
            before: Some(snapshot(&before)?),
            after: Some(snapshot(&org)?),
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Deletes an organisation and everything in it.
    pub async fn delete_org(&self, actor: &Actor, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let before = org_in_tx(&mut tx, name).await?;
        check_managed(actor, KIND, name, before.managed_by.as_deref())?;
        sqlx::query("DELETE FROM orgs WHERE id = $1")
            .bind(&before.id)
            .execute(&mut *tx)
            .await?;
        let record = AuditRecord {
            actor,
            action: "org.delete",
            object_kind: "org",
            object_id: &before.id,
            org_id: Some(&before.id),
            before: Some(snapshot(&before)?),
            after: None,
        };
        audit::append(&mut tx, self.backend, record).await?;
        tx.commit().await?;
        // Its keys went with it: cached grants must go too.
        self.publish(Change::Access).await;
        Ok(())
    }
}
