//! A connection row's state changes. Each is one conditional write committed together
//! with its event, so the row and its audit log never disagree.

use sqlx::Row;

use super::events::{append_event, EventKind, NewEvent};
use super::{AccountRecord, ConnectionStore, ReconnectReason, SealedTokens};
use crate::platform::outbox::PlatformEvent;

impl ConnectionStore {
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
    /// Returns the event kind written ([`EventKind::Connected`] or [`EventKind::Reconnected`]).
    pub async fn store_authorization(
        &self,
        connection_id: i64,
        tokens: &SealedTokens,
        account: &AccountRecord<'_>,
        actor: &str,
        now: i64,
    ) -> Result<EventKind, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let before = sqlx::query("SELECT connected_at, account_id FROM connections WHERE id = $1")
            .bind(connection_id)
            .fetch_one(&mut *tx)
            .await?;
        let previous: Option<i64> = before.try_get("connected_at")?;
        let previous_account: Option<String> = before.try_get("account_id")?;
        let update = sqlx::query(
            "UPDATE connections SET status = 'connected', status_reason = NULL, account_id = $2, business_name = $3, \
             account_json = $4, account_fetched_at = $5, key_id = $6, access_token = $7, \
             access_expires_at = $8, refresh_token = $9, refresh_issued_at = $10, refresh_expires_at = $11, \
             rotate_due_at = $12, scope = $13, refresh_sent_at = NULL, generation = generation + 1, lease_owner = NULL, \
             lease_until = NULL, connected_at = $5, last_refresh_result = NULL, last_error = NULL, \
             last_activity_at = $5, updated_at = $5 WHERE id = $1",
        )
        .bind(connection_id)
        .bind(account.account_id)
        .bind(account.business_name)
        .bind(account.account_json)
        .bind(now);
        tokens.bind_to(update).execute(&mut *tx).await?;
        let kind = if previous.is_some() {
            EventKind::Reconnected
        } else {
            EventKind::Connected
        };
        append_event(
            &mut tx,
            connection_id,
            NewEvent::new(kind, actor).detail(account.account_id),
            now,
        )
        .await?;
        let mut extra = serde_json::Map::new();
        let changed_from = previous_account.filter(|before| Some(before.as_str()) != account.account_id);
        if let (EventKind::Reconnected, Some(before)) = (kind, changed_from) {
            let detail = format!("{before} -> {}", account.account_id.unwrap_or("?"));
            append_event(
                &mut tx,
                connection_id,
                NewEvent::new(EventKind::AccountChanged, actor).detail(Some(&detail)),
                now,
            )
            .await?;
            extra.insert("previous_account_id".into(), before.into());
        }
        let platform = if kind == EventKind::Reconnected {
            PlatformEvent::Reconnected
        } else {
            PlatformEvent::Connected
        };
        crate::platform::outbox::enqueue_with(&mut tx, platform, connection_id, extra, now).await?;
        tx.commit().await?;
        Ok(kind)
    }

    /// Writes rotated tokens, releases the lease and logs the event in one transaction.
    ///
    /// New tokens are kept whenever nobody wrote since `generation`, even if this owner's
    /// lease lapsed meanwhile (a slow database): throwing them away would leave only a
    /// superseded refresh token. They are also kept if this owner still holds a live
    /// lease: then its send was the last one, so its tokens are the newest.
    /// `recovered`: the connection's previous refresh had failed (the platform hears that
    /// it works again).
    #[allow(clippy::too_many_arguments)]
    pub async fn store_refreshed(
        &self,
        connection_id: i64,
        generation: i64,
        owner: &str,
        tokens: &SealedTokens,
        actor: &str,
        now: i64,
        real_now: i64,
        recovered: bool,
    ) -> Result<bool, sqlx::Error> {
        let update = tokens
            .bind_to(sqlx::query(
                "UPDATE connections SET key_id = $1, access_token = $2, access_expires_at = $3, refresh_token = $4, \
             refresh_issued_at = $5, refresh_expires_at = $6, rotate_due_at = $7, scope = COALESCE($8, scope), \
             refresh_sent_at = NULL, generation = generation + 1, lease_owner = NULL, lease_until = NULL, \
             last_refresh_at = $9, last_refresh_result = 'ok', last_error = NULL, updated_at = $9 \
             WHERE id = $10 AND status = 'connected' \
             AND (generation = $11 OR (lease_owner = $12 AND lease_until >= $13))",
            ))
            .bind(now)
            .bind(connection_id)
            .bind(generation)
            .bind(owner)
            .bind(real_now);
        self.transition(
            update,
            connection_id,
            NewEvent::new(EventKind::Refreshed, actor),
            recovered.then_some(PlatformEvent::Recovered),
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
        let mut tx = self.db.begin().await?;
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
            NewEvent::new(EventKind::RefreshFailed, actor).reason(reason),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks a connected connection as needing the merchant to reconnect and forgets its
    /// tokens (they can never be used again). No-op if it is not connected any more. The
    /// event is `revoked` when Airwallex took access away, `needs_reconnect` otherwise.
    pub async fn mark_needs_reconnect(
        &self,
        connection_id: i64,
        reason: ReconnectReason,
        actor: &str,
        detail: Option<&str>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        self.mark_needs_reconnect_at(connection_id, None, reason, actor, detail, now)
            .await
    }

    /// [`mark_needs_reconnect`](Self::mark_needs_reconnect), only while the row is still at
    /// `generation` (when given): a decision taken on a row that someone has since renewed
    /// does not apply to it.
    pub async fn mark_needs_reconnect_at(
        &self,
        connection_id: i64,
        generation: Option<i64>,
        reason: ReconnectReason,
        actor: &str,
        detail: Option<&str>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let (kind, refresh_result) = if reason == ReconnectReason::Revoked {
            // Revocation says nothing about our refreshes.
            (EventKind::Revoked, None)
        } else {
            (EventKind::NeedsReconnect, Some("failed"))
        };
        let update = sqlx::query(
            "UPDATE connections SET status = 'needs_reconnect', status_reason = $1, access_token = NULL, \
             refresh_token = NULL, access_expires_at = NULL, refresh_sent_at = NULL, rotate_due_at = NULL, \
             lease_owner = NULL, lease_until = NULL, generation = generation + 1, \
             last_refresh_result = COALESCE($2, last_refresh_result), \
             last_error = $1, updated_at = $3 WHERE id = $4 AND status = 'connected' \
             AND ($5 IS NULL OR generation = $5)",
        )
        .bind(reason.as_str())
        .bind(refresh_result)
        .bind(now)
        .bind(connection_id)
        .bind(generation);
        self.transition(
            update,
            connection_id,
            NewEvent::new(kind, actor).reason(reason.as_str()).detail(detail),
            Some(PlatformEvent::NeedsReconnect),
            now,
        )
        .await
    }

    /// The merchant disconnected: tokens deleted, history kept.
    pub async fn disconnect(&self, connection_id: i64, actor: &str, now: i64) -> Result<bool, sqlx::Error> {
        let update = sqlx::query(
            "UPDATE connections SET status = 'disconnected', status_reason = NULL, access_token = NULL, \
             refresh_token = NULL, access_expires_at = NULL, refresh_expires_at = NULL, refresh_sent_at = NULL, \
             rotate_due_at = NULL, lease_owner = NULL, lease_until = NULL, generation = generation + 1, \
             updated_at = $1, last_activity_at = $1 WHERE id = $2 AND status <> 'disconnected'",
        )
        .bind(now)
        .bind(connection_id);
        self.transition(
            update,
            connection_id,
            NewEvent::new(EventKind::Disconnected, actor),
            Some(PlatformEvent::Disconnected),
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
}
