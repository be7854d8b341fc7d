//! Airwallex disconnection webhooks: verified, then applied to the matching connections.

use serde_json::Value;

use crate::store::{ConnectionStore, ReconnectReason};
use crate::webhook_signature;

/// Timestamps older (or further in the future) than this are refused.
pub const MAX_AGE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRejection {
    #[error("missing x-timestamp or x-signature header")]
    MissingHeaders,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the timestamp is too old or in the future")]
    StaleTimestamp,
    #[error("the body is not a JSON event")]
    Malformed,
    #[error("no connection belongs to that account")]
    UnknownAccount,
    #[error("database error")]
    Database,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Connections marked as needing reconnection.
    Revoked(Vec<i64>),
    /// Known account, nothing left to change (a duplicate delivery).
    AlreadyApplied,
    /// An event this app does not act on.
    Ignored(String),
}

/// Verifies and applies one delivery. `now` is unix seconds; Airwallex's `x-timestamp`
/// is in milliseconds (seconds are accepted too).
pub async fn handle(
    store: &ConnectionStore,
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<WebhookOutcome, WebhookRejection> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(WebhookRejection::MissingHeaders);
    };
    if !webhook_signature::verify(secret, timestamp, body, signature) {
        return Err(WebhookRejection::BadSignature);
    }
    let sent: i64 = timestamp.trim().parse().map_err(|_| WebhookRejection::StaleTimestamp)?;
    let sent_seconds = if sent > 100_000_000_000 { sent / 1000 } else { sent };
    if (now - sent_seconds).abs() > MAX_AGE_SECONDS {
        return Err(WebhookRejection::StaleTimestamp);
    }
    let event: Value = serde_json::from_slice(body).map_err(|_| WebhookRejection::Malformed)?;
    let name = event
        .get("name")
        .and_then(Value::as_str)
        .ok_or(WebhookRejection::Malformed)?;
    let accounts: Vec<String> = match name {
        "connection.disconnected" => event
            .pointer("/data/account_id")
            .or_else(|| event.get("account_id"))
            .and_then(Value::as_str)
            .map(|a| vec![a.to_string()])
            .ok_or(WebhookRejection::Malformed)?,
        "partner_connection.disconnected" => event
            .pointer("/data/account_ids")
            .or_else(|| event.get("account_ids"))
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .ok_or(WebhookRejection::Malformed)?,
        other => return Ok(WebhookOutcome::Ignored(other.to_string())),
    };
    let event_id = event
        .get("id")
        .and_then(Value::as_str)
        .map(|id| format!("webhook {id}"));
    let mut revoked = Vec::new();
    let mut known = false;
    for account_id in &accounts {
        known |= store
            .knows_account(account_id)
            .await
            .map_err(|_| WebhookRejection::Database)?;
        for id in store
            .connected_ids_for_account(account_id)
            .await
            .map_err(|_| WebhookRejection::Database)?
        {
            let changed = store
                .mark_needs_reconnect(
                    id,
                    ReconnectReason::Revoked,
                    "airwallex:webhook",
                    event_id.as_deref(),
                    now,
                )
                .await
                .map_err(|_| WebhookRejection::Database)?;
            if changed {
                revoked.push(id);
            }
        }
    }
    if !known {
        return Err(WebhookRejection::UnknownAccount);
    }
    if revoked.is_empty() {
        Ok(WebhookOutcome::AlreadyApplied)
    } else {
        Ok(WebhookOutcome::Revoked(revoked))
    }
}
