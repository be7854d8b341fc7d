//! Sessions: a typed wrapper over tower-sessions with the keys in one place, and the
//! session store on the app's own database (SQLite or PostgreSQL through sqlx `Any`).

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;

use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_core::Session;

use crate::accounts::{Account, Role};
use crate::db::Database;
use crate::store::{summary_from_row, ConnectionSummary, SUMMARY_COLUMNS};
use crate::time::Clock;

/// Sessions end after this long without a request.
pub const INACTIVITY_LIMIT: time::Duration = time::Duration::hours(12);
/// Sessions end this long after sign-in, however active.
pub const ABSOLUTE_LIMIT: time::Duration = time::Duration::days(7);
/// Push a session's inactivity expiry forward at most this often (each push is a write).
const TOUCH_EVERY_SECONDS: i64 = 600;

/// The connect session a browser was signed in by: the way back to the platform.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlatformReturn {
    pub session_id: String,
    pub return_url: String,
    /// Whether the link let the merchant bring another Airwallex account: what the
    /// browser it signed in starts keeps the link's pin.
    #[serde(default)]
    pub allow_account_change: bool,
}

/// An account that gave its password and owes its second factor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingSignIn {
    pub account: Account,
    /// When the password was given (a pending sign-in lasts ten minutes).
    pub since: i64,
    /// Where to go afterwards (a checked local path).
    pub next: Option<String>,
}

/// How long a password stays good for its second factor.
pub const PENDING_SECONDS: i64 = 600;

/// The session of one request, with typed access to what this app keeps in it.
#[derive(Clone, Debug)]
pub struct SessionState(Session);

/// A session could not be read or written (the store failed).
#[derive(Debug, thiserror::Error)]
#[error("the session store failed")]
pub struct SessionError;

impl From<tower_sessions_core::session::Error> for SessionError {
    fn from(error: tower_sessions_core::session::Error) -> Self {
        tracing::error!(%error, "session store error");
        SessionError
    }
}

impl SessionState {
    /// Key holding the signed-in account (id, email, role).
    const SIGNED_IN: &'static str = "signed_in";
    /// Key holding an account that gave its password and owes its second factor.
    const PENDING: &'static str = "second_factor_pending";
    /// Key holding when a second factor was last given in this session (a log-in or a
    /// confirmation before a sensitive action).
    const CONFIRMED_AT: &'static str = "second_factor_at";
    /// Key holding recovery codes to show once, right after an enrolment.
    const RECOVERY: &'static str = "recovery_codes";
    /// Key holding the connect session this session was signed in by, if any.
    const PLATFORM_RETURN: &'static str = "platform_return";
    /// Key holding when the session's expiry was last pushed forward.
    const LAST_SEEN: &'static str = "last_seen";
    /// Key under which the store leaves the merchant's connection summary, read with the
    /// session; never saved.
    const CONNECTION: &'static str = "__connection";
    /// Key under which the store leaves whether the account gets emails, read with the
    /// session; never saved.
    const EMAILS: &'static str = "__emails";
    /// Key under which the store leaves whether the account's address is verified, read
    /// with the session; never saved.
    const VERIFIED: &'static str = "__verified";

    pub fn new(session: Session) -> SessionState {
        SessionState(session)
    }

    /// The signed-in account, if any.
    pub async fn account(&self) -> Result<Option<Account>, SessionError> {
        Ok(self.0.get::<Account>(Self::SIGNED_IN).await?)
    }

    /// The signed-in merchant's connection as read with the session: `None` when it was not
    /// read that way, `Some(None)` when the merchant has no connection.
    pub async fn connection(&self) -> Option<Option<ConnectionSummary>> {
        self.0
            .get::<Option<ConnectionSummary>>(Self::CONNECTION)
            .await
            .ok()
            .flatten()
    }

    /// Whether the signed-in account gets emails, as read with the session (`None` when it
    /// was not read that way).
    pub async fn emails_on(&self) -> Option<bool> {
        self.0.get::<bool>(Self::EMAILS).await.ok().flatten()
    }

    /// Whether the signed-in account's address is verified, as read with the session.
    pub async fn email_verified(&self) -> Option<bool> {
        self.0.get::<bool>(Self::VERIFIED).await.ok().flatten()
    }

    /// Signs `account` in: a new session id first (no fixation), then the account, saved at
    /// once so the session has an id within this same response (OAuth state binding).
    pub async fn sign_in(&self, account: &Account) -> Result<(), SessionError> {
        self.0.cycle_id().await?;
        // A second factor given in this browser before counts for no one now.
        let _ = self.0.remove_value(Self::CONFIRMED_AT).await?;
        self.0.insert(Self::SIGNED_IN, account).await?;
        self.0.save().await?;
        Ok(())
    }

