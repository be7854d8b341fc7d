//! The append-only audit log: every state change of a connection is one row of
//! `connection_events` (UPDATE and DELETE are refused by triggers). Never holds a secret.

use crate::db::WriteTx;

use super::ConnectionStore;
use crate::platform::outbox::PlatformEvent;

/// What happened to a connection. Stored as its [`as_str`](EventKind::as_str) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Connected,
    Reconnected,
    Refreshed,
    RefreshFailed,
    NeedsReconnect,
    Revoked,
    Disconnected,
    /// An operator's "Check with Airwallex".
    Checked,
    /// An Airwallex webhook that was not applied (a repeat, or older than the connection).
    WebhookIgnored,
    /// The platform gave the merchant another email (a connect session).
    EmailChanged,
    /// A reconnection took another Airwallex account (allowed by its connect session);
    /// the detail says which to which.
    AccountChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Connected,
        EventKind::Reconnected,
        EventKind::Refreshed,
        EventKind::RefreshFailed,
        EventKind::NeedsReconnect,
        EventKind::Revoked,
        EventKind::Disconnected,
        EventKind::Checked,
        EventKind::WebhookIgnored,
        EventKind::EmailChanged,
        EventKind::AccountChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Connected => "connected",
            EventKind::Reconnected => "reconnected",
            EventKind::Refreshed => "refreshed",
            EventKind::RefreshFailed => "refresh_failed",
            EventKind::NeedsReconnect => "needs_reconnect",
            EventKind::Revoked => "revoked",
            EventKind::Disconnected => "disconnected",
            EventKind::Checked => "checked",
            EventKind::WebhookIgnored => "webhook_ignored",
            EventKind::EmailChanged => "email_changed",
            EventKind::AccountChanged => "account_changed",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

super::stored_name!(EventKind, "event kind", EventKind::parse);

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct ConnectionEvent {
    pub id: i64,
    pub connection_id: i64,
    pub kind: EventKind,
    pub reason: Option<String>,
    pub actor: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

/// A new entry, before it has an id.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    pub kind: EventKind,
    pub reason: Option<&'a str>,
    pub actor: &'a str,
    pub detail: Option<&'a str>,
}

impl<'a> NewEvent<'a> {
    pub fn new(kind: EventKind, actor: &'a str) -> NewEvent<'a> {
        NewEvent {
            kind,
            reason: None,
            actor,
            detail: None,
        }
    }

    pub fn reason(mut self, reason: &'a str) -> NewEvent<'a> {
        self.reason = Some(reason);
        self
    }

    pub fn detail(mut self, detail: Option<&'a str>) -> NewEvent<'a> {
        self.detail = detail;
        self
    }
}

/// Appends an event inside the caller's transaction.
pub async fn append_event(
    tx: &mut WriteTx,
    connection_id: i64,
    event: NewEvent<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connection_events (connection_id, kind, reason, actor, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(connection_id)
    .bind(event.kind.as_str())
    .bind(event.reason)
    .bind(event.actor)
    .bind(event.detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The update a state change of a connection makes.
pub(super) type Update<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

impl ConnectionStore {
    /// A state change of a connection, in one transaction: `update` (one row, or none when
    /// the change no longer applies: then nothing is written and the answer is false), its
    /// audit event, the platform's webhook and, for `needs_reconnect`, the merchant's email.
    pub(super) async fn transition(
        &self,
        update: Update<'_>,
        connection_id: i64,
        event: NewEvent<'_>,
        platform: Option<PlatformEvent>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        if update.execute(&mut *tx).await?.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        append_event(&mut tx, connection_id, event, now).await?;
        if let Some(platform) = platform {
            crate::platform::outbox::enqueue(&mut tx, platform, connection_id, now).await?;
            if platform == PlatformEvent::NeedsReconnect {
                // The merchant hears of it too, once per incident.
                crate::mail::enqueue_reconnect(&mut tx, connection_id, now).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Appends one event on its own (an operator's action, for instance).
    pub async fn log_event(&self, connection_id: i64, event: NewEvent<'_>, now: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        append_event(&mut tx, connection_id, event, now).await?;
        tx.commit().await
    }

    /// The newest events of a connection, newest first, before `before_id` if given.
    pub async fn events(
        &self,
        connection_id: i64,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ConnectionEvent>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, connection_id, kind, reason, actor, detail, created_at FROM connection_events \
             WHERE connection_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(connection_id)
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_stored_text() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("nonsense"), None);
    }
}
