//! Storage of merchants' connections, their encrypted token sets and the append-only
//! connection event log. One set of queries for SQLite and PostgreSQL (sqlx `Any`).
//!
//! Concurrency rules live here as conditional writes: a lease (`lease_owner`,
//! `lease_until`, real time) says which process may refresh a connection, and
//! `generation` grows with every token write so that a stale writer never overwrites
//! newer tokens.

use std::fmt;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::db::Database;

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
#[derive(Clone)]
pub struct ConnectionRow {
    pub id: i64,
    pub merchant_id: i64,
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

fn connection_from_row(row: &AnyRow) -> Result<ConnectionRow, sqlx::Error> {
    Ok(ConnectionRow {
        id: row.try_get("id")?,
        merchant_id: row.try_get("merchant_id")?,
        status: ConnectionStatus::parse(&row.try_get::<String, _>("status")?),
        status_reason: row.try_get("status_reason")?,
        account_id: row.try_get("account_id")?,
        business_name: row.try_get("business_name")?,
        account_json: row.try_get("account_json")?,
        account_fetched_at: row.try_get("account_fetched_at")?,
        scope: row.try_get("scope")?,
        key_id: row.try_get("key_id")?,
        access_token: row.try_get("access_token")?,
        access_expires_at: row.try_get("access_expires_at")?,
        refresh_token: row.try_get("refresh_token")?,
        refresh_issued_at: row.try_get("refresh_issued_at")?,
        refresh_expires_at: row.try_get("refresh_expires_at")?,
        refresh_sent_at: row.try_get("refresh_sent_at")?,
        rotate_due_at: row.try_get("rotate_due_at")?,
        generation: row.try_get("generation")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        connected_at: row.try_get("connected_at")?,
        last_refresh_at: row.try_get("last_refresh_at")?,
        last_refresh_result: row.try_get("last_refresh_result")?,
        last_error: row.try_get("last_error")?,
        last_activity_at: row.try_get("last_activity_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// What the hot path needs: one indexed read by merchant.
#[derive(Clone)]
pub struct HotToken {
    pub connection_id: i64,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub key_id: Option<String>,
    pub access_token: Option<Vec<u8>>,
    pub access_expires_at: Option<i64>,
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

/// What is stored about the Airwallex account behind a connection.
pub struct AccountRecord<'a> {
    pub account_id: Option<&'a str>,
    pub business_name: Option<&'a str>,
    pub account_json: Option<&'a str>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionEvent {
    pub id: i64,
    pub connection_id: i64,
    pub kind: String,
    pub reason: Option<String>,
    pub actor: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

/// Event kinds.
pub mod event {
    pub const CONNECTED: &str = "connected";
    pub const RECONNECTED: &str = "reconnected";
    pub const REFRESHED: &str = "refreshed";
    pub const REFRESH_FAILED: &str = "refresh_failed";
    pub const NEEDS_RECONNECT: &str = "needs_reconnect";
    pub const REVOKED: &str = "revoked";
    pub const DISCONNECTED: &str = "disconnected";
    pub const CHECKED: &str = "checked";
}

/// Appends an event inside the caller's transaction.
pub async fn append_event(
    tx: &mut Transaction<'_, Any>,
    connection_id: i64,
    kind: &str,
    reason: Option<&str>,
    actor: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connection_events (connection_id, kind, reason, actor, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(connection_id)
    .bind(kind)
    .bind(reason)
    .bind(actor)
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends a conditional change: if its UPDATE touched the row, the event is appended and
/// both commit together; otherwise nothing is kept.
#[allow(clippy::too_many_arguments)]
async fn commit_with_event(
    mut tx: Transaction<'_, Any>,
    updated: u64,
    connection_id: i64,
    kind: &str,
    reason: Option<&str>,
    actor: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    if updated != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    append_event(&mut tx, connection_id, kind, reason, actor, detail, now).await?;
    tx.commit().await?;
    Ok(true)
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
        let row = sqlx::query(
            "SELECT id, status, status_reason, key_id, access_token, access_expires_at \
             FROM connections WHERE merchant_id = $1",
        )
        .bind(merchant_id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            Ok(HotToken {
                connection_id: row.try_get("id")?,
                status: ConnectionStatus::parse(&row.try_get::<String, _>("status")?),
                status_reason: row.try_get("status_reason")?,
                key_id: row.try_get("key_id")?,
                access_token: row.try_get("access_token")?,
                access_expires_at: row.try_get("access_expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn by_id(&self, connection_id: i64) -> Result<Option<ConnectionRow>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1"))
            .bind(connection_id)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    pub async fn by_merchant(&self, merchant_id: i64) -> Result<Option<ConnectionRow>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE merchant_id = $1"
        ))
        .bind(merchant_id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(connection_from_row).transpose()
    }

    /// Creates the merchant's connection row, or returns the existing one's id, so
    /// that tokens can be encrypted bound to it. A reconnect keeps the same row.
    pub async fn ensure_row(&self, merchant_id: i64, now: i64) -> Result<i64, sqlx::Error> {
        if let Some(id) = sqlx::query_scalar::<_, i64>("SELECT id FROM connections WHERE merchant_id = $1")
            .bind(merchant_id)
            .fetch_optional(self.db.pool())
            .await?
        {
            return Ok(id);
        }
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO connections (merchant_id, status, last_activity_at, created_at, updated_at) \
             VALUES ($1, 'disconnected', $2, $2, $2) ON CONFLICT (merchant_id) DO NOTHING RETURNING id",
        )
        .bind(merchant_id)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?;
        match inserted {
            Some(id) => Ok(id),
            None => {
                sqlx::query_scalar("SELECT id FROM connections WHERE merchant_id = $1")
                    .bind(merchant_id)
                    .fetch_one(self.db.pool())
                    .await
            }
        }
    }

    /// Stores the tokens of a new authorization and marks the connection connected.
    /// Returns the event kind written (`connected` or `reconnected`).
    pub async fn store_authorization(
        &self,
        connection_id: i64,
        tokens: &SealedTokens,
        account: &AccountRecord<'_>,
        actor: &str,
        now: i64,
    ) -> Result<&'static str, sqlx::Error> {
        // Read before the transaction: on SQLite a transaction that reads first cannot
        // upgrade to a write once another writer has committed (SQLITE_BUSY_SNAPSHOT).
        let previous: Option<i64> = sqlx::query_scalar("SELECT connected_at FROM connections WHERE id = $1")
            .bind(connection_id)
            .fetch_one(self.db.pool())
            .await?;
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "UPDATE connections SET status = 'connected', status_reason = NULL, account_id = $2, business_name = $3, \
             account_json = $4, account_fetched_at = $5, scope = $6, key_id = $7, access_token = $8, \
             access_expires_at = $9, refresh_token = $10, refresh_issued_at = $11, refresh_expires_at = $12, \
             refresh_sent_at = NULL, rotate_due_at = $13, generation = generation + 1, lease_owner = NULL, \
             lease_until = NULL, connected_at = $5, last_refresh_result = NULL, last_error = NULL, \
             last_activity_at = $5, updated_at = $5 WHERE id = $1",
        )
        .bind(connection_id)
        .bind(account.account_id)
        .bind(account.business_name)
        .bind(account.account_json)
        .bind(now)
        .bind(tokens.scope.as_deref())
        .bind(&tokens.key_id)
        .bind(&tokens.access_token)
        .bind(tokens.access_expires_at)
        .bind(&tokens.refresh_token)
        .bind(tokens.refresh_issued_at)
        .bind(tokens.refresh_expires_at)
        .bind(tokens.rotate_due_at)
        .execute(&mut *tx)
        .await?;
        let kind = if previous.is_some() {
            event::RECONNECTED
        } else {
            event::CONNECTED
        };
        append_event(&mut tx, connection_id, kind, None, actor, account.account_id, now).await?;
        tx.commit().await?;
        Ok(kind)
    }

    /// Takes the refresh lease if it is free (or expired) and the row is still at
    /// `generation`. Lease times are real time, not the (movable) token clock.
    pub async fn try_acquire_lease(
        &self,
        connection_id: i64,
        generation: i64,
        owner: &str,
        real_now: i64,
        lease_seconds: i64,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE connections SET lease_owner = $1, lease_until = $2 \
             WHERE id = $3 AND generation = $4 AND status = 'connected' \
             AND (lease_owner IS NULL OR lease_until < $5 OR lease_owner = $1)",
        )
        .bind(owner)
        .bind(real_now + lease_seconds)
        .bind(connection_id)
        .bind(generation)
        .bind(real_now)
        .execute(self.db.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Extends a lease this owner holds; false if it was lost.
    pub async fn extend_lease(
        &self,
        connection_id: i64,
        owner: &str,
        real_now: i64,
        lease_seconds: i64,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("UPDATE connections SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(real_now + lease_seconds)
            .bind(connection_id)
            .bind(owner)
            .execute(self.db.pool())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    pub async fn release_lease(&self, connection_id: i64, owner: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(connection_id)
            .bind(owner)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Records, before it is sent, when the stored refresh token first went out.
    pub async fn mark_refresh_sent(&self, connection_id: i64, owner: &str, now: i64) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE connections SET refresh_sent_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND refresh_sent_at IS NULL",
        )
        .bind(now)
        .bind(connection_id)
        .bind(owner)
        .execute(self.db.pool())
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Undoes [`mark_refresh_sent`](Self::mark_refresh_sent) when the request provably
    /// never reached Airwallex (the connection could not be made).
    pub async fn clear_refresh_sent(&self, connection_id: i64, owner: &str, sent_at: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE connections SET refresh_sent_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND refresh_sent_at = $3",
        )
        .bind(connection_id)
        .bind(owner)
        .bind(sent_at)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Writes rotated tokens if this owner still holds the lease and nobody wrote since
    /// `generation`; releases the lease and logs the event in the same transaction.
    pub async fn store_refreshed(
        &self,
        connection_id: i64,
        generation: i64,
        owner: &str,
        tokens: &SealedTokens,
        actor: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let result = sqlx::query(
            "UPDATE connections SET key_id = $1, access_token = $2, access_expires_at = $3, refresh_token = $4, \
             refresh_issued_at = $5, refresh_expires_at = $6, rotate_due_at = $7, scope = COALESCE($8, scope), \
             refresh_sent_at = NULL, generation = generation + 1, lease_owner = NULL, lease_until = NULL, \
             last_refresh_at = $9, last_refresh_result = 'ok', last_error = NULL, updated_at = $9 \
             WHERE id = $10 AND generation = $11 AND lease_owner = $12 AND status = 'connected'",
        )
        .bind(&tokens.key_id)
        .bind(&tokens.access_token)
        .bind(tokens.access_expires_at)
        .bind(&tokens.refresh_token)
        .bind(tokens.refresh_issued_at)
        .bind(tokens.refresh_expires_at)
        .bind(tokens.rotate_due_at)
        .bind(tokens.scope.as_deref())
        .bind(now)
        .bind(connection_id)
        .bind(generation)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        commit_with_event(
            tx,
            result.rows_affected(),
            connection_id,
            event::REFRESHED,
            None,
            actor,
            None,
            now,
        )
        .await
    }

    /// Notes a failed refresh that leaves the connection usable (transient trouble).
    pub async fn record_refresh_failure(
        &self,
        connection_id: i64,
        owner: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(
            "UPDATE connections SET last_refresh_at = $1, last_refresh_result = 'failed', last_error = $2, \
             lease_owner = NULL, lease_until = NULL, updated_at = $1 WHERE id = $3 AND lease_owner = $4",
        )
        .bind(now)
        .bind(reason)
        .bind(connection_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        append_event(
            &mut tx,
            connection_id,
            event::REFRESH_FAILED,
            Some(reason),
            actor,
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a connected connection as needing the merchant to reconnect and forgets its
    /// tokens (they can never be used again). No-op if it is not connected any more.
    pub async fn mark_needs_reconnect(
        &self,
        connection_id: i64,
        reason: ReconnectReason,
        kind: &str,
        actor: &str,
        detail: Option<&str>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let result = sqlx::query(
            "UPDATE connections SET status = 'needs_reconnect', status_reason = $1, access_token = NULL, \
             refresh_token = NULL, access_expires_at = NULL, refresh_sent_at = NULL, rotate_due_at = NULL, \
             lease_owner = NULL, lease_until = NULL, generation = generation + 1, \
             last_refresh_result = CASE WHEN $2 = 'revoked' THEN last_refresh_result ELSE 'failed' END, \
             last_error = $1, updated_at = $3 WHERE id = $4 AND status = 'connected'",
        )
        .bind(reason.as_str())
        .bind(kind)
        .bind(now)
        .bind(connection_id)
        .execute(&mut *tx)
        .await?;
        commit_with_event(
            tx,
            result.rows_affected(),
            connection_id,
            kind,
            Some(reason.as_str()),
            actor,
            detail,
            now,
        )
        .await
    }

    /// Connected connections to an Airwallex account (for webhooks).
    pub async fn connected_ids_for_account(&self, account_id: &str) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM connections WHERE account_id = $1 AND status = 'connected'")
            .bind(account_id)
            .fetch_all(self.db.pool())
            .await
    }

    /// Whether any connection (in any state) belongs to this Airwallex account.
    pub async fn knows_account(&self, account_id: &str) -> Result<bool, sqlx::Error> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(self.db.pool())
            .await?;
        Ok(count > 0)
    }

    /// The merchant disconnected: tokens deleted, history kept.
    pub async fn disconnect(&self, connection_id: i64, actor: &str, now: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let result = sqlx::query(
            "UPDATE connections SET status = 'disconnected', status_reason = NULL, access_token = NULL, \
             refresh_token = NULL, access_expires_at = NULL, refresh_expires_at = NULL, refresh_sent_at = NULL, \
             rotate_due_at = NULL, lease_owner = NULL, lease_until = NULL, generation = generation + 1, \
             updated_at = $1, last_activity_at = $1 WHERE id = $2 AND status <> 'disconnected'",
        )
        .bind(now)
        .bind(connection_id)
        .execute(&mut *tx)
        .await?;
        commit_with_event(
            tx,
            result.rows_affected(),
            connection_id,
            event::DISCONNECTED,
            None,
            actor,
            None,
            now,
        )
        .await
    }

    /// Saves freshly fetched account details.
    pub async fn store_account(
        &self,
        connection_id: i64,
        account_id: Option<&str>,
        business_name: Option<&str>,
        account_json: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE connections SET account_id = COALESCE($1, account_id), business_name = COALESCE($2, business_name), \
             account_json = $3, account_fetched_at = $4, last_activity_at = $4 WHERE id = $5",
        )
        .bind(account_id)
        .bind(business_name)
        .bind(account_json)
        .bind(now)
        .bind(connection_id)
        .execute(self.db.pool())
        .await?;
        Ok(())
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

    /// The newest events of a connection, newest first, before `before_id` if given.
    pub async fn events(
        &self,
        connection_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ConnectionEvent>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, connection_id, kind, reason, actor, detail, created_at FROM connection_events \
             WHERE connection_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(connection_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConnectionEvent {
                    id: r.try_get("id")?,
                    connection_id: r.try_get("connection_id")?,
                    kind: r.try_get("kind")?,
                    reason: r.try_get("reason")?,
                    actor: r.try_get("actor")?,
                    detail: r.try_get("detail")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}