    /// The password was right; the second factor is owed. Nobody is signed in meanwhile
    /// (a new session id all the same).
    pub async fn await_second_factor(&self, pending: &PendingSignIn) -> Result<(), SessionError> {
        self.0.cycle_id().await?;
        let _ = self.0.remove_value(Self::SIGNED_IN).await?;
        let _ = self.0.remove_value(Self::CONFIRMED_AT).await?;
        self.0.insert(Self::PENDING, pending).await?;
        self.0.save().await?;
        Ok(())
    }

    /// Who owes a second factor in this session, if anyone.
    pub async fn pending_second_factor(&self) -> Option<PendingSignIn> {
        self.0.get::<PendingSignIn>(Self::PENDING).await.ok().flatten()
    }

    /// The second factor was given at `now`: signed in (a new session id again).
    pub async fn second_factor_given(&self, account: &Account, now: i64) -> Result<(), SessionError> {
        let _ = self.0.remove_value(Self::PENDING).await?;
        self.sign_in(account).await?;
        self.confirmed(now).await
    }

    /// When a second factor was last given in this session, if ever.
    pub async fn confirmed_at(&self) -> Option<i64> {
        self.0.get::<i64>(Self::CONFIRMED_AT).await.ok().flatten()
    }

    /// A second factor was given again at `now` (a confirmation before a sensitive action).
    pub async fn confirmed(&self, now: i64) -> Result<(), SessionError> {
        self.0.insert(Self::CONFIRMED_AT, now).await?;
        self.0.save().await?;
        Ok(())
    }

    /// Keeps recovery codes (sealed) for the one page that shows them.
    pub async fn keep_recovery_codes(&self, sealed: &str) -> Result<(), SessionError> {
        self.0.insert(Self::RECOVERY, sealed).await?;
        self.0.save().await?;
        Ok(())
    }

    /// The recovery codes to show (sealed), taken: they are shown once.
    pub async fn take_recovery_codes(&self) -> Result<Option<String>, SessionError> {
        Ok(self.0.remove::<String>(Self::RECOVERY).await?)
    }

    /// Deletes the session on the server, not just the cookie.
    pub async fn sign_out(&self) -> Result<(), SessionError> {
        Ok(self.0.flush().await?)
    }

    /// Keeps an active session alive: at most every ten minutes the session is marked
    /// modified, which saves it with a new expiry and cookie.
    pub async fn keep_alive(&self, now: i64) {
        let last_seen = self.0.get::<i64>(Self::LAST_SEEN).await.ok().flatten().unwrap_or(0);
        if now - last_seen > TOUCH_EVERY_SECONDS {
            let _ = self.0.insert(Self::LAST_SEEN, now).await;
        }
    }

    /// Remembers that this session came from a platform's connect session: pages offer the
    /// way back to the platform.
    pub async fn set_platform_return(&self, back: &PlatformReturn) -> Result<(), SessionError> {
        self.0.insert(Self::PLATFORM_RETURN, back).await?;
        self.0.save().await?;
        Ok(())
    }

    /// Where this session's connect session returns to, if it came from one.
    pub async fn platform_return(&self) -> Option<PlatformReturn> {
        self.0.get::<PlatformReturn>(Self::PLATFORM_RETURN).await.ok().flatten()
    }

    /// The session id, once the session is stored.
    pub fn id(&self) -> Option<String> {
        self.0.id().map(|id| id.to_string())
    }
}

/// tower-sessions' store on the app's database.
///
/// - Rows are keyed by [`stored_id`], the SHA-256 of the session id, never the id itself.
/// - A session lives [`INACTIVITY_LIMIT`] after its last save and never more than
///   [`ABSOLUTE_LIMIT`] after it was created (sign-in), by the store's clock.
/// - Saving never re-creates a session that is gone: a request still in flight when its
///   session was deleted (log-out) cannot bring it back.
/// - Loading reads the signed-in account's current email and role in the same query; a
///   session whose account was deleted is ended.
#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Database,
    clock: Clock,
}

impl DbSessionStore {
    pub fn new(db: Database, clock: Clock) -> DbSessionStore {
        DbSessionStore { db, clock }
    }
}

