//! What became of each event at each endpoint, and an operator's resend.

use super::endpoints::{EndpointError, WebhookEndpoints};

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
}

impl WebhookEndpoints {
    /// An endpoint's newest deliveries.
    pub async fn deliveries(&self, endpoint_id: i64, limit: i64) -> Result<Vec<Delivery>, EndpointError> {
        let deliveries = sqlx::query_as::<_, Delivery>(
            "SELECT d.id, d.event_id, e.kind, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, \
             d.delivered_at, d.created_at FROM webhook_deliveries d JOIN platform_events e ON e.id = d.event_id \
             WHERE d.endpoint_id = $1 ORDER BY d.id DESC LIMIT $2",
        )
        .bind(endpoint_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(deliveries)
    }

    /// Sends a delivery again (at once, with another 24 hours of retries); returns its
    /// endpoint.
    pub async fn resend(&self, delivery_id: i64) -> Result<i64, EndpointError> {
        let now = self.clock.now();
        let endpoint: Option<i64> = sqlx::query_scalar(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, created_at = $1, \
             lease_owner = NULL, lease_until = NULL WHERE id = $2 \
             AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL) RETURNING endpoint_id",
        )
        .bind(now)
        .bind(delivery_id)
        .fetch_optional(self.db.pool())
        .await?;
        endpoint.ok_or(EndpointError::NotFound)
    }
}
