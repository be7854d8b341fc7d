//! Storage of merchants' connections, their encrypted token sets and the append-only
//! connection event log. One set of queries for SQLite and PostgreSQL (sqlx `Any`).
//!
//! Concurrency rules live here as conditional writes, split along the protocol:
//! [`connections`] holds the row's state changes (each committed with its event), [`lease`]
//! says which process may refresh a connection, and [`events`] is the audit log.
//! `generation` grows with every token write so that a stale writer never overwrites
//! newer tokens.

mod connections;
pub mod events;
mod lease;
mod lines;

use std::fmt;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Database;

pub use events::{append_event, ConnectionEvent, EventKind, NewEvent};
pub use lines::{ConnectionLine, LINE_COLUMNS};

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Connected,
    NeedsReconnect,
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::NeedsReconnect => "needs_reconnect",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }

    pub fn parse(text: &str) -> ConnectionStatus {
        match text {
            "connected" => ConnectionStatus::Connected,
            "needs_reconnect" => ConnectionStatus::NeedsReconnect,
            _ => ConnectionStatus::Disconnected,
        }
    }
}

/// A stored status, read as [`ConnectionStatus::parse`] reads it (for `#[sqlx(try_from = "String")]`).
impl From<String> for ConnectionStatus {
    fn from(text: String) -> ConnectionStatus {
        ConnectionStatus::parse(&text)
    }
}

/// Reads a closed set's variants from their stored names (`$parse`: `fn(&str) -> Option<Self>`),
/// as a column type of its own: a name no variant has (a row written by hand, or by a newer
/// version) fails the read with `unknown $what "<name>"` rather than being guessed.
macro_rules! stored_name {
    ($type:ty, $what:literal, $parse:path) => {
        impl sqlx::Type<sqlx::Any> for $type {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <String as sqlx::Type<sqlx::Any>>::type_info()
            }

            fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Any>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $type {
            fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <String as sqlx::Decode<sqlx::Any>>::decode(value)?;
                $parse(&text).ok_or_else(|| format!(concat!("unknown ", $what, " {:?}"), text).into())
            }
        }
    };
}
pub(crate) use stored_name;

/// Why a connection needs the merchant to authorize again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconnectReason {
    /// Airwallex revoked access (the merchant disconnected us, or a webhook said so).
    Revoked,
    /// Airwallex answered `invalid_grant` to a refresh.
    RefreshRejected,
    /// The refresh token ran out.
    RefreshExpired,
    /// A refresh was sent but never confirmed within the grace window; resending the
    /// token then could look like a leak to Airwallex.
    RefreshUnconfirmed,
}

impl ReconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReconnectReason::Revoked => "revoked",
            ReconnectReason::RefreshRejected => "refresh_rejected",
            ReconnectReason::RefreshExpired => "refresh_expired",
            ReconnectReason::RefreshUnconfirmed => "refresh_unconfirmed",
        }
    }

    pub fn parse(text: &str) -> Option<ReconnectReason> {
        Some(match text {
            "revoked" => ReconnectReason::Revoked,
            "refresh_rejected" => ReconnectReason::RefreshRejected,
            "refresh_expired" => ReconnectReason::RefreshExpired,
            "refresh_unconfirmed" => ReconnectReason::RefreshUnconfirmed,
            _ => return None,
        })
    }
}

/// A connection row as stored: tokens are ciphertexts. `Debug` shows no token bytes.
#[derive(Clone, sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: i64,
    pub merchant_id: i64,
    #[sqlx(try_from = "String")]
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub account_id: Option<String>,
    pub business_name: Option<String>,
    pub account_json: Option<String>,
    pub account_fetched_at: Option<i64>,
    pub scope: Option<String>,
    pub key_id: Option<String>,
    pub access_token: Option<Vec<u8>>,
    pub access_expires_at: Option<i64>,
    pub refresh_token: Option<Vec<u8>>,
    pub refresh_issued_at: Option<i64>,
    pub refresh_expires_at: Option<i64>,
    pub refresh_sent_at: Option<i64>,
    pub rotate_due_at: Option<i64>,
    pub generation: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub connected_at: Option<i64>,
    pub last_refresh_at: Option<i64>,
    pub last_refresh_result: Option<String>,
    pub last_error: Option<String>,
    pub last_activity_at: i64,
    pub created_at: i64,
}

