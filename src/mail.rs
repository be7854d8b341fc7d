//! Email to the people who can fix a broken connection, from a durable outbox.
//!
//! A message is written to `mail_outbox` in the transaction that made it necessary (a
//! connection needing reconnection) or by the [`planner`](MailOutbox::plan) (a refresh token
//! about to die that the keeper could not rotate, the operators' daily digest). Each has a
//! dedupe key, so one incident gives one message however many instances notice it. The
//! [`sender`] claims due messages under a lease (one instance sends each), composes them
//! ([`compose`]) and hands them to SMTP, retrying with backoff: at least once.

pub mod compose;
mod headers;
pub mod mailbox;
mod planning;
mod preferences;
pub mod sender;
mod smtp;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Row};

use crate::db::WriteTx;

use crate::db::Database;
use crate::secret::random_urlsafe;
use crate::time::Clock;

pub use planning::{BrokenConnection, DigestContext};
pub use preferences::EmailChoice;
pub use sender::{MailSettings, Mailer, SmtpUrlError};

/// Days before a refresh token dies when its merchant is warned (if the keeper could not
/// rotate it by then).
pub const EXPIRY_WARNING_DAYS: i64 = 7;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// The merchant's connection needs reconnection (one per incident).
    Reconnect,
    /// The refresh token dies within [`EXPIRY_WARNING_DAYS`] and could not be rotated.
    ExpiryWarning,
    /// The operators' daily summary.
    Digest,
    /// An invitation to become an operator (its link sealed in `context`).
    Invitation,
    /// To every other operator: someone created a key or an endpoint that can take data out.
    SecurityAlert,
    /// A merchant's address is proven by the link in it (sealed in `context`).
    VerifyEmail,
    /// "Forgot your password?": the link that sets a new one (sealed in `context`).
    PasswordReset,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Reconnect => "reconnect",
            MailKind::ExpiryWarning => "expiry_warning",
            MailKind::Digest => "digest",
            MailKind::Invitation => "invitation",
            MailKind::SecurityAlert => "security_alert",
            MailKind::VerifyEmail => "verify_email",
            MailKind::PasswordReset => "password_reset",
        }
    }

    /// Messages no preference turns off: links the recipient asked for, and the alerts
    /// that tell operators what someone did with the keys of the house.
    pub fn always_sent(self) -> bool {
        matches!(
            self,
            MailKind::Invitation | MailKind::SecurityAlert | MailKind::VerifyEmail | MailKind::PasswordReset
        )
    }

    /// Messages that carry a single-use link, sealed in the outbox.
    pub fn carries_link(self) -> bool {
        matches!(
            self,
            MailKind::Invitation | MailKind::VerifyEmail | MailKind::PasswordReset
        )
    }

    pub fn parse(text: &str) -> Option<MailKind> {
        Some(match text {
            "reconnect" => MailKind::Reconnect,
            "expiry_warning" => MailKind::ExpiryWarning,
            "digest" => MailKind::Digest,
            "invitation" => MailKind::Invitation,
            "security_alert" => MailKind::SecurityAlert,
            "verify_email" => MailKind::VerifyEmail,
            "password_reset" => MailKind::PasswordReset,
            _ => return None,
        })
    }
}

crate::store::stored_name!(MailKind, "mail kind", MailKind::parse);

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailStatus {
    Queued,
    Sent,
    /// The server refused it for good, or retries ran out; an operator may resend.
    Failed,
    /// Its recipient turned these emails off.
    Suppressed,
}

impl MailStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MailStatus::Queued => "queued",
            MailStatus::Sent => "sent",
            MailStatus::Failed => "failed",
            MailStatus::Suppressed => "suppressed",
        }
    }

    pub fn parse(text: &str) -> MailStatus {
        match text {
            "sent" => MailStatus::Sent,
            "failed" => MailStatus::Failed,
            "suppressed" => MailStatus::Suppressed,
            _ => MailStatus::Queued,
        }
    }
}

/// A stored status, read as [`MailStatus::parse`] reads it (for `#[sqlx(try_from = "String")]`).
impl From<String> for MailStatus {
    fn from(text: String) -> MailStatus {
        MailStatus::parse(&text)
    }
}

