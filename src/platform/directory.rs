//! The merchants' connections as the platform's backend sees them: a keyset-paged list
//! and one merchant's connection. No tokens.

use crate::accounts::Email;
use crate::db::Database;
use crate::store::{ConnectionLine, ConnectionStatus, LINE_COLUMNS};

/// One merchant's connection, as every list shows it.
pub type ConnectionInfo = ConnectionLine;

/// Which connections to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<ConnectionStatus>,
    /// An exact email (normalised).
    pub email: Option<String>,
    /// The platform's id for the merchant, exactly.
    pub external_id: Option<String>,
    /// Connections with an id above this.
    pub after: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub connections: Vec<ConnectionInfo>,
    /// The `after` of the next page, when there is one.
    pub next_after: Option<i64>,
}

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Clone)]
pub struct Directory {
    db: Database,
}

impl Directory {
    pub fn new(db: Database) -> Directory {
        Directory { db }
    }

    /// Connections in id order, `limit` at a time.
    pub async fn list(&self, filter: &Filter) -> Result<Page, sqlx::Error> {
        let limit = filter.limit.clamp(1, MAX_LIMIT);
        let email = filter.email.as_deref().map(|e| {
            Email::parse(e)
                .map(|e| e.to_string())
                .unwrap_or_else(|_| e.trim().to_lowercase())
        });
        let rows = sqlx::query(&format!(
            "SELECT {LINE_COLUMNS} FROM connections c JOIN merchants m ON m.id = c.merchant_id \
             WHERE c.id > $1 AND m.role = 'merchant' AND ($2 IS NULL OR c.status = $2) AND ($3 IS NULL OR m.email = $3) \
             AND ($4 IS NULL OR m.external_id = $4) ORDER BY c.id LIMIT $5"
        ))
        .bind(filter.after.unwrap_or(0))
        .bind(filter.status.map(ConnectionStatus::as_str))
        .bind(email)
        .bind(filter.external_id.as_deref())
        .bind(limit + 1)
        .fetch_all(self.db.pool())
        .await?;
        let mut connections = rows
            .iter()
            .map(ConnectionLine::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next_after = if connections.len() as i64 > limit {
            connections.truncate(limit as usize);
            connections.last().and_then(|c| c.connection_id)
        } else {
            None
        };
        Ok(Page {
            connections,
            next_after,
        })
    }

    /// One merchant's connection, `None` when there is no such merchant.
    pub async fn of_merchant(&self, merchant_id: i64) -> Result<Option<ConnectionInfo>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {LINE_COLUMNS} FROM merchants m LEFT JOIN connections c ON c.merchant_id = m.id \
             WHERE m.id = $1 AND m.role = 'merchant'"
        ))
        .bind(merchant_id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(ConnectionLine::from_row).transpose()
    }
}
