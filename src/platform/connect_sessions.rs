//! Connect sessions: the platform's backend starts a connection for one of its own users,
//! named by its own id (`external_id`), without that user making an account here.
//!
//! A session is a one-use link (`{PUBLIC_URL}/connect-link/{secret}`, 256 random bits stored
//! only as their SHA-256) that lives `CONNECT_SESSION_MINUTES`. Fetching it changes nothing
//! (mail scanners and link previews fetch links); the merchant's POST consumes it, exactly
//! once across instances (one conditional UPDATE), and starts the authorization. The
//! callback finishes it: the browser goes back to the session's `return_url` with the
//! outcome, and the platform hears `connect_session.completed` from the outbox.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::db::Database;
use crate::platform::outbox::{self, PlatformEvent};
use crate::store::ConnectionStatus;
use crate::time::Clock;

mod create;
mod rules;

pub use rules::{check_external_id, check_tags, parse_return_origin, return_to, tags_from_text};

pub const MAX_EXTERNAL_ID_CHARS: usize = 200;
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_KEY_CHARS: usize = 64;
pub const MAX_TAG_VALUE_CHARS: usize = 255;
pub const MAX_BUSINESS_NAME_CHARS: usize = 200;
pub const MAX_RETURN_URL_CHARS: usize = 2048;
/// `CONNECT_SESSION_MINUTES` is at most this.
pub const MAX_SESSION_MINUTES: i64 = 1440;

/// Where the links live, under `PUBLIC_URL`.
pub const LINK_PREFIX: &str = "/connect-link/";

/// Tags the platform keeps on a merchant: at most [`MAX_TAGS`] string pairs.
pub type Tags = BTreeMap<String, String>;

/// How connect sessions are made here.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// `PLATFORM_NAME`, shown to merchants.
    pub platform_name: String,
    /// `PLATFORM_RETURN_ORIGINS`: the origins (`scheme://host[:port]`) a session may return to.
    pub return_origins: Vec<String>,
    /// `CONNECT_SESSION_MINUTES`, in seconds.
    pub ttl_seconds: i64,
    /// `PUBLIC_URL` without its trailing slash: links are absolute under it.
    pub public_origin: String,
}

/// A session as the platform asks for it; checked by [`ConnectSessions::create`].
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    pub external_id: String,
    pub email: Option<String>,
    pub return_url: String,
    pub business_name: Option<String>,
    /// `None`: keep the merchant's tags as they are.
    pub tags: Option<Tags>,
    pub sign_up: bool,
    pub allow_account_change: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A field's value is not acceptable; the message says why.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// The return URL is not one this deployment may send merchants to.
    #[error("return_url: {0}")]
    ReturnUrl(String),
    #[error("email: this email belongs to another merchant")]
    EmailInUse,
    #[error("no such merchant")]
    NoSuchMerchant,
    #[error("database error")]
    Database,
}

crate::database_errors_are_logged!(SessionError => SessionError::Database, "connect sessions");

fn invalid(field: &'static str, message: impl Into<String>) -> SessionError {
    SessionError::Invalid {
        field,
        message: message.into(),
    }
}

/// A link as handed out once: it holds the secret. Prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionLink(String);

impl SessionLink {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionLink([redacted])")
    }
}

/// A new session: its link is shown once.
#[derive(Debug, Clone)]
pub struct CreatedSession {
    pub id: String,
    pub url: SessionLink,
    pub expires_at: i64,
    pub merchant_id: i64,
    pub external_id: String,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Pending,
    Opened,
    Completed,
    Expired,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Opened => "opened",
            SessionStatus::Completed => "completed",
            SessionStatus::Expired => "expired",
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Connected,
    Reconnected,
    Declined,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Reconnected => "reconnected",
            Outcome::Declined => "declined",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::Connected,
            Outcome::Reconnected,
            Outcome::Declined,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

/// A session as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSession {
    pub id: String,
    pub merchant_id: i64,
    pub external_id: Option<String>,
    pub return_url: String,
    pub business_name: Option<String>,
    pub sign_up: bool,
    pub allow_account_change: bool,
    /// `key:<id>` or `operator:<id>`.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub opened_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
}

