//! Connection events for the platform, delivered to its webhook endpoints from a durable
//! outbox. An event is written in the same transaction as the change it describes (no
//! change without its event, no event without its change); deliveries are claimed under a
//! lease by one instance at a time (a crash only delays them), signed per the Standard
//! Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64 HMAC-SHA256>`), and retried with exponential backoff for 24 hours.

//!
//! Here: the events and how they are queued; [`endpoints`] where they go, [`deliveries`]
//! what became of each, [`sender`] the loop that delivers them.

pub mod deliveries;
pub mod endpoints;
pub mod sender;
pub mod targets;

use serde_json::json;
use sqlx::Row;

use crate::db::WriteTx;

pub use deliveries::Delivery;
pub use endpoints::{parse_events, parse_url, Endpoint, EndpointError, SigningSecret, WebhookEndpoints};
pub use sender::{Deliverer, WEBHOOK_SCHEDULE};
pub use targets::{TargetPolicy, TargetRefused};

use crate::secret::random_urlsafe;
use crate::time::rfc3339;

/// What happened to a connection, as the platform hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformEvent {
    Connected,
    Reconnected,
    NeedsReconnect,
    Disconnected,
    /// A connection whose refreshes had been failing works again.
    Recovered,
    /// A connect session ended (connected, reconnected, declined or failed).
    ConnectSessionCompleted,
}

impl PlatformEvent {
    pub const ALL: [PlatformEvent; 6] = [
        PlatformEvent::Connected,
        PlatformEvent::Reconnected,
        PlatformEvent::NeedsReconnect,
        PlatformEvent::Disconnected,
        PlatformEvent::Recovered,
        PlatformEvent::ConnectSessionCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlatformEvent::Connected => "connection.connected",
            PlatformEvent::Reconnected => "connection.reconnected",
            PlatformEvent::NeedsReconnect => "connection.needs_reconnect",
            PlatformEvent::Disconnected => "connection.disconnected",
            PlatformEvent::Recovered => "connection.recovered",
            PlatformEvent::ConnectSessionCompleted => "connect_session.completed",
        }
    }

    pub fn parse(text: &str) -> Option<PlatformEvent> {
        PlatformEvent::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

fn subscribed(kind: PlatformEvent) -> String {
    format!("% {} %", kind.as_str())
}

/// Writes a connection's event and one delivery per subscribed endpoint inside the
/// caller's transaction (nothing when no endpoint listens). Its `data` is the connection as
/// it is now, with the platform's `external_id` and `tags`, plus `extra` fields.
pub async fn enqueue(tx: &mut WriteTx, kind: PlatformEvent, connection_id: i64, now: i64) -> Result<(), sqlx::Error> {
    enqueue_with(tx, kind, connection_id, serde_json::Map::new(), now).await
}

/// [`enqueue`] with more fields in `data`.
pub async fn enqueue_with(
    tx: &mut WriteTx,
    kind: PlatformEvent,
    connection_id: i64,
    extra: serde_json::Map<String, serde_json::Value>,
    now: i64,
) -> Result<(), sqlx::Error> {
    if listeners(tx, kind).await? == 0 {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT m.id AS merchant_id, m.email, m.external_id, m.tags, c.status, c.status_reason, c.account_id \
         FROM connections c JOIN merchants m ON m.id = c.merchant_id WHERE c.id = $1",
    )
    .bind(connection_id)
    .fetch_one(&mut **tx)
    .await?;
    let mut data = json!({
        "merchant_id": row.try_get::<i64, _>("merchant_id")?,
        "external_id": row.try_get::<Option<String>, _>("external_id")?,
        "email": row.try_get::<String, _>("email")?,
        "status": row.try_get::<String, _>("status")?,
        "reason": row.try_get::<Option<String>, _>("status_reason")?,
        "account_id": row.try_get::<Option<String>, _>("account_id")?,
        "tags": crate::platform::connect_sessions::tags_from_text(row.try_get::<Option<String>, _>("tags")?.as_deref()),
    });
    if let Some(fields) = data.as_object_mut() {
        fields.extend(extra);
    }
    write(tx, kind, Some(connection_id), data, now).await
}

/// Writes an event with the given `data` (not read from a connection) and its deliveries.
pub async fn enqueue_data(
    tx: &mut WriteTx,
    kind: PlatformEvent,
    connection_id: Option<i64>,
    data: serde_json::Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    if listeners(tx, kind).await? == 0 {
        return Ok(());
    }
    write(tx, kind, connection_id, data, now).await
}

async fn listeners(tx: &mut WriteTx, kind: PlatformEvent) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE disabled_at IS NULL AND (' ' || events || ' ') LIKE $1",
    )
    .bind(subscribed(kind))
    .fetch_one(&mut **tx)
    .await
}

async fn write(
    tx: &mut WriteTx,
    kind: PlatformEvent,
    connection_id: Option<i64>,
    data: serde_json::Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    let id = format!("evt_{}", random_urlsafe(16));
    let payload = json!({
        "id": id,
        "type": kind.as_str(),
        "created_at": rfc3339(now),
        "data": data,
    })
    .to_string();
    sqlx::query(
        "INSERT INTO platform_events (id, kind, connection_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(kind.as_str())
    .bind(connection_id)
    .bind(&payload)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
         SELECT $1, id, 'pending', 0, $2, $2 FROM webhook_endpoints \
         WHERE disabled_at IS NULL AND (' ' || events || ' ') LIKE $3",
    )
    .bind(&id)
    .bind(now)
    .bind(subscribed(kind))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
