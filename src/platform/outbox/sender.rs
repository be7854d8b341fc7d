//! The deliverer: due deliveries claimed under a lease, POSTed signed (Standard Webhooks),
//! each outcome recorded; driven by the delivery loop both outboxes share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use super::endpoints::secret_aad;
use super::targets::{CheckedResolver, TargetPolicy, TargetRefused};
use crate::crypto::TokenCipher;
use crate::db::Database;
use crate::outbox_queue::{Courier, Schedule};
use crate::secret::random_urlsafe;
use crate::time::{real_now, Clock};

/// How webhook deliveries are worked by default (the lease is `WEBHOOK_DELIVERY_LEASE_SECONDS`).
pub const WEBHOOK_SCHEDULE: Schedule = Schedule {
    lease: Duration::from_secs(30),
    timeout: Duration::from_secs(10),
    batch: 200,
    concurrency: 32,
    poll: Duration::from_millis(500),
    retry_base: Duration::from_secs(5),
    give_up_after: Duration::from_secs(24 * 3600),
};

/// Deliveries to one endpoint claimed per round at most: one slow endpoint does not hold
/// back the others (its next ones wait for the next round).
pub const PER_ENDPOINT_PER_ROUND: i64 = 8;

const DELIVERIES: crate::outbox_queue::Queue = crate::outbox_queue::Queue {
    table: "webhook_deliveries",
    due_status: "pending",
    per_group: Some(crate::outbox_queue::PerGroup {
        column: "endpoint_id",
        groups: "SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL",
        most: PER_ENDPOINT_PER_ROUND,
    }),
    filter: "1 = 1",
};

/// A claimed delivery with what sending it needs.
pub struct Claimed {
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
    targets: TargetPolicy,
    http: reqwest::Client,
    settings: Schedule,
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
    pub fn new(
        db: Database,
        clock: Clock,
        cipher: Arc<TokenCipher>,
        settings: Schedule,
        targets: TargetPolicy,
    ) -> Deliverer {
        Deliverer {
            http: reqwest::Client::builder()
                .timeout(settings.timeout)
                .redirect(reqwest::redirect::Policy::none())
                // Names resolve once, every address checked, and only those are dialled.
                .dns_resolver(CheckedResolver::shared(targets))
                .no_proxy()
                .user_agent(concat!("awx-onboard/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
                .build()
                .expect("an HTTP client"),
            db,
            clock,
            cipher,
            targets,
            settings,
            instance: format!("deliverer-{}", random_urlsafe(6)),
        }
    }

    /// Delivery rounds until `stop` turns true ([`crate::outbox_queue::run`]).
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        crate::outbox_queue::run(self, stop).await
    }

    /// One round: claims due deliveries and sends them. Returns how many it claimed.
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        crate::outbox_queue::round(self).await
    }
}

#[async_trait::async_trait]
impl Courier for Deliverer {
    type Claimed = Claimed;
    const WHAT: &'static str = "webhook delivery";

    fn schedule(&self) -> &Schedule {
        &self.settings
    }

    async fn claim(&self, limit: i64) -> Result<Vec<Claimed>, sqlx::Error> {
        let ids = crate::outbox_queue::claim_due(
            &self.db,
            &DELIVERIES,
            &self.instance,
            &self.settings,
            limit,
            self.clock.now(),
        )
        .await?;
        let rows = crate::outbox_queue::fetch_claimed(
            &self.db,
            "SELECT d.id, d.event_id, d.endpoint_id, d.attempts, d.created_at, e.payload, w.url, w.secret, w.key_id \
             FROM webhook_deliveries d JOIN platform_events e ON e.id = d.event_id \
             JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.id IN",
            &ids,
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Claimed {
                    id: r.try_get("id")?,
                    event_id: r.try_get("event_id")?,
                    endpoint_id: r.try_get("endpoint_id")?,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                    payload: r.try_get("payload")?,
                    url: r.try_get("url")?,
                    secret: r.try_get("secret")?,
                    key_id: r.try_get("key_id")?,
                })
            })
            .collect()
    }

    /// Sends one delivery and records the outcome (only while this instance holds it).
    async fn deliver(&self, delivery: Claimed) {
        // An endpoint disabled since the claim gets nothing more, even mid-batch (disabling
        // marked its deliveries failed already).
        let disabled = sqlx::query_scalar::<_, Option<i64>>("SELECT disabled_at FROM webhook_endpoints WHERE id = $1")
            .bind(delivery.endpoint_id)
            .fetch_one(self.db.pool())
            .await;
        match disabled {
            Ok(None) => {}
            Ok(Some(_)) => return,
            Err(error) => {
                tracing::warn!(%error, delivery = delivery.id, "could not check the endpoint; trying later");
                return;
            }
        }
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
                     WHERE id = $4 AND lease_owner = $5 AND status = 'pending'",
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
                let retry_at = self.settings.retry_at(attempts, delivery.created_at, now);
                let give_up = retry_at.is_none();
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
                     next_attempt_at = $5, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $6 AND lease_owner = $7 AND status = 'pending'",
                )
                .bind(if give_up { "failed" } else { "pending" })
                .bind(attempts)
                .bind(status.map(i64::from))
                .bind(error.chars().take(300).collect::<String>())
                .bind(retry_at.unwrap_or(now))
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
}

impl Deliverer {
    /// POSTs the event, signed. `Ok(status)` for a 2xx answer; otherwise the status (if
    /// any) and what went wrong.
    async fn send(&self, delivery: &Claimed) -> Result<u16, (Option<u16>, String)> {
        let secret = self
            .cipher
            .decrypt_string(&delivery.key_id, &delivery.secret, &secret_aad(delivery.endpoint_id))
            .map_err(|e| (None, format!("signing secret unreadable: {e}")))?;
        let webhook =
            standardwebhooks::Webhook::new(&secret).map_err(|_| (None, "signing secret malformed".to_string()))?;
        let url = url::Url::parse(&delivery.url).map_err(|_| (None, "the endpoint URL is not valid".to_string()))?;
        self.targets
            .check_literal(&url)
            .map_err(|refused| (None, format!("not sent: {refused}")))?;
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
                if let Some(refused) = refusal_in(&e) {
                    return (None, format!("not sent: {refused}"));
                }
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

/// The target refusal behind a failed request, if that is why it failed.
fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<TargetRefused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<TargetRefused>() {
            return Some(refused.clone());
        }
        cause = current.source();
    }
    None
}