impl ConnectSession {
    pub fn status(&self, now: i64) -> SessionStatus {
        if self.completed_at.is_some() {
            SessionStatus::Completed
        } else if now >= self.expires_at {
            SessionStatus::Expired
        } else if self.opened_at.is_some() {
            SessionStatus::Opened
        } else {
            SessionStatus::Pending
        }
    }
}

/// Why a link cannot be used; one answer (410) for all, with a way back when one is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// No session has this secret (a forged or mistyped link).
    Unknown,
    /// Already used once.
    Used {
        return_url: String,
    },
    Expired {
        return_url: String,
    },
}

/// What the landing page shows: the session, whom it is for, their connection if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    pub session: ConnectSession,
    pub email: String,
    pub connection_status: Option<ConnectionStatus>,
    pub connected_business_name: Option<String>,
    pub connected_account_id: Option<String>,
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const SESSION_COLUMNS: &str = "s.id, s.merchant_id, m.external_id, s.return_url, s.business_name, s.sign_up, \
     s.allow_account_change, s.created_by, s.created_at, s.expires_at, s.opened_at, s.completed_at, s.outcome, s.reason";

fn session_from_row(row: &AnyRow) -> Result<ConnectSession, sqlx::Error> {
    Ok(ConnectSession {
        id: row.try_get("id")?,
        merchant_id: row.try_get("merchant_id")?,
        external_id: row.try_get("external_id")?,
        return_url: row.try_get("return_url")?,
        business_name: row.try_get("business_name")?,
        sign_up: row.try_get::<i64, _>("sign_up")? != 0,
        allow_account_change: row.try_get::<i64, _>("allow_account_change")? != 0,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        opened_at: row.try_get("opened_at")?,
        completed_at: row.try_get("completed_at")?,
        outcome: row
            .try_get::<Option<String>, _>("outcome")?
            .as_deref()
            .and_then(Outcome::parse),
        reason: row.try_get("reason")?,
    })
}

/// Connect sessions: created by the platform (or an operator), opened by the merchant.
#[derive(Debug, Clone)]
pub struct ConnectSessions {
    db: Database,
    clock: Clock,
    settings: ConnectSettings,
}

impl ConnectSessions {
    pub fn new(db: Database, clock: Clock, settings: ConnectSettings) -> ConnectSessions {
        ConnectSessions { db, clock, settings }
    }

    pub fn settings(&self) -> &ConnectSettings {
        &self.settings
    }

