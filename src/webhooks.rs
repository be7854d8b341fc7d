//! Airwallex disconnection webhooks: verified, deduplicated, checked against what we
//! already know, then applied to the matching connections.
//!
//! Airwallex signs each delivery (`x-timestamp` in milliseconds, `x-signature`: hex
//! HMAC-SHA256 of the timestamp followed by the raw body), retries anything but a 2xx with
//! backoff for about three days, and may deliver out of order. So: each event `id` is
//! applied once (processed ids are kept [`KEEP_EVENT_IDS_SECONDS`]); a disconnection
//! whose `created_at` is before the current connection was made says nothing about that
//! connection and is ignored (recorded in its timeline); events for accounts we do not
//! know are acknowledged and logged, or Airwallex would keep retrying them for days.

use serde_json::Value;

use crate::store::{ConnectionStore, EventKind, NewEvent, ReconnectReason};
use crate::webhook_signature;

/// Timestamps older (or further in the future) than this are refused.
pub const MAX_AGE_SECONDS: i64 = 300;
/// Processed event ids are remembered this long (Airwallex retries for about 3 days).
pub const KEEP_EVENT_IDS_SECONDS: i64 = 8 * 86_400;
const ACTOR: &str = "airwallex:webhook";

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
    #[error("database error")]
    Database,
}

crate::database_errors_are_logged!(WebhookRejection => WebhookRejection::Database, "webhook");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Connections marked as needing reconnection.
    Revoked(Vec<i64>),
    /// Known account, nothing left to change.
    AlreadyApplied,
    /// This event id was processed before.
    Duplicate,
    /// The disconnection happened before these connections were made: ignored.
    Predates(Vec<i64>),
    /// No connection belongs to the account(s): acknowledged, logged.
    UnknownAccount,
    /// An event this app does not act on.
    Ignored(String),
}

impl WebhookOutcome {
    /// A short stable name, stored with the event id and logged.
    pub fn as_str(&self) -> &'static str {
        match self {
            WebhookOutcome::Revoked(_) => "revoked",
            WebhookOutcome::AlreadyApplied => "already_applied",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Predates(_) => "predates_connection",
            WebhookOutcome::UnknownAccount => "unknown_account",
            WebhookOutcome::Ignored(_) => "ignored",
        }
    }
}

/// Checks the signature and the timestamp (unix `now` seconds; Airwallex's `x-timestamp`
/// is in milliseconds, seconds are accepted too).
fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), WebhookRejection> {
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
    Ok(())
}

/// The Airwallex accounts a disconnection event names.
fn disconnected_accounts(name: &str, event: &Value) -> Result<Option<Vec<String>>, WebhookRejection> {
    Ok(Some(match name {
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
        _ => return Ok(None),
    }))
}

/// Verifies and applies one delivery.
pub async fn handle(
    store: &ConnectionStore,
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<WebhookOutcome, WebhookRejection> {
    verify(secret, timestamp, signature, body, now)?;
    let event: Value = serde_json::from_slice(body).map_err(|_| WebhookRejection::Malformed)?;
    let name = event
        .get("name")
        .and_then(Value::as_str)
        .ok_or(WebhookRejection::Malformed)?;
    let event_id = event.get("id").and_then(Value::as_str).filter(|id| !id.is_empty());
    let created_at = event
        .get("created_at")
        .and_then(Value::as_str)
        .and_then(crate::time::parse_timestamp);
    let Some(accounts) = disconnected_accounts(name, &event)? else {
        return Ok(WebhookOutcome::Ignored(name.to_string()));
    };
    let detail = event_id.map(|id| format!("webhook {id}"));
    let duplicate = match event_id {
        Some(id) => seen_before(store, id).await?,
        None => false,
    };
    let outcome = if duplicate {
        record_ignored(store, &accounts, "duplicate_event", detail.as_deref(), now).await?;
        WebhookOutcome::Duplicate
    } else {
        apply(store, &accounts, created_at, detail.as_deref(), now).await?
    };
    if let Some(id) = event_id {
        remember(
            store,
            id,
            name,
            accounts.first().map(String::as_str),
            &outcome,
            created_at,
            now,
        )
        .await?;
    }
    Ok(outcome)
}

/// Applies a disconnection to each connected connection of the accounts, unless it was
/// created before that connection was made.
async fn apply(
    store: &ConnectionStore,
    accounts: &[String],
    created_at: Option<i64>,
    detail: Option<&str>,
    now: i64,
) -> Result<WebhookOutcome, WebhookRejection> {
    let mut revoked = Vec::new();
    let mut predates = Vec::new();
    let mut known = false;
    for account_id in accounts {
        known |= store.knows_account(account_id).await?;
        for (id, connected_at) in store.connected_for_account(account_id).await? {
            if created_at
                .zip(connected_at)
                .is_some_and(|(event, connected)| event < connected)
            {
                let event = NewEvent::new(EventKind::WebhookIgnored, ACTOR)
                    .reason("disconnect_predates_connection")
                    .detail(detail);
                store.log_event(id, event, now).await?;
                predates.push(id);
                continue;
            }
            if store
                .mark_needs_reconnect(id, ReconnectReason::Revoked, ACTOR, detail, now)
                .await?
            {
                revoked.push(id);
            }
        }
    }
    Ok(if !revoked.is_empty() {
        WebhookOutcome::Revoked(revoked)
    } else if !predates.is_empty() {
        WebhookOutcome::Predates(predates)
    } else if known {
        WebhookOutcome::AlreadyApplied
    } else {
        WebhookOutcome::UnknownAccount
    })
}

/// Notes in each connection's timeline that a delivery was ignored.
async fn record_ignored(
    store: &ConnectionStore,
    accounts: &[String],
    reason: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<(), WebhookRejection> {
    for account_id in accounts {
        for (id, _) in store.connected_for_account(account_id).await? {
            let event = NewEvent::new(EventKind::WebhookIgnored, ACTOR)
                .reason(reason)
                .detail(detail);
            store.log_event(id, event, now).await?;
        }
    }
    Ok(())
}

async fn seen_before(store: &ConnectionStore, event_id: &str) -> Result<bool, sqlx::Error> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM airwallex_events WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(store.db().pool())
        .await?;
    Ok(count > 0)
}

async fn remember(
    store: &ConnectionStore,
    event_id: &str,
    name: &str,
    account_id: Option<&str>,
    outcome: &WebhookOutcome,
    created_at: Option<i64>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO airwallex_events (event_id, name, account_id, outcome, created_at, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(name)
    .bind(account_id)
    .bind(outcome.as_str())
    .bind(created_at)
    .bind(now)
    .execute(store.db().pool())
    .await?;
    Ok(())
}

/// Forgets processed event ids past the retry horizon.
pub async fn sweep(store: &ConnectionStore, now: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM airwallex_events WHERE received_at <= $1")
        .bind(now - KEEP_EVENT_IDS_SECONDS)
        .execute(store.db().pool())
        .await?;
    Ok(done.rows_affected())
}
