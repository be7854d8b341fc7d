//! What operators see: counts by status, a filtered, searched, sorted and keyset-paged
//! list of merchants' connections, one connection's details and timeline, and the two
//! operator actions (refresh now, check with Airwallex), each logged with the operator.
//! The list's queries are in [`list`], the actions in [`actions`].

mod actions;
mod list;
pub mod team;

pub use crate::store::ConnectionLine;

use std::sync::Arc;

use sqlx::Row;

use crate::db::Database;
use crate::store::{ConnectionEvent, ConnectionRow, ConnectionStatus, ConnectionStore};
use crate::time::Clock;
use crate::vault::TokenVault;

/// Rows per page.
pub const PAGE_SIZE: i64 = 50;
/// Sort key for rows without a refresh token: after every real expiry (as in `EXPIRY_KEY`).
pub const NO_EXPIRY: i64 = 9_000_000_000_000_000_000;

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

/// What operators see and do.
#[derive(Debug, Clone)]
pub struct OperatorDesk {
    pub(crate) db: Database,
    pub(crate) clock: Clock,
    pub(crate) vault: Arc<TokenVault>,
}

impl OperatorDesk {
    pub fn new(db: Database, clock: Clock, vault: Arc<TokenVault>) -> OperatorDesk {
        OperatorDesk { db, clock, vault }
    }

    pub(crate) fn store(&self) -> &ConnectionStore {
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

    /// The connection an operator looks at or acts on; `NotFound` when there is none.
    pub(crate) async fn connection_row(&self, connection_id: i64) -> Result<ConnectionRow, OperatorError> {
        let row = self.store().by_id(connection_id).await?;
        row.ok_or(OperatorError::NotFound)
    }

    /// A connection with its merchant's email.
    pub async fn connection_detail(&self, connection_id: i64) -> Result<(ConnectionRow, String), OperatorError> {
        let row = self.connection_row(connection_id).await?;
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
}
