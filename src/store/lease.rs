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
}