/// A message as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: MailKind,
    pub reason: Option<String>,
    pub recipient: String,
    pub connection_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub status: MailStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_answer: Option<String>,
    pub sent_at: Option<i64>,
    pub created_at: i64,
}

/// Counts per status, for the outbox page's heading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
}

/// Queues the email for the connection's current incident, inside the transaction that
/// marked it as needing reconnection. The incident is the row's generation after the
/// change, so a second notice of the same incident writes nothing.
pub(crate) async fn enqueue_reconnect(tx: &mut WriteTx, connection_id: i64, now: i64) -> Result<(), sqlx::Error> {
    let row = sqlx::query(
        "SELECT c.generation, c.status_reason, m.id AS account_id, m.email, m.email_notifications \
         FROM connections c JOIN merchants m ON m.id = c.merchant_id WHERE c.id = $1",
    )
    .bind(connection_id)
    .fetch_one(&mut **tx)
    .await?;
    let generation: i64 = row.try_get("generation")?;
    insert(
        &mut **tx,
        NewMail {
            dedupe_key: format!("reconnect:{connection_id}:{generation}"),
            kind: MailKind::Reconnect,
            reason: row.try_get("status_reason")?,
            account_id: Some(row.try_get("account_id")?),
            connection_id: Some(connection_id),
            recipient: row.try_get("email")?,
            context: None,
            wanted: row.try_get::<i64, _>("email_notifications")? != 0,
        },
        now,
    )
    .await
}

pub(crate) struct NewMail {
    pub(crate) dedupe_key: String,
    pub(crate) kind: MailKind,
    pub(crate) reason: Option<String>,
    /// None for an address without an account (an invitation).
    pub(crate) account_id: Option<i64>,
    pub(crate) connection_id: Option<i64>,
    pub(crate) recipient: String,
    pub(crate) context: Option<String>,
    /// False when the recipient turned these emails off: kept, as suppressed.
    pub(crate) wanted: bool,
}

impl NewMail {
    /// A message to the account a row names: its `email`, and whether it wants these
    /// emails (`email_notifications`).
    pub(crate) fn to_account(
        row: &sqlx::any::AnyRow,
        kind: MailKind,
        dedupe_key: String,
        account_id: i64,
        connection_id: Option<i64>,
        context: String,
    ) -> Result<NewMail, sqlx::Error> {
        Ok(NewMail {
            dedupe_key,
            kind,
            reason: None,
            account_id: Some(account_id),
            connection_id,
            recipient: row.try_get("email")?,
            context: Some(context),
            wanted: row.try_get::<i64, _>("email_notifications")? != 0,
        })
    }
}

/// A message's single-use link, kept sealed under `TOKEN_ENCRYPTION_KEY` (bound to the
/// link's row) in the outbox's `context`, opened when the message is composed; the link's
/// row itself stores only the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedLink {
    /// The table and row of the link (what the sealed secret is bound to).
    pub table: String,
    pub id: i64,
    /// The link's path below `PUBLIC_URL`, to which the secret is appended.
    pub path: String,
    pub sealed: String,
    /// Who sent it (an invitation's operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl SealedLink {
    /// Seals `token` for the link at `path`, bound to its row (`table`, `id`).
    pub fn seal(
        cipher: &crate::crypto::TokenCipher,
        table: &str,
        id: i64,
        path: &str,
        token: &str,
        by: Option<String>,
    ) -> SealedLink {
        let mut link = SealedLink {
            table: table.to_string(),
            id,
            path: path.to_string(),
            sealed: String::new(),
            by,
        };
        link.sealed = cipher.seal_text(token, &link.aad());
        link
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Option<SealedLink> {
        serde_json::from_str(text).ok()
    }

    pub fn aad(&self) -> Vec<u8> {
        crate::crypto::associated_data(&self.table, self.id, "token")
    }

    /// Queues the message of `kind` that carries this link to `recipient`, in the caller's
    /// transaction: once per link (its dedupe key is the kind and the link's row), and
    /// whatever the recipient's preferences (they asked for it).
    pub(crate) async fn queue(
        &self,
        tx: &mut WriteTx,
        kind: MailKind,
        account_id: Option<i64>,
        recipient: String,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mail = NewMail {
            dedupe_key: format!("{}:{}", kind.as_str(), self.id),
            kind,
            reason: None,
            account_id,
            connection_id: None,
            recipient,
            context: Some(self.to_json()),
            wanted: true,
        };
        insert(&mut **tx, mail, now).await
    }
}

