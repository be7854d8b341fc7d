//! Connection events for the platform, delivered to its webhook endpoints from a durable
//! outbox. An event is written in the same transaction as the change it describes (no
//! change without its event, no event without its change); deliveries are claimed under a
//! lease by one instance at a time (a crash only delays them), signed per the Standard
//! Webhooks specification (`webhook-id`, `webhook-timestamp`, `webhook-signature:
//! v1,<base64 HMAC-SHA256>`), and retried with exponential backoff for 24 hours.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::StreamExt;
use serde_json::json;
use sqlx::{Any, Row, Transaction};
use tokio::sync::watch;

use crate::crypto::{associated_data, TokenCipher};
use crate::db::Database;
use crate::secret::random_urlsafe;
use crate::time::{real_now, rfc3339, Clock};

/// What happened to a connection, as the platform hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformEvent {
    Connected,
    Reconnected,
    NeedsReconnect,
    Disconnected,
    /// A connection whose refreshes had been failing works again.
    Recovered,
}

impl PlatformEvent {
    pub const ALL: [PlatformEvent; 5] = [
        PlatformEvent::Connected,
        PlatformEvent::Reconnected,
        PlatformEvent::NeedsReconnect,
        PlatformEvent::Disconnected,
        PlatformEvent::Recovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlatformEvent::Connected => "connection.connected",
            PlatformEvent::Reconnected => "connection.reconnected",
            PlatformEvent::NeedsReconnect => "connection.needs_reconnect",
            PlatformEvent::Disconnected => "connection.disconnected",
            PlatformEvent::Recovered => "connection.recovered",
        }
    }

    pub fn parse(text: &str) -> Option<PlatformEvent> {
        PlatformEvent::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

fn subscribed(kind: PlatformEvent) -> String {
    format!("% {} %", kind.as_str())
}

/// Writes the event and one delivery per subscribed endpoint inside the caller's
/// transaction (nothing when no endpoint listens).
pub async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    kind: PlatformEvent,
    connection_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let pattern = subscribed(kind);
    let listening: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE disabled_at IS NULL AND (' ' || events || ' ') LIKE $1",
    )
    .bind(&pattern)
    .fetch_one(&mut **tx)
    .await?;
    if listening == 0 {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT m.id AS merchant_id, m.email, c.status, c.status_reason, c.account_id FROM connections c \
         JOIN merchants m ON m.id = c.merchant_id WHERE c.id = $1",
    )
    .bind(connection_id)
    .fetch_one(&mut **tx)
    .await?;
    let id = format!("evt_{}", random_urlsafe(16));
    let payload = json!({
        "id": id,
        "type": kind.as_str(),
        "created_at": rfc3339(now),
        "data": {
            "merchant_id": row.try_get::<i64, _>("merchant_id")?,
            "email": row.try_get::<String, _>("email")?,
            "status": row.try_get::<String, _>("status")?,
            "reason": row.try_get::<Option<String>, _>("status_reason")?,
            "account_id": row.try_get::<Option<String>, _>("account_id")?,
        },
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
    .bind(&pattern)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A webhook endpoint as operators see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: i64,
    pub url: String,
    pub events: Vec<PlatformEvent>,
    pub created_by: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
}

/// A signing secret as shown once (`whsec_…`, Standard Webhooks' form). Prints redacted.
pub struct SigningSecret(String);

impl SigningSecret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// One delivery of one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("the URL must be http or https with a host, like https://platform.example.com/hooks")]
    BadUrl,
    #[error("choose at least one event")]
    NoEvents,
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("no such endpoint or delivery")]
    NotFound,
    #[error("database error")]
    Database,
}

impl From<sqlx::Error> for EndpointError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "webhook endpoints database error");
        EndpointError::Database
    }
}

/// Checks an endpoint URL: `http` or `https`, a host, no credentials, at most 2,000 chars.
pub fn parse_url(text: &str) -> Result<url::Url, EndpointError> {
    let text = text.trim();
    let url = url::Url::parse(text).map_err(|_| EndpointError::BadUrl)?;
    let acceptable = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && text.len() <= 2000;
    acceptable.then_some(url).ok_or(EndpointError::BadUrl)
}

pub fn parse_events<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<PlatformEvent>, EndpointError> {
    let mut events = Vec::new();
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        let event = PlatformEvent::parse(name).ok_or_else(|| EndpointError::UnknownEvent(name.to_string()))?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    if events.is_empty() {
        return Err(EndpointError::NoEvents);
    }
    Ok(events)
}

fn secret_aad(endpoint_id: i64) -> Vec<u8> {
    associated_data("webhook_endpoints", endpoint_id, "secret")
}

/// The platform's webhook endpoints and their deliveries.
#[derive(Clone)]
pub struct WebhookEndpoints {
    db: Database,
    clock: Clock,
    cipher: Arc<TokenCipher>,
}

impl fmt::Debug for WebhookEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoints").finish_non_exhaustive()
    }
}

impl WebhookEndpoints {
    pub fn new(db: Database, clock: Clock, cipher: Arc<TokenCipher>) -> WebhookEndpoints {
        WebhookEndpoints { db, clock, cipher }
    }

