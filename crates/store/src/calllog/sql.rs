//! A WHERE clause and the values of its placeholders, built together so they always match.
//! Only column names chosen by this crate and placeholders are spliced into SQL; every value a
//! caller gives is bound.

use crate::db::Store;
use crate::error::StoreError;
use sqlx::any::AnyRow;

/// One bound value.
#[derive(Clone, Debug)]
pub(crate) enum Bound {
    Text(String),
    Int(i64),
}

/// Conditions joined by `AND`, with `$N` placeholders numbered in push order.
#[derive(Default)]
pub(crate) struct Where {
    pub(crate) sql: String,
    values: Vec<Bound>,
}

impl Where {
    /// Adds `condition`, whose `?` marks are numbered with the next placeholders, one per
    /// value in `values` (in order).
    pub(crate) fn push(&mut self, condition: &str, values: Vec<Bound>) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        let mut out = String::with_capacity(condition.len() + 8);
        for ch in condition.chars() {
            if ch == '?' {
                self.values.push(Bound::Text(String::new()));
                out.push_str(&format!("${}", self.values.len()));
            } else {
                out.push(ch);
            }
        }
        // Replace the placeholders' stand-ins with the real values, in order.
        let start = self.values.len() - values.len().min(self.values.len());
        for (slot, value) in self.values[start..].iter_mut().zip(values) {
            *slot = value;
        }
        self.sql.push_str(&out);
    }

    /// Takes the conditions pushed so far (` WHERE ...`) and starts a new clause whose
    /// placeholders go on numbering after these: for statements with several WHERE clauses
    /// (the parts of a `UNION ALL`), all bound by one [`Where::fetch_all`].
    pub(crate) fn take_sql(&mut self) -> String {
        std::mem::take(&mut self.sql)
    }

    pub(crate) fn text(&mut self, column: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.push(
                &format!("{column} = ?"),
                vec![Bound::Text(value.to_owned())],
            );
        }
    }

    pub(crate) fn int(&mut self, condition: &str, value: Option<i64>) {
        if let Some(value) = value {
            self.push(condition, vec![Bound::Int(value)]);
        }
    }

    pub(crate) async fn fetch_all(
        &self,
        store: &Store,
        sql: String,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in &self.values {
            query = match value {
                Bound::Text(text) => query.bind(text.clone()),
                Bound::Int(int) => query.bind(*int),
            };
        }
        Ok(query.fetch_all(&store.pool).await?)
    }
}

/// `value` with LIKE's wildcards (and the escape character) escaped by `\`.
pub(crate) fn escape_like(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut w = Where::default();
        w.text("org", Some("acme"));
        w.push(
            "(a < ? OR (a = ? AND id < ?))",
            vec![Bound::Int(1), Bound::Int(1), Bound::Int(2)],
        );
        assert_eq!(
            w.sql,
            " WHERE org = $1 AND (a < $2 OR (a = $3 AND id < $4))"
        );
        assert_eq!(w.values.len(), 4);
        assert!(matches!(w.values[3], Bound::Int(2)));
        let first = w.take_sql();
        assert!(first.ends_with("$4))"));
        w.int("b >= ?", Some(7));
        assert_eq!(w.sql, " WHERE b >= $5");
        assert!(matches!(w.values[4], Bound::Int(7)));
        assert_eq!(escape_like("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