/// What a link's row stores of its secret: the SHA-256, in hex.
pub(crate) fn link_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What the outbox keeps of an unsubscribe token: `h:` and its SHA-256 (the token itself is
/// only in the message sent; a new one is made at each sending).
pub(crate) fn stored_unsubscribe_token(token: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("h:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// Replaces unsubscribe tokens stored as they are (before they were hashed) by their
/// hash, in batches; the links already sent keep working. Returns how many were replaced.
pub async fn hash_stored_unsubscribe_tokens(db: &Database) -> Result<u64, sqlx::Error> {
    let mut replaced = 0;
    loop {
        let rows = sqlx::query(
            "SELECT id, unsubscribe_token FROM mail_outbox WHERE unsubscribe_token NOT LIKE 'h:%' LIMIT 500",
        )
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(replaced);
        }
        let _gate = db.write_gate().await;
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let token: String = row.try_get("unsubscribe_token")?;
            replaced +=
                sqlx::query("UPDATE mail_outbox SET unsubscribe_token = $1 WHERE id = $2 AND unsubscribe_token = $3")
                    .bind(stored_unsubscribe_token(&token))
                    .bind(id)
                    .bind(&token)
                    .execute(db.pool())
                    .await?
                    .rows_affected();
        }
    }
}

/// Writes one message unless its dedupe key is already there.
pub(crate) async fn insert<'e, E>(executor: E, mail: NewMail, now: i64) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO mail_outbox (dedupe_key, kind, reason, account_id, connection_id, recipient, context, \
         unsubscribe_token, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $10) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(&mail.dedupe_key)
    .bind(mail.kind.as_str())
    .bind(mail.reason.as_deref())
    .bind(mail.account_id)
    .bind(mail.connection_id)
    .bind(&mail.recipient)
    .bind(mail.context.as_deref())
    // A placeholder until the message is sent (then a token is made and its hash kept).
    .bind(stored_unsubscribe_token(&random_urlsafe(24)))
    .bind(if mail.wanted {
        MailStatus::Queued.as_str()
    } else {
        MailStatus::Suppressed.as_str()
    })
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// The outbox as the rest of the app uses it: planning, the operators' view, opting out.
#[derive(Debug, Clone)]
pub struct MailOutbox {
    pub(crate) db: Database,
    pub(crate) clock: Clock,
    /// From this hour (UTC) on, the day's digest is due.
    pub(crate) digest_hour: u32,
}

impl MailOutbox {
    pub fn new(db: Database, clock: Clock, digest_hour: u32) -> MailOutbox {
        MailOutbox {
            db,
            clock,
            digest_hour: digest_hour.min(23),
        }
    }

    /// The newest messages, newest first, before `before_id` if given.
    pub async fn list(&self, before_id: Option<i64>, limit: i64) -> Result<Vec<OutboxEntry>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, kind, reason, recipient, connection_id, status, attempts, next_attempt_at, last_answer, \
             sent_at, created_at FROM mail_outbox WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await
    }

    pub async fn counts(&self) -> Result<OutboxCounts, sqlx::Error> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM mail_outbox GROUP BY status")
            .fetch_all(self.db.pool())
            .await?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let n: i64 = row.try_get("n")?;
            match MailStatus::parse(&row.try_get::<String, _>("status")?) {
                MailStatus::Queued => counts.queued = n,
                MailStatus::Sent => counts.sent = n,
                MailStatus::Failed => counts.failed = n,
                MailStatus::Suppressed => counts.suppressed = n,
            }
        }
        Ok(counts)
    }

    /// Sends a message again, at once (another full round of retries). False if there is
    /// no such message or it is queued already.
    pub async fn resend(&self, id: i64) -> Result<bool, sqlx::Error> {
        let now = self.clock.now();
        let done = sqlx::query(
            "UPDATE mail_outbox SET status = 'queued', attempts = 0, next_attempt_at = $1, created_at = $1, \
             lease_owner = NULL, lease_until = NULL WHERE id = $2 AND status <> 'queued'",
        )
        .bind(now)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