impl fmt::Debug for ConnectionRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionRow")
            .field("id", &self.id)
            .field("merchant_id", &self.merchant_id)
            .field("status", &self.status)
            .field("status_reason", &self.status_reason)
            .field("account_id", &self.account_id)
            .field("generation", &self.generation)
            .field("access_token", &self.access_token.as_ref().map(|_| "[encrypted]"))
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[encrypted]"))
            .field("refresh_sent_at", &self.refresh_sent_at)
            .field("lease_owner", &self.lease_owner)
            .finish_non_exhaustive()
    }
}

const CONNECTION_COLUMNS: &str = "id, merchant_id, status, status_reason, account_id, business_name, account_json, \
     account_fetched_at, scope, key_id, access_token, access_expires_at, refresh_token, refresh_issued_at, \
     refresh_expires_at, refresh_sent_at, rotate_due_at, generation, lease_owner, lease_until, connected_at, \
     last_refresh_at, last_refresh_result, last_error, last_activity_at, created_at";

/// What a merchant's pages show of their connection: no tokens. Read together with the
/// session on every request (one round trip for a page).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionSummary {
    pub id: i64,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub account_json: Option<String>,
    pub account_fetched_at: Option<i64>,
    pub connected_at: Option<i64>,
    pub last_refresh_at: Option<i64>,
}

impl From<&ConnectionRow> for ConnectionSummary {
    fn from(row: &ConnectionRow) -> Self {
        ConnectionSummary {
            id: row.id,
            status: row.status,
            status_reason: row.status_reason.clone(),
            account_json: row.account_json.clone(),
            account_fetched_at: row.account_fetched_at,
            connected_at: row.connected_at,
            last_refresh_at: row.last_refresh_at,
        }
    }
}

/// The columns of [`ConnectionSummary`] as `c_…` aliases, for queries that join
/// `connections c`.
pub const SUMMARY_COLUMNS: &str = "c.id AS c_id, c.status AS c_status, c.status_reason AS c_status_reason, \
     c.account_json AS c_account_json, c.account_fetched_at AS c_account_fetched_at, \
     c.connected_at AS c_connected_at, c.last_refresh_at AS c_last_refresh_at";

/// Reads [`SUMMARY_COLUMNS`] from a row; `None` when the join found no connection.
pub fn summary_from_row(row: &AnyRow) -> Result<Option<ConnectionSummary>, sqlx::Error> {
    let Some(id) = row.try_get::<Option<i64>, _>("c_id")? else {
        return Ok(None);
    };
    Ok(Some(ConnectionSummary {
        id,
        status: ConnectionStatus::parse(&row.try_get::<String, _>("c_status")?),
        status_reason: row.try_get("c_status_reason")?,
        account_json: row.try_get("c_account_json")?,
        account_fetched_at: row.try_get("c_account_fetched_at")?,
        connected_at: row.try_get("c_connected_at")?,
        last_refresh_at: row.try_get("c_last_refresh_at")?,
    }))
}

/// What the hot path needs: one indexed read by merchant.
#[derive(Clone, sqlx::FromRow)]
pub struct HotToken {
    pub connection_id: i64,
    pub account_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub key_id: Option<String>,
    pub access_token: Option<Vec<u8>>,
    pub access_expires_at: Option<i64>,
    pub generation: i64,
}

/// Encrypted tokens ready to store, with their lifetimes.
pub struct SealedTokens {
    pub key_id: String,
    pub access_token: Vec<u8>,
    pub access_expires_at: i64,
    pub refresh_token: Vec<u8>,
    pub refresh_issued_at: i64,
    pub refresh_expires_at: i64,
    pub rotate_due_at: i64,
    pub scope: Option<String>,
}

