//! Airwallex's webhooks: a revoked connection announced, signed, with retries.

use std::time::Duration;

use axum::http::{header, StatusCode};
use serde_json::json;

use super::state::{Revocation, SentWebhook};
use super::Simulator;
use crate::webhook_signature;

/// A random version-4 UUID, as Airwallex's event ids look.
fn uuid_v4() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Announces a revoked connection with a signed `connection.disconnected` webhook, in
/// Airwallex's envelope; the event is kept so that it can be redelivered later.
pub fn spawn_webhook(sim: Simulator, revocation: Revocation) {
    let (Some(url), Some(secret)) = (revocation.webhook_url.clone(), revocation.webhook_secret.clone()) else {
        return;
    };
    let connection = &revocation.connection;
    let now = sim.inner.now();
    let id = uuid_v4();
    let body = json!({
        "id": id,
        "name": "connection.disconnected",
        "account_id": connection.account_id,
        "data": {
            "id": connection.id,
            "account_id": connection.account_id,
            "status": "DISCONNECTED",
            "authorized_scopes": connection.scopes,
        },
        // Airwallex writes offsets without a colon.
        "created_at": crate::time::rfc3339(now).replace('Z', "+0000"),
        "version": "2024-09-27",
        "source_id": connection.id,
    })
    .to_string();
    let event = SentWebhook {
        id,
        name: "connection.disconnected".into(),
        account_id: connection.account_id.clone(),
        url,
        secret,
        body,
    };
    sim.inner.lock().sent_webhooks.push(event.clone());
    tokio::spawn(async move {
        let _ = deliver(&sim, &event).await;
    });
}

/// Delivers an event (up to 3 attempts), signed with a fresh timestamp as a retry would be.
pub async fn deliver(sim: &Simulator, event: &SentWebhook) -> Result<StatusCode, String> {
    let timestamp = (sim.inner.now() * 1000).to_string();
    let signature = webhook_signature::sign(event.secret.as_bytes(), &timestamp, event.body.as_bytes());
    let mut last = Err("not sent".to_string());
    for attempt in 0..3u32 {
        let sent = sim
            .inner
            .http
            .post(&event.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-timestamp", &timestamp)
            .header("x-signature", &signature)
            .body(event.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                sim.inner.lock().counters.webhooks_sent += 1;
                return Ok(StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::OK));
            }
            Ok(response) => last = Err(format!("answered {}", response.status())),
            Err(error) => last = Err(error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt))).await;
    }
    sim.inner.lock().counters.webhooks_failed += 1;
    tracing::warn!(target: "awx_sim", url = %event.url, "webhook delivery failed after 3 attempts");
    last
}
