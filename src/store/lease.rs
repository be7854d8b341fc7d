//! The refresh lease: which process may refresh a connection right now, across instances
//! (`lease_owner`, `lease_until`, in real time, never the movable token clock), and the
//! record of when the stored refresh token first left this system (`refresh_sent_at`).

use super::ConnectionStore;

impl ConnectionStore {
    /// Takes the refresh lease if it is free (or expired) and the row is still at
    /// `generation`.
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

    pub async fn release_lease(&self, connection_id: i64, owner: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(connection_id)
            .bind(owner)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Right before a refresh token is sent: renews this owner's lease and records when the
    /// stored refresh token first went out (`now`, unless it went out before), only while
    /// the row is still at `generation`. Returns when the token first went out, or `None`
    /// when the lease was lost or someone stored newer tokens meanwhile.
    pub async fn prepare_send(
        &self,
        connection_id: i64,
        generation: i64,
        owner: &str,
        now: i64,
        real_now: i64,
        lease_seconds: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE connections SET lease_until = $1, refresh_sent_at = COALESCE(refresh_sent_at, $2) \
             WHERE id = $3 AND generation = $4 AND lease_owner = $5 AND status = 'connected' \
             RETURNING refresh_sent_at",
        )
        .bind(real_now + lease_seconds)
        .bind(now)
        .bind(connection_id)
        .bind(generation)
        .bind(owner)
        .fetch_optional(self.db.pool())
        .await
    }

    /// Undoes the first-send record of [`prepare_send`](Self::prepare_send) when the request provably
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
}