impl SealedTokens {
    /// Binds the tokens as the statement's next eight parameters, in this order: `key_id`,
    /// `access_token`, `access_expires_at`, `refresh_token`, `refresh_issued_at`,
    /// `refresh_expires_at`, `rotate_due_at`, `scope` (every statement that stores tokens
    /// numbers them so).
    fn bind_to<'q>(&'q self, update: events::Update<'q>) -> events::Update<'q> {
        update
            .bind(&self.key_id)
            .bind(&self.access_token)
            .bind(self.access_expires_at)
            .bind(&self.refresh_token)
            .bind(self.refresh_issued_at)
            .bind(self.refresh_expires_at)
            .bind(self.rotate_due_at)
            .bind(self.scope.as_deref())
    }
}

/// What is stored about the Airwallex account behind a connection.
pub struct AccountRecord<'a> {
    pub account_id: Option<&'a str>,
    pub business_name: Option<&'a str>,
    pub account_json: Option<&'a str>,
}

/// Connection storage on a [`Database`].
#[derive(Clone, Debug)]
pub struct ConnectionStore {
    db: Database,
}

impl ConnectionStore {
    pub fn new(db: Database) -> ConnectionStore {
        ConnectionStore { db }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    /// The hot-path read: status and access token of a merchant's connection.
    pub async fn hot_token(&self, merchant_id: i64) -> Result<Option<HotToken>, sqlx::Error> {
        sqlx::query_as::<_, HotToken>(
            // Only a merchant's connection is handed out (an operator's own is not).
            "SELECT c.id AS connection_id, c.account_id, c.status, c.status_reason, c.key_id, c.access_token, \
             c.access_expires_at, c.generation FROM connections c JOIN merchants m ON m.id = c.merchant_id \
             WHERE c.merchant_id = $1 AND m.role = 'merchant'",
        )
        .bind(merchant_id)
        .fetch_optional(self.db.pool())
        .await
    }

    pub async fn by_id(&self, connection_id: i64) -> Result<Option<ConnectionRow>, sqlx::Error> {
        sqlx::query_as::<_, ConnectionRow>(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1"))
            .bind(connection_id)
            .fetch_optional(self.db.pool())
            .await
    }

    pub async fn by_merchant(&self, merchant_id: i64) -> Result<Option<ConnectionRow>, sqlx::Error> {
        sqlx::query_as::<_, ConnectionRow>(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE merchant_id = $1"
        ))
        .bind(merchant_id)
        .fetch_optional(self.db.pool())
        .await
    }

    /// Connected connections to an Airwallex account, with when each was made (for webhooks).
    pub async fn connected_for_account(&self, account_id: &str) -> Result<Vec<(i64, Option<i64>)>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT id, connected_at FROM connections WHERE account_id = $1 AND status = 'connected'")
                .bind(account_id)
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("connected_at")?)))
            .collect()
    }

    /// Whether any connection (in any state) belongs to this Airwallex account.
    pub async fn knows_account(&self, account_id: &str) -> Result<bool, sqlx::Error> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(self.db.pool())
            .await?;
        Ok(count > 0)
    }

    /// Connections the keeper should rotate now: due by age, or with a refresh whose
    /// outcome was never confirmed (recovered while the grace window lasts).
    pub async fn keeper_due(&self, now: i64, limit: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, generation FROM connections WHERE status = 'connected' AND rotate_due_at <= $1 \
             ORDER BY rotate_due_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        let mut due: Vec<(i64, i64)> = rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("generation")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let stuck = sqlx::query(
            "SELECT id, generation FROM connections WHERE status = 'connected' AND refresh_sent_at IS NOT NULL LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        for row in stuck {
            let pair = (row.try_get("id")?, row.try_get("generation")?);
            if !due.contains(&pair) {
                due.push(pair);
            }
        }
        Ok(due)
    }
}
