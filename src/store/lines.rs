//! A merchant and their connection as every list shows it (the operator's table, the
//! platform's directory): who, the connection's state and its times. No tokens.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::ConnectionStatus;

/// One merchant and their connection (the connection fields are `None` when the merchant
/// never connected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLine {
    pub merchant_id: i64,
    pub email: String,
    /// The platform's id for the merchant (connect sessions); `None` for those who signed up.
    pub external_id: Option<String>,
    /// The platform's tags on the merchant, as stored (a JSON object).
    pub tags: Option<String>,
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
    /// Whether the merchant's address is verified.
    pub email_verified: bool,
}

/// The columns [`ConnectionLine::from_row`] reads, from `merchants m` and `connections c`.
pub const LINE_COLUMNS: &str =
    "m.id AS merchant_id, m.email, m.external_id, m.tags, m.email_verified_at, c.id AS connection_id, c.status, c.status_reason, \
     c.business_name, c.account_id, c.connected_at, c.last_refresh_at, c.last_refresh_result, c.access_expires_at, \
     c.refresh_expires_at, c.last_error, c.last_activity_at";

impl ConnectionLine {
    /// Reads [`LINE_COLUMNS`] from a row.
    pub fn from_row(row: &AnyRow) -> Result<ConnectionLine, sqlx::Error> {
        Ok(ConnectionLine {
            merchant_id: row.try_get("merchant_id")?,
            email: row.try_get("email")?,
            external_id: row.try_get("external_id")?,
            tags: row.try_get("tags")?,
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
            email_verified: row.try_get::<Option<i64>, _>("email_verified_at")?.is_some(),
        })
    }
}