    /// Registers an endpoint; its signing secret is returned here and nowhere else, ever.
    pub async fn create(
        &self,
        url: &str,
        events: &[PlatformEvent],
        created_by: &str,
    ) -> Result<(i64, SigningSecret), EndpointError> {
        let url = parse_url(url)?;
        if events.is_empty() {
            return Err(EndpointError::NoEvents);
        }
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(raw));
        let names = events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(" ");
        let mut tx = self.db.pool().begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_endpoints (url, events, secret, key_id, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(url.as_str())
        .bind(&names)
        .bind(Vec::<u8>::new())
        .bind(self.cipher.current_key_id())
        .bind(created_by)
        .bind(self.clock.now())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2")
            .bind(self.cipher.encrypt(secret.as_bytes(), &secret_aad(id)))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((id, SigningSecret(secret)))
    }

    /// Every endpoint with its delivery counts, newest first.
    pub async fn list(&self) -> Result<Vec<Endpoint>, EndpointError> {
        let rows = sqlx::query(
            "SELECT e.id, e.url, e.events, e.created_by, e.created_at, e.disabled_at, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'delivered') AS delivered, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending, \
             (SELECT COUNT(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'failed') AS failed \
             FROM webhook_endpoints e ORDER BY e.id DESC",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let events: String = r.try_get("events")?;
                Ok(Endpoint {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    events: events.split_whitespace().filter_map(PlatformEvent::parse).collect(),
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    disabled_at: r.try_get("disabled_at")?,
                    delivered: r.try_get("delivered")?,
                    pending: r.try_get("pending")?,
                    failed: r.try_get("failed")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(EndpointError::from)
    }

    /// Stops delivering to an endpoint (its history stays).
    pub async fn disable(&self, id: i64) -> Result<(), EndpointError> {
        let done = sqlx::query("UPDATE webhook_endpoints SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
            .bind(self.clock.now())
            .bind(id)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(EndpointError::NotFound);
        }
        sqlx::query("UPDATE webhook_deliveries SET status = 'failed', last_error = 'endpoint disabled' WHERE endpoint_id = $1 AND status = 'pending'")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// An endpoint's newest deliveries.
    pub async fn deliveries(&self, endpoint_id: i64, limit: i64) -> Result<Vec<Delivery>, EndpointError> {
        let rows = sqlx::query(
            "SELECT d.id, d.event_id, e.kind, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, \
             d.delivered_at, d.created_at FROM webhook_deliveries d JOIN platform_events e ON e.id = d.event_id \
             WHERE d.endpoint_id = $1 ORDER BY d.id DESC LIMIT $2",
        )
        .bind(endpoint_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Delivery {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    kind: r.try_get("kind")?,
                    status: r.try_get("status")?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_status: r.try_get("last_status")?,
                    last_error: r.try_get("last_error")?,
                    delivered_at: r.try_get("delivered_at")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(EndpointError::from)
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

/// How the deliverer works.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// A claimed delivery is another instance's to take after this (real time).
    pub lease: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// Deliveries claimed per round.
    pub batch: i64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// First retry after this; doubling, at most an hour.
    pub retry_base: Duration,
    /// Retries stop this long after the event.
    pub give_up_after: Duration,
    /// How often to look for due deliveries when there were none.
    pub poll: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            batch: 200,
            concurrency: 32,
            retry_base: Duration::from_secs(5),
            give_up_after: Duration::from_secs(24 * 3600),
            poll: Duration::from_millis(500),
        }
    }
}

/// A claimed delivery with what sending it needs.
struct Claimed {
    id: i64,
    event_id: String,
    payload: String,
    url: String,
    endpoint_id: i64,
    secret: Vec<u8>,
    key_id: String,
    attempts: i64,
    created_at: i64,
}

/// Delivers due deliveries, on every instance.
pub struct Deliverer {
    db: Database,
    clock: Clock,
    cipher: Arc<TokenCipher>,
    http: reqwest::Client,
    settings: DeliverySettings,
    instance: String,
}

impl fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliverer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    pub fn new(db: Database, clock: Clock, cipher: Arc<TokenCipher>, settings: DeliverySettings) -> Deliverer {
        Deliverer {
            http: reqwest::Client::builder()
                .timeout(settings.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("awx-onboard/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
                .build()
                .expect("an HTTP client"),
            db,
            clock,
            cipher,
            settings,
            instance: format!("deliverer-{}", random_urlsafe(6)),
        }
    }

    /// Rounds until `stop` turns true; a round in progress finishes what it sent.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let pause = match self.run_once().await {
                Ok(sent) if sent as i64 >= self.settings.batch => Duration::ZERO,
                Ok(_) => self.settings.poll,
                Err(error) => {
                    tracing::warn!(%error, "webhook delivery round failed");
                    self.settings.poll * 4
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// One round: claims due deliveries and sends them. Returns how many it claimed.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        let claimed = self.claim().await?;
        let count = claimed.len();
        futures::stream::iter(claimed)
            .map(|delivery| self.deliver(delivery))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
        Ok(count)
    }

    async fn claim(&self) -> Result<Vec<Claimed>, sqlx::Error> {
        let ids = crate::outbox_queue::claim_due(
            &self.db,
            "webhook_deliveries",
            "pending",
            &self.instance,
            self.settings.lease,
            self.clock.now(),
            self.settings.batch,
        )
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut claimed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            let rows = sqlx::query(&format!(
                "SELECT d.id, d.event_id, d.endpoint_id, d.attempts, d.created_at, e.payload, w.url, w.secret, w.key_id \
                 FROM webhook_deliveries d JOIN platform_events e ON e.id = d.event_id \
                 JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.id IN ({list})"
            ))
            .fetch_all(self.db.pool())
            .await?;
            for r in rows {
                claimed.push(Claimed {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    payload: r.try_get("payload")?,
                    url: r.try_get("url")?,
                    secret: r.try_get("secret")?,
                    key_id: r.try_get("key_id")?,
                });
            }
        }
        Ok(claimed)
    }

    /// Sends one delivery and records the outcome (only while this instance holds it).
    async fn deliver(&self, delivery: Claimed) {
        let outcome = self.send(&delivery).await;
        let now = self.clock.now();
        let attempts = delivery.attempts + 1;
        let result = match outcome {
            Ok(status) => {
                crate::metrics::record_webhook_delivery("delivered");
                sqlx::query(
                    // A delivered row keeps the instance that delivered it in `lease_owner`
                    // (only pending rows are claimed, so it holds nothing back).
                    "UPDATE webhook_deliveries SET status = 'delivered', attempts = $1, last_status = $2, \
                     last_error = NULL, delivered_at = $3, lease_until = NULL \
                     WHERE id = $4 AND lease_owner = $5",
                )
                .bind(attempts)
                .bind(status as i64)
                .bind(now)
                .bind(delivery.id)
                .bind(&self.instance)
                .execute(self.db.pool())
                .await
            }
            Err((status, error)) => {
                let give_up = now - delivery.created_at >= self.settings.give_up_after.as_secs() as i64;
                let backoff = crate::outbox_queue::backoff_seconds(self.settings.retry_base, attempts);
                crate::metrics::record_webhook_delivery(if give_up { "failed" } else { "retry" });
                tracing::info!(
                    delivery = delivery.id,
                    endpoint = delivery.endpoint_id,
                    attempts,
                    error = %error,
                    "webhook delivery failed{}",
                    if give_up { "; giving up" } else { "; will retry" }
                );
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, last_error = $4, \
                     next_attempt_at = $5, lease_owner = NULL, lease_until = NULL WHERE id = $6 AND lease_owner = $7",
                )
                .bind(if give_up { "failed" } else { "pending" })
                .bind(attempts)
                .bind(status.map(i64::from))
                .bind(error.chars().take(300).collect::<String>())
                .bind(now + backoff)
                .bind(delivery.id)
                .bind(&self.instance)
                .execute(self.db.pool())
                .await
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, delivery = delivery.id, "a delivery's outcome could not be recorded; it will be sent again");
        }
    }

    /// POSTs the event, signed. `Ok(status)` for a 2xx answer; otherwise the status (if
    /// any) and what went wrong.
    async fn send(&self, delivery: &Claimed) -> Result<u16, (Option<u16>, String)> {
        let secret = self
            .cipher
            .decrypt_string(&delivery.key_id, &delivery.secret, &secret_aad(delivery.endpoint_id))
            .map_err(|e| (None, format!("signing secret unreadable: {e}")))?;
        let webhook =
            standardwebhooks::Webhook::new(&secret).map_err(|_| (None, "signing secret malformed".to_string()))?;
        // Real time: receivers check the timestamp against their own clocks.
        let timestamp = real_now();
        let signature = webhook
            .sign(&delivery.event_id, timestamp, delivery.payload.as_bytes())
            .map_err(|_| (None, "payload is not UTF-8".to_string()))?;
        let response = self
            .http
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "connection failed"
                };
                (None, kind.to_string())
            })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err((Some(status), format!("answered {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_events_are_checked() {
        assert!(parse_url("https://platform.example.com/hooks").is_ok());
        assert!(parse_url("http://127.0.0.1:9000/x").is_ok());
        for bad in [
            "ftp://x.example/",
            "javascript:alert(1)",
            "https://user:pw@x.example/",
            "not a url",
            "https://",
        ] {
            assert_eq!(parse_url(bad), Err(EndpointError::BadUrl), "{bad}");
        }
        assert_eq!(
            parse_events(["connection.connected", "connection.recovered", "connection.connected"]),
            Ok(vec![PlatformEvent::Connected, PlatformEvent::Recovered])
        );
        assert_eq!(parse_events([]), Err(EndpointError::NoEvents));
        assert!(matches!(
            parse_events(["connection.exploded"]),
            Err(EndpointError::UnknownEvent(_))
        ));
        for event in PlatformEvent::ALL {
            assert_eq!(PlatformEvent::parse(event.as_str()), Some(event));
        }
    }
}
