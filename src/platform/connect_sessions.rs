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
use url::Url;

use crate::accounts::Email;
use crate::db::Database;
use crate::platform::outbox::{self, PlatformEvent};
use crate::secret::random_urlsafe;
use crate::store::ConnectionStatus;
use crate::time::Clock;

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

/// A session about to be written.
struct NewRow<'a> {
    id: String,
    secret: String,
    return_url: &'a str,
    business_name: Option<&'a str>,
    request: &'a SessionRequest,
    created_by: &'a str,
    now: i64,
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

/// Checks an external id: 1 to 200 printable ASCII characters.
pub fn check_external_id(external_id: &str) -> Result<(), SessionError> {
    if external_id.is_empty() || external_id.len() > MAX_EXTERNAL_ID_CHARS {
        return Err(invalid(
            "external_id",
            format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} characters"),
        ));
    }
    if !external_id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(invalid("external_id", "must be printable ASCII characters only"));
    }
    Ok(())
}

/// Checks tags: at most 10 pairs, keys 1 to 64 characters, values at most 255.
pub fn check_tags(tags: &Tags) -> Result<(), SessionError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (key, value) in tags {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS || key.chars().any(char::is_control) {
            return Err(invalid(
                "tags",
                format!("each key must be 1 to {MAX_TAG_KEY_CHARS} characters, without control characters"),
            ));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS || value.chars().any(char::is_control) {
            return Err(invalid(
                "tags",
                format!("each value must be at most {MAX_TAG_VALUE_CHARS} characters, without control characters"),
            ));
        }
    }
    Ok(())
}

/// The merchant's tags as stored (a JSON object), `{}` when none.
pub fn tags_from_text(text: Option<&str>) -> Tags {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// An origin as `PLATFORM_RETURN_ORIGINS` lists it: `https://host[:port]`, or `http` on
/// loopback; no path, query, fragment or user info. Returns its normal form.
pub fn parse_return_origin(text: &str) -> Result<String, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} must not carry user info"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must be an origin only (scheme, host and port)"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => return Err(format!("{text:?} must be https (http only on loopback)")),
    }
    Ok(url.origin().ascii_serialization())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `return_url` with the session's outcome added to its query (its own parameters kept).