fn backend(error: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

/// What the store keeps for a session id: its SHA-256, hex. The cookie's value (128
/// random bits) is never stored, so a copy of the database opens no session.
pub fn stored_id(id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn encode(record: &Record) -> session_store::Result<(Vec<u8>, Option<i64>)> {
    let mut data = record.data.clone();
    data.remove(SessionState::CONNECTION);
    data.remove(SessionState::EMAILS);
    data.remove(SessionState::VERIFIED);
    let data = serde_json::to_vec(&data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    // The account signed in, or the one whose log-in waits for its second factor: ending
    // an account's sessions (removal, reset, deletion) ends both.
    let account_id = record
        .data
        .get(SessionState::SIGNED_IN)
        .or_else(|| record.data.get(SessionState::PENDING).and_then(|p| p.get("account")))
        .and_then(|account| account.get("id"))
        .and_then(serde_json::Value::as_i64);
    Ok((data, account_id))
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let (data, account_id) = encode(record)?;
        let now = self.clock.now();
        let expiry = now + INACTIVITY_LIMIT.whole_seconds();
        // A fresh id until one is free (collisions of 128 random bits are theoretical).
        loop {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, data, expiry_date, created_at, account_id) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(stored_id(&record.id.to_string()))
            .bind(&data)
            .bind(expiry)
            .bind(now)
            .bind(account_id)
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (data, account_id) = encode(record)?;
        let now = self.clock.now();
        // Only a session that still exists is saved: no upsert.
        sqlx::query(
            "UPDATE sessions SET data = $2, account_id = $3, \
             expiry_date = CASE WHEN $4 < created_at + $5 THEN $4 ELSE created_at + $5 END \
             WHERE id = $1 AND expiry_date > $6",
        )
        .bind(stored_id(&record.id.to_string()))
        .bind(&data)
        .bind(account_id)
        .bind(now + INACTIVITY_LIMIT.whole_seconds())
        .bind(ABSOLUTE_LIMIT.whole_seconds())
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        // One round trip: the session, its account as it is now, the merchant's connection.
        let row = sqlx::query(&format!(
            "SELECT s.data, s.expiry_date, s.account_id, m.id AS member_id, m.email, m.role, \
             m.email_notifications AS m_emails, m.email_verified_at AS m_verified, {SUMMARY_COLUMNS} \
             FROM sessions s LEFT JOIN merchants m ON m.id = s.account_id \
             AND m.removed_at IS NULL AND m.deleted_at IS NULL \
             LEFT JOIN connections c ON c.merchant_id = m.id WHERE s.id = $1 AND s.expiry_date > $2"
        ))
        .bind(stored_id(&session_id.to_string()))
        .bind(self.clock.now())
        .fetch_optional(self.db.pool())
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let account_id: Option<i64> = row.try_get("account_id").map_err(backend)?;
        let member_id: Option<i64> = row.try_get("member_id").map_err(backend)?;
        if account_id.is_some() && member_id.is_none() {
            // The account is gone (or removed, or deleted): so is its session.
            self.delete(session_id).await?;
            return Ok(None);
        }
        let data: Vec<u8> = row.try_get("data").map_err(backend)?;
        let expiry: i64 = row.try_get("expiry_date").map_err(backend)?;
        let mut data: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_slice(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        // Only a session that was signed in is refreshed as signed in (a pending log-in
        // names its account too, and stays pending).
        let signed_in = data.contains_key(SessionState::SIGNED_IN);
        if let Some(id) = member_id.filter(|_| signed_in) {
            let role: String = row.try_get("role").map_err(backend)?;
            let account = Account {
                id,
                email: row.try_get("email").map_err(backend)?,
                role: if role == "operator" {
                    Role::Operator
                } else {
                    Role::Merchant
                },
            };
            let encode_error = |e: serde_json::Error| session_store::Error::Encode(e.to_string());
            data.insert(
                SessionState::SIGNED_IN.to_string(),
                serde_json::to_value(&account).map_err(encode_error)?,
            );
            let summary = summary_from_row(&row).map_err(backend)?;
            data.insert(
                SessionState::CONNECTION.to_string(),
                serde_json::to_value(summary).map_err(encode_error)?,
            );
            let emails: i64 = row.try_get("m_emails").map_err(backend)?;
            data.insert(SessionState::EMAILS.to_string(), serde_json::Value::Bool(emails != 0));
            let verified: Option<i64> = row.try_get("m_verified").map_err(backend)?;
            data.insert(
                SessionState::VERIFIED.to_string(),
                serde_json::Value::Bool(verified.is_some()),
            );
        } else {
            data.remove(SessionState::SIGNED_IN);
            data.remove(SessionState::EMAILS);
            data.remove(SessionState::VERIFIED);
        }
        Ok(Some(Record {
            id: *session_id,
            data,
            expiry_date: OffsetDateTime::from_unix_timestamp(expiry)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(stored_id(&session_id.to_string()))
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expiry_date <= $1")
            .bind(self.clock.now())
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
