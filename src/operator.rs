//! What operators see: counts by status, a filtered, searched, sorted and keyset-paged
//! list of merchants' connections, one connection's details and timeline, and the two
//! operator actions (refresh now, check with Airwallex), each logged with the operator.

use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::accounts::Email;
use crate::db::{Database, Engine};
use crate::store::{ConnectionEvent, ConnectionRow, ConnectionStatus, ConnectionStore, EventKind, NewEvent};
use crate::time::Clock;
use crate::vault::{Actor, TokenVault, VaultError};

/// Rows per page.
pub const PAGE_SIZE: i64 = 50;
/// Sort key for rows without a refresh token: after every real expiry (as in `EXPIRY_KEY`).
pub const NO_EXPIRY: i64 = 9_000_000_000_000_000_000;
const EXPIRY_KEY: &str = "COALESCE(c.refresh_expires_at, 9000000000000000000)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    Connected,
    NeedsReconnect,
    Disconnected,
    NotConnected,
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<StatusFilter> {
        Some(match text {
            "connected" => StatusFilter::Connected,
            "needs_reconnect" => StatusFilter::NeedsReconnect,
            "disconnected" => StatusFilter::Disconnected,
            "not_connected" => StatusFilter::NotConnected,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Soonest refresh-token expiry first (no token: last).
    #[default]
    RefreshExpiry,
    /// Most recent activity first.
    Activity,
}

impl SortOrder {
    pub fn parse(text: &str) -> Option<SortOrder> {
        match text {
            "refresh_expiry" => Some(SortOrder::RefreshExpiry),
            "activity" => Some(SortOrder::Activity),
            _ => None,
        }
    }
}

/// Where a page starts: after the row with this sort key and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}.{}", self.key, self.id)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (key, id) = text.split_once('.')?;
        Some(Cursor {
            key: key.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<StatusFilter>,
    pub search: Option<String>,
    pub sort: SortOrder,
    pub after: Option<Cursor>,
}

/// One line of the operator table. No tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLine {
    pub merchant_id: i64,
    pub email: String,
    pub connection_id: Option<i64>,
    pub status: Option<ConnectionStatus>,
    pub status_reason: Option<String>,
    pub business_name: Option<String>,
    pub account_id: Option<String>,
    pub connected_at: Option<i64>,
    pub last_refresh_at: Option<i64>,
    pub last_refresh_result: Option<String>,
    pub access_expires_at: Option<i64>,
    pub refresh_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_activity_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub lines: Vec<ConnectionLine>,
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub connected: i64,
    pub needs_reconnect: Vec<(String, i64)>,
    pub not_connected: i64,
    pub disconnected: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no such connection")]
    NotFound,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The vault could not reach its storage (it logged the cause).
    #[error("storage unavailable")]
    StorageUnavailable,
}

fn line_from_row(row: &AnyRow) -> Result<ConnectionLine, sqlx::Error> {
    Ok(ConnectionLine {
        merchant_id: row.try_get("merchant_id")?,
        email: row.try_get("email")?,
        connection_id: row.try_get("connection_id")?,
        status: row
            .try_get::<Option<String>, _>("status")?
            .map(|s| ConnectionStatus::parse(&s)),
        status_reason: row.try_get("status_reason")?,
        business_name: row.try_get("business_name")?,
        account_id: row.try_get("account_id")?,
        connected_at: row.try_get("connected_at")?,
        last_refresh_at: row.try_get("last_refresh_at")?,
        last_refresh_result: row.try_get("last_refresh_result")?,
        access_expires_at: row.try_get("access_expires_at")?,
        refresh_expires_at: row.try_get("refresh_expires_at")?,
        last_error: row.try_get("last_error")?,
        last_activity_at: row.try_get("last_activity_at")?,
    })
}

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

/// What operators see and do.
#[derive(Debug, Clone)]
pub struct OperatorDesk {
    db: Database,
    clock: Clock,
    vault: Arc<TokenVault>,
}

impl OperatorDesk {
    pub fn new(db: Database, clock: Clock, vault: Arc<TokenVault>) -> OperatorDesk {
        OperatorDesk { db, clock, vault }
    }

    fn store(&self) -> &ConnectionStore {
        self.vault.store()
    }

    /// Counts by status (and reason), read from the counters that triggers keep exact.
    pub async fn status_counts(&self) -> Result<StatusCounts, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT status, reason, CAST(SUM(n) AS BIGINT) AS n FROM connection_status_counts \
             GROUP BY status, reason HAVING SUM(n) > 0",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut counts = StatusCounts::default();
        let mut with_connection = 0;
        for row in rows {
            let status: String = row.try_get("status")?;
            let reason: String = row.try_get("reason")?;
            let n: i64 = row.try_get("n")?;
            with_connection += n;
            match ConnectionStatus::parse(&status) {
                ConnectionStatus::Connected => counts.connected += n,
                ConnectionStatus::Disconnected => counts.disconnected += n,
                ConnectionStatus::NeedsReconnect => {
                    counts
                        .needs_reconnect
                        .push((if reason.is_empty() { "unknown".into() } else { reason }, n));
                }
            }
        }
        counts.needs_reconnect.sort();
        let merchants: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM account_counts WHERE role = 'merchant'",
        )
        .fetch_one(self.db.pool())
        .await?;
        counts.not_connected = (merchants - with_connection).max(0);
        Ok(counts)
    }

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
            "SELECT m.id AS merchant_id, m.email, c.id AS connection_id, c.status, c.status_reason, c.business_name, \
             c.account_id, c.connected_at, c.last_refresh_at, c.last_refresh_result, c.access_expires_at, \
             c.refresh_expires_at, c.last_error, c.last_activity_at, {key} AS sort_key \
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
            if lower.starts_with("acct_") && !lower.contains(char::is_whitespace) {
                binds.push(Bind::Text(term.to_string()));
                sql.push_str(&format!(" AND c.account_id = ${}", binds.len()));
            } else if Email::parse(term).is_ok() && self.email_exists(&lower).await? {
                binds.push(Bind::Text(lower));
                sql.push_str(&format!(" AND m.email = ${}", binds.len()));
            } else if self.db.engine() == Engine::Sqlite && term.chars().count() >= 3 {
                // SQLite's trigram indexes find substrings of three characters or more.
                binds.push(Bind::Text(fts_phrase(term)));
                let phrase = binds.len();
                let business = if lower.contains('@') {
                    String::new()
                } else {
                    format!(" UNION SELECT rowid FROM connections_name_fts WHERE connections_name_fts MATCH ${phrase}")
                };
                sql.push_str(&format!(
                    " AND c.id IN (SELECT c3.id FROM connections c3 WHERE c3.merchant_id IN \
                     (SELECT rowid FROM merchants_email_fts WHERE merchants_email_fts MATCH ${phrase}){business})"
                ));
            } else {
                binds.push(Bind::Text(like_pattern(term)));
                let pattern = binds.len();
                let business = if lower.contains('@') {
                    String::new()
                } else {
                    format!(" UNION SELECT id FROM connections WHERE LOWER(business_name) LIKE ${pattern} ESCAPE '\\'")
                };
                sql.push_str(&format!(
                    " AND c.id IN (SELECT c3.id FROM connections c3 WHERE c3.merchant_id IN \
                     (SELECT m3.id FROM merchants m3 WHERE m3.email LIKE ${pattern} ESCAPE '\\'){business})"
                ));
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
            lines.push(line_from_row(row)?);
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
        let rows = sqlx::query(
            "SELECT m.id AS merchant_id, m.email FROM merchants m WHERE m.role = 'merchant' \
             AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.merchant_id = m.id) \
             AND m.email LIKE $1 ESCAPE '\\' AND m.id < $2 ORDER BY m.id DESC LIMIT $3",
        )
        .bind(pattern)
        .bind(query.after.map(|c| c.id).unwrap_or(i64::MAX))
        .bind(PAGE_SIZE + 1)
        .fetch_all(self.db.pool())
        .await?;
        let mut lines: Vec<ConnectionLine> = rows
            .iter()
            .map(|row| {
                Ok(ConnectionLine {
                    merchant_id: row.try_get("merchant_id")?,
                    email: row.try_get("email")?,
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

    async fn email_exists(&self, email: &str) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM merchants WHERE email = $1")
            .bind(email)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(found.is_some())
    }

    /// A connection with its merchant's email.
    pub async fn connection_detail(&self, connection_id: i64) -> Result<(ConnectionRow, String), OperatorError> {
        let row = self
            .store()
            .by_id(connection_id)
            .await?
            .ok_or(OperatorError::NotFound)?;
        let email: String = sqlx::query_scalar("SELECT email FROM merchants WHERE id = $1")
            .bind(row.merchant_id)
            .fetch_one(self.db.pool())
            .await?;
        Ok((row, email))
    }

    pub async fn connection_events(
        &self,
        connection_id: i64,
        before: Option<i64>,
    ) -> Result<(Vec<ConnectionEvent>, Option<i64>), sqlx::Error> {
        let mut events = self.store().events(connection_id, before, PAGE_SIZE + 1).await?;
        let older = if events.len() as i64 > PAGE_SIZE {
            events.truncate(PAGE_SIZE as usize);
            events.last().map(|e| e.id)
        } else {
            None
        };
        Ok((events, older))
    }

    /// "Refresh now": rotates the tokens through the vault, logged with the operator.
    pub async fn refresh_now(&self, connection_id: i64, operator: &str) -> Result<(), OperatorError> {
        let row = self
            .store()
            .by_id(connection_id)
            .await?
            .ok_or(OperatorError::NotFound)?;
        if row.status != ConnectionStatus::Connected {
            // Nothing to refresh; say so in the timeline, with the operator.
            self.log_operator_event(row.id, EventKind::RefreshFailed, "not_connected", operator)
                .await?;
            return Ok(());
        }
        match self
            .vault
            .rotate(row.id, row.generation, Actor::Operator(operator.to_string()))
            .await
        {
            Err(VaultError::Database) => Err(OperatorError::StorageUnavailable),
            // Success and every other failure are in the timeline already (refreshed,
            // refresh_failed or needs_reconnect), recorded with the operator by the vault.
            _ => Ok(()),
        }
    }

    /// "Check with Airwallex": reads the account through the vault (a revoked connection
    /// is detected on the way) and logs the result with the operator.
    pub async fn check_with_airwallex(&self, connection_id: i64, operator: &str) -> Result<(), OperatorError> {
        let row = self
            .store()
            .by_id(connection_id)
            .await?
            .ok_or(OperatorError::NotFound)?;
        let outcome = if row.status != ConnectionStatus::Connected {
            "not_connected".to_string()
        } else {
            match self.vault.account_for(row.merchant_id).await {
                Ok((id, details)) => {
                    let json = serde_json::to_string(&details).unwrap_or_default();
                    self.store()
                        .store_account(
                            id,
                            details.id.as_deref(),
                            details.display_name(),
                            &json,
                            self.clock.now(),
                        )
                        .await?;
                    "ok".to_string()
                }
                Err(VaultError::NeedsReconnect(reason)) => format!("needs_reconnect:{}", reason.as_str()),
                Err(error) => format!("failed:{error}"),
            }
        };
        self.log_operator_event(row.id, EventKind::Checked, &outcome, operator)
            .await?;
        Ok(())
    }

    async fn log_operator_event(
        &self,
        connection_id: i64,
        kind: EventKind,
        reason: &str,
        operator: &str,
    ) -> Result<(), sqlx::Error> {
        let actor = format!("operator:{operator}");
        self.store()
            .log_event(
                connection_id,
                NewEvent::new(kind, &actor).reason(reason),
                self.clock.now(),
            )
            .await
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor { key: NO_EXPIRY, id: 42 };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("x.1"), None);
        assert_eq!(Cursor::decode("12"), None);
    }

    #[test]
    fn search_terms_match_literally() {
        assert_eq!(like_pattern(" Acme_50% "), "%acme\\_50\\%%");
    }
}