pub fn return_to(return_url: &str, session_id: &str, status: &str, reason: Option<&str>) -> String {
    let Ok(mut url) = Url::parse(return_url) else {
        return return_url.to_string();
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("connect_session", session_id);
        query.append_pair("status", status);
        if let Some(reason) = reason {
            query.append_pair("reason", reason);
        }
    }
    url.to_string()
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

    /// Checks a return URL against `PLATFORM_RETURN_ORIGINS`: the same scheme, host and
    /// port as one of them, and no user info.
    pub fn check_return_url(&self, text: &str) -> Result<Url, SessionError> {
        if self.settings.return_origins.is_empty() {
            return Err(SessionError::ReturnUrl(
                "no return origin is configured (PLATFORM_RETURN_ORIGINS)".into(),
            ));
        }
        if text.len() > MAX_RETURN_URL_CHARS {
            return Err(SessionError::ReturnUrl(format!(
                "must be at most {MAX_RETURN_URL_CHARS} characters"
            )));
        }
        let url = Url::parse(text).map_err(|_| SessionError::ReturnUrl("is not an absolute URL".into()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(SessionError::ReturnUrl("must be an https URL".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SessionError::ReturnUrl("must not carry user info".into()));
        }
        let origin = url.origin().ascii_serialization();
        if !self.settings.return_origins.contains(&origin) {
            return Err(SessionError::ReturnUrl(format!(
                "its origin {origin} is not listed in PLATFORM_RETURN_ORIGINS"
            )));
        }
        Ok(url)
    }

    /// Creates a session for the merchant the platform names by `external_id`: a new one
    /// (no password), or the known one (its email and tags updated when given).
    pub async fn create(&self, request: &SessionRequest, created_by: &str) -> Result<CreatedSession, SessionError> {
        check_external_id(&request.external_id)?;
        let email = match request.email.as_deref() {
            Some(email) => Some(Email::parse(email).map_err(|_| invalid("email", "is not a valid email address"))?),
            None => None,
        };
        let return_url = self.check_return_url(&request.return_url)?;
        let business_name = request
            .business_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if business_name.is_some_and(|n| n.chars().count() > MAX_BUSINESS_NAME_CHARS || n.chars().any(char::is_control))
        {
            return Err(invalid(
                "business_name",
                format!("must be at most {MAX_BUSINESS_NAME_CHARS} characters, without control characters"),
            ));
        }
        if let Some(tags) = &request.tags {
            check_tags(tags)?;
        }
        let tags_text = request
            .tags
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "{}".into()));
        let now = self.clock.now();
        let new = NewRow {
            id: format!("cs_{}", random_urlsafe(16)),
            secret: random_urlsafe(32),
            return_url: return_url.as_str(),
            business_name,
            request,
            created_by,
            now,
        };
        let merchant_id = match self
            .for_known_as_it_is(&new, email.as_ref(), tags_text.as_deref())
            .await?
        {
            Some(merchant_id) => merchant_id,
            None => {
                self.for_new_or_changed(&new, email.as_ref(), tags_text.as_deref())
                    .await?
            }
        };
        Ok(CreatedSession {
            url: SessionLink(format!("{}{LINK_PREFIX}{}", self.settings.public_origin, new.secret)),
            id: new.id,
            expires_at: now + self.settings.ttl_seconds,
            merchant_id,
            external_id: request.external_id.clone(),
        })
    }

    /// The common case, in one statement: a merchant the platform named before, whose email
    /// and tags are as given. `None` when that is not the case (nothing written).
    async fn for_known_as_it_is(
        &self,
        new: &NewRow<'_>,
        email: Option<&Email>,
        tags: Option<&str>,
    ) -> Result<Option<i64>, SessionError> {
        let _gate = self.db.write_gate().await;
        Ok(sqlx::query_scalar(
            "INSERT INTO connect_sessions (id, secret_hash, merchant_id, return_url, business_name, sign_up, \
             allow_account_change, created_by, created_at, expires_at) \
             SELECT $1, $2, m.id, $3, $4, $5, $6, $7, $8, $9 FROM merchants m \
             WHERE m.external_id = $10 AND m.role = 'merchant' AND ($11 IS NULL OR m.email = $11) \
             AND ($12 IS NULL OR m.tags = $12) RETURNING merchant_id",
        )
        .bind(&new.id)
        .bind(secret_hash(&new.secret))
        .bind(new.return_url)
        .bind(new.business_name)
        .bind(i64::from(new.request.sign_up))
        .bind(i64::from(new.request.allow_account_change))
        .bind(new.created_by)
        .bind(new.now)
        .bind(new.now + self.settings.ttl_seconds)
        .bind(&new.request.external_id)
        .bind(email.map(Email::as_str))
        .bind(tags)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// A new merchant (no password), or a known one whose email or tags change (the email
    /// change in its timeline), and the session, in one transaction.
    async fn for_new_or_changed(
        &self,
        new: &NewRow<'_>,
        email: Option<&Email>,
        tags: Option<&str>,
    ) -> Result<i64, SessionError> {
        let request = new.request;
        let mut tx = self.db.begin().await?;
        // Any conflict (the email, or the same new external id created at this very moment
        // elsewhere) inserts nothing; which one is told apart below.
        let inserted: Option<i64> = match email {
            Some(email) => {
                sqlx::query_scalar(
                    "INSERT INTO merchants (email, password_hash, role, created_at, external_id, tags) \
                     VALUES ($1, '', 'merchant', $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(email.as_str())
                .bind(new.now)
                .bind(&request.external_id)
                .bind(tags)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        let merchant_id = match inserted {
            Some(id) => id,
            None => {
                let known = sqlx::query("SELECT id, email FROM merchants WHERE external_id = $1 AND role = 'merchant'")
                    .bind(&request.external_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = known else {
                    return Err(match email {
                        Some(_) => SessionError::EmailInUse,
                        None => invalid("email", "is required for a new external_id"),
                    });
                };
                let id: i64 = row.try_get("id")?;
                let current: String = row.try_get("email")?;
                if let Some(email) = email.filter(|e| e.as_str() != current) {
                    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM merchants WHERE email = $1")
                        .bind(email.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    if taken.is_some() {
                        return Err(SessionError::EmailInUse);
                    }
                    sqlx::query("UPDATE merchants SET email = $1 WHERE id = $2")
                        .bind(email.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let connection: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM connections WHERE merchant_id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some(connection_id) = connection {
                        crate::store::append_event(
                            &mut tx,
                            connection_id,
                            crate::store::NewEvent::new(crate::store::EventKind::EmailChanged, new.created_by),
                            new.now,
                        )
                        .await?;
                    }
                }
                if let Some(tags) = tags {
                    sqlx::query("UPDATE merchants SET tags = $1 WHERE id = $2")
                        .bind(tags)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                id
            }
        };
        sqlx::query(
            "INSERT INTO connect_sessions (id, secret_hash, merchant_id, return_url, business_name, sign_up, \
             allow_account_change, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&new.id)
        .bind(secret_hash(&new.secret))
        .bind(merchant_id)
        .bind(new.return_url)
        .bind(new.business_name)
        .bind(i64::from(request.sign_up))
        .bind(i64::from(request.allow_account_change))
        .bind(new.created_by)
        .bind(new.now)
        .bind(new.now + self.settings.ttl_seconds)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(merchant_id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_origins_are_origins_over_https_or_loopback_http() {
        assert_eq!(
            parse_return_origin("https://platform.example").as_deref(),
            Ok("https://platform.example")
        );
        assert_eq!(
            parse_return_origin("https://platform.example:443/").as_deref(),
            Ok("https://platform.example")
        );
        assert_eq!(
            parse_return_origin("http://127.0.0.1:4000").as_deref(),
            Ok("http://127.0.0.1:4000")
        );
        for bad in [
            "http://platform.example",
            "https://platform.example/app",
            "https://u:p@platform.example",
            "javascript:alert(1)",
            "platform.example",
        ] {
            assert!(parse_return_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_outcome_is_added_to_the_return_url_keeping_its_own_query() {
        assert_eq!(
            return_to(
                "https://p.example/back?tab=2#top",
                "cs_1",
                "failed",
                Some("account_mismatch")
            ),
            "https://p.example/back?tab=2&connect_session=cs_1&status=failed&reason=account_mismatch#top"
        );
    }

    #[test]
    fn external_ids_and_tags_are_bounded() {
        assert!(check_external_id("user-42").is_ok());
        assert!(check_external_id(&"x".repeat(200)).is_ok());
        for bad in [String::new(), "x".repeat(201), "tab\there".into(), "é".into()] {
            assert!(check_external_id(&bad).is_err(), "{bad:?}");
        }
        let many: Tags = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(check_tags(&many).is_err());
        assert!(check_tags(&Tags::from([("".into(), "v".into())])).is_err());
        assert!(check_tags(&Tags::from([("k".repeat(65), "v".into())])).is_err());
        assert!(check_tags(&Tags::from([("k".into(), "v".repeat(256))])).is_err());
        assert!(check_tags(&Tags::from([("plan".into(), "gold".into())])).is_ok());
    }

    #[test]
    fn links_do_not_print() {
        assert_eq!(
            format!("{:?}", SessionLink("https://x/connect/secret".into())),
            "SessionLink([redacted])"
        );
    }
}