    /// One session by its id.
    pub async fn by_id(&self, id: &str) -> Result<Option<ConnectSession>, SessionError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM connect_sessions s JOIN merchants m ON m.id = s.merchant_id WHERE s.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    /// A merchant's sessions, newest first.
    pub async fn of_merchant(&self, merchant_id: i64, limit: i64) -> Result<Vec<ConnectSession>, SessionError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM connect_sessions s JOIN merchants m ON m.id = s.merchant_id \
             WHERE s.merchant_id = $1 ORDER BY s.seq DESC LIMIT $2"
        ))
        .bind(merchant_id)
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(session_from_row).collect::<Result<_, _>>()?)
    }

    fn unusable(&self, session: Option<ConnectSession>) -> Unusable {
        match session {
            None => Unusable::Unknown,
            Some(s) if s.opened_at.is_some() || s.completed_at.is_some() => Unusable::Used {
                return_url: s.return_url,
            },
            Some(s) => Unusable::Expired {
                return_url: s.return_url,
            },
        }
    }

    async fn by_secret(&self, secret: &str) -> Result<Option<(ConnectSession, AnyRow)>, SessionError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS}, m.email, c.status AS connection_status, \
             c.business_name AS connected_business_name, c.account_id AS connected_account_id \
             FROM connect_sessions s JOIN merchants m ON m.id = s.merchant_id \
             LEFT JOIN connections c ON c.merchant_id = s.merchant_id WHERE s.secret_hash = $1"
        ))
        .bind(secret_hash(secret))
        .fetch_optional(self.db.pool())
        .await?;
        Ok(match row {
            Some(row) => Some((session_from_row(&row)?, row)),
            None => None,
        })
    }

    /// What the link's landing page shows. Reads only: fetching a link changes nothing.
    pub async fn landing(&self, secret: &str) -> Result<Result<Landing, Unusable>, SessionError> {
        let Some((session, row)) = self.by_secret(secret).await? else {
            return Ok(Err(Unusable::Unknown));
        };
        if session.status(self.clock.now()) != SessionStatus::Pending {
            return Ok(Err(self.unusable(Some(session))));
        }
        Ok(Ok(Landing {
            email: row.try_get("email")?,
            connection_status: row
                .try_get::<Option<String>, _>("connection_status")?
                .map(|s| ConnectionStatus::parse(&s)),
            connected_business_name: row.try_get("connected_business_name")?,
            connected_account_id: row.try_get("connected_account_id")?,
            session,
        }))
    }

    /// Uses the link up: whoever sets `opened_at` first owns it (one conditional UPDATE,
    /// so two instances consuming the same link at once leave exactly one winner).
    pub async fn consume(&self, secret: &str) -> Result<Result<ConnectSession, Unusable>, SessionError> {
        let now = self.clock.now();
        let opened: Option<String> = sqlx::query_scalar(
            "UPDATE connect_sessions SET opened_at = $1 \
             WHERE secret_hash = $2 AND opened_at IS NULL AND completed_at IS NULL AND expires_at > $1 RETURNING id",
        )
        .bind(now)
        .bind(secret_hash(secret))
        .fetch_optional(self.db.pool())
        .await?;
        match opened {
            Some(id) => self.by_id(&id).await?.map(Ok).ok_or(SessionError::Database),
            None => Ok(Err(self.unusable(self.by_secret(secret).await?.map(|(s, _)| s)))),
        }
    }

    /// Ends an opened session with its outcome, and tells the platform (in the same
    /// transaction). Returns the session; one that had already ended is left as it was.
    pub async fn finish(
        &self,
        id: &str,
        outcome: Outcome,
        reason: Option<&str>,
    ) -> Result<Option<ConnectSession>, SessionError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let updated = sqlx::query(
            "UPDATE connect_sessions SET completed_at = $1, outcome = $2, reason = $3 \
             WHERE id = $4 AND completed_at IS NULL",
        )
        .bind(now)
        .bind(outcome.as_str())
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 1 {
            let row = sqlx::query(
                "SELECT s.merchant_id, m.external_id, m.tags, c.id AS connection_id FROM connect_sessions s \
                 JOIN merchants m ON m.id = s.merchant_id LEFT JOIN connections c ON c.merchant_id = s.merchant_id \
                 WHERE s.id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            let data = serde_json::json!({
                "session_id": id,
                "external_id": row.try_get::<Option<String>, _>("external_id")?,
                "merchant_id": row.try_get::<i64, _>("merchant_id")?,
                "outcome": outcome.as_str(),
                "reason": reason,
                "tags": tags_from_text(row.try_get::<Option<String>, _>("tags")?.as_deref()),
            });
            outbox::enqueue_data(
                &mut tx,
                PlatformEvent::ConnectSessionCompleted,
                row.try_get("connection_id")?,
                data,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.by_id(id).await
    }

    /// The merchant the platform names `external_id`, if any.
    pub async fn merchant_of(&self, external_id: &str) -> Result<Option<i64>, SessionError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM merchants WHERE external_id = $1 AND role = 'merchant'")
                .bind(external_id)
                .fetch_optional(self.db.pool())
                .await?,
        )
    }
}
