//! The operator's list: status and reason filters, search by email or business name
//! (trigram full-text search on SQLite, trigram indexes on PostgreSQL; exactly by account
//! id, whole email or the platform's external id), sorting and keyset paging that both
//! engines run the same way.

use sqlx::Row;

use super::{ConnectionLine, Cursor, ListPage, ListQuery, OperatorDesk, SortOrder, StatusFilter, PAGE_SIZE};
use crate::accounts::Email;
use crate::db::Engine;
use crate::store::LINE_COLUMNS;

const EXPIRY_KEY: &str = "COALESCE(c.refresh_expires_at, 9000000000000000000)";

/// The search term as a lower-case `LIKE` pattern, with wildcards in it taken literally.
fn like_pattern(term: &str) -> String {
    let escaped: String = term
        .trim()
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// The search term as an FTS5 phrase (a substring for the trigram tokenizer), quotes
/// doubled so that nothing in it is query syntax.
fn fts_phrase(term: &str) -> String {
    format!("\"{}\"", term.trim().replace('"', "\"\""))
}

/// The condition on `c.id` that finds connections whose merchant's email contains the term
/// bound as parameter `p` (and, when `names_too`, whose business name does): through
/// SQLite's trigram full-text indexes (`trigram`, the term an FTS5 phrase), or else a
/// `LIKE` pattern (which PostgreSQL's trigram indexes serve).
fn containing(p: usize, trigram: bool, names_too: bool) -> String {
    let (emails, names) = if trigram {
        (
            format!("SELECT rowid FROM merchants_email_fts WHERE merchants_email_fts MATCH ${p}"),
            format!("SELECT rowid FROM connections_name_fts WHERE connections_name_fts MATCH ${p}"),
        )
    } else {
        (
            format!("SELECT m3.id FROM merchants m3 WHERE m3.email LIKE ${p} ESCAPE '\\'"),
            format!("SELECT id FROM connections WHERE LOWER(business_name) LIKE ${p} ESCAPE '\\'"),
        )
    };
    let business = if names_too {
        format!(" UNION {names}")
    } else {
        String::new()
    };
    format!(" AND c.id IN (SELECT c3.id FROM connections c3 WHERE c3.merchant_id IN ({emails}){business})")
}

impl OperatorDesk {
    /// One page of the operator table.
    pub async fn list_connections(&self, query: &ListQuery) -> Result<ListPage, sqlx::Error> {
        if query.status == Some(StatusFilter::NotConnected) {
            return self.list_not_connected(query).await;
        }
        let (key, order) = match query.sort {
            SortOrder::RefreshExpiry => (EXPIRY_KEY, "ASC"),
            SortOrder::Activity => ("c.last_activity_at", "DESC"),
        };
        let mut sql = format!(
            "SELECT {LINE_COLUMNS}, {key} AS sort_key \
             FROM connections c JOIN merchants m ON m.id = c.merchant_id WHERE 1 = 1"
        );
        let mut binds: Vec<Bind> = Vec::new();
        if let Some(status) = query.status {
            binds.push(Bind::Text(
                match status {
                    StatusFilter::Connected => "connected",
                    StatusFilter::NeedsReconnect => "needs_reconnect",
                    _ => "disconnected",
                }
                .into(),
            ));
            sql.push_str(&format!(" AND c.status = ${}", binds.len()));
        }
        if let Some(term) = query.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            // An account id or a whole email goes through its index; anything else is a
            // substring of an email or business name, found by scanning one table each.
            let lower = term.to_lowercase();
            if self.merchant_with(ExactColumn::ExternalId, term).await? {
                // The platform's id for a merchant, exactly.
                binds.push(Bind::Text(term.to_string()));
                sql.push_str(&format!(" AND m.external_id = ${}", binds.len()));
            } else if lower.starts_with("acct_") && !lower.contains(char::is_whitespace) {
                binds.push(Bind::Text(term.to_string()));
                sql.push_str(&format!(" AND c.account_id = ${}", binds.len()));
            } else if Email::parse(term).is_ok() && self.merchant_with(ExactColumn::Email, &lower).await? {
                binds.push(Bind::Text(lower));
                sql.push_str(&format!(" AND m.email = ${}", binds.len()));
            } else {
                // SQLite's trigram indexes find substrings of three characters or more.
                let trigram = self.db.engine() == Engine::Sqlite && term.chars().count() >= 3;
                binds.push(Bind::Text(if trigram { fts_phrase(term) } else { like_pattern(term) }));
                sql.push_str(&containing(binds.len(), trigram, !lower.contains('@')));
            }
        }
        if let Some(after) = query.after {
            binds.push(Bind::Int(after.key));
            let k = binds.len();
            binds.push(Bind::Int(after.id));
            let i = binds.len();
            // Written so both engines see a range on the sort index, then a tie-break.
            let (strict, loose, id_op) = if order == "ASC" {
                (">", ">=", ">")
            } else {
                ("<", "<=", "<")
            };
            sql.push_str(&format!(
                " AND {key} {loose} ${k} AND ({key} {strict} ${k} OR c.id {id_op} ${i})"
            ));
        }
        binds.push(Bind::Int(PAGE_SIZE + 1));
        sql.push_str(&format!(" ORDER BY {key} {order}, c.id {order} LIMIT ${}", binds.len()));
        let mut q = sqlx::query(&sql);
        for bind in &binds {
            q = match bind {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(n) => q.bind(*n),
            };
        }
        let rows = q.fetch_all(self.db.pool()).await?;
        let mut lines = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            lines.push(ConnectionLine::from_row(row)?);
            keys.push(row.try_get::<i64, _>("sort_key")?);
        }
        let next = if lines.len() as i64 > PAGE_SIZE {
            lines.truncate(PAGE_SIZE as usize);
            let last = lines.last().expect("a full page has a last line");
            Some(Cursor {
                key: keys[PAGE_SIZE as usize - 1],
                id: last.connection_id.unwrap_or_default(),
            })
        } else {
            None
        };
        Ok(ListPage { lines, next })
    }

    async fn list_not_connected(&self, query: &ListQuery) -> Result<ListPage, sqlx::Error> {
        let pattern = query
            .search
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(like_pattern)
            .unwrap_or_else(|| "%".into());
        let exact = query.search.as_deref().map(str::trim).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT m.id AS merchant_id, m.email, m.external_id, m.tags, m.email_verified_at FROM merchants m \
             WHERE m.role = 'merchant' AND m.deleted_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.merchant_id = m.id) \
             AND (m.email LIKE $1 ESCAPE '\\' OR m.external_id = $4) AND m.id < $2 ORDER BY m.id DESC LIMIT $3",
        )
        .bind(pattern)
        .bind(query.after.map(|c| c.id).unwrap_or(i64::MAX))
        .bind(PAGE_SIZE + 1)
        .bind(exact)
        .fetch_all(self.db.pool())
        .await?;
        let mut lines: Vec<ConnectionLine> = rows
            .iter()
            .map(|row| {
                Ok(ConnectionLine {
                    merchant_id: row.try_get("merchant_id")?,
                    email: row.try_get("email")?,
                    external_id: row.try_get("external_id")?,
                    tags: row.try_get("tags")?,
                    connection_id: None,
                    status: None,
                    status_reason: None,
                    business_name: None,
                    account_id: None,
                    connected_at: None,
                    last_refresh_at: None,
                    last_refresh_result: None,
                    access_expires_at: None,
                    refresh_expires_at: None,
                    last_error: None,
                    last_activity_at: None,
                    email_verified: row.try_get::<Option<i64>, _>("email_verified_at")?.is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let next = if lines.len() as i64 > PAGE_SIZE {
            lines.truncate(PAGE_SIZE as usize);
            lines.last().map(|l| Cursor {
                key: 0,
                id: l.merchant_id,
            })
        } else {
            None
        };
        Ok(ListPage { lines, next })
    }

    /// Whether a merchant has exactly `value` in `column`.
    async fn merchant_with(&self, column: ExactColumn, value: &str) -> Result<bool, sqlx::Error> {
        let sql = match column {
            ExactColumn::ExternalId => "SELECT id FROM merchants WHERE external_id = $1",
            ExactColumn::Email => "SELECT id FROM merchants WHERE email = $1",
        };
        let found: Option<i64> = sqlx::query_scalar(sql)
            .bind(value)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(found.is_some())
    }
}

/// The indexed columns a search term may match exactly.
enum ExactColumn {
    ExternalId,
    Email,
}

enum Bind {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_match_literally() {
        assert_eq!(like_pattern(" Acme_50% "), "%acme\\_50\\%%");
    }
}
