//! Email to the people who can fix a broken connection, from a durable outbox.
//!
//! A message is written to `mail_outbox` in the transaction that made it necessary (a
//! connection needing reconnection) or by the [`planner`](MailOutbox::plan) (a refresh token
//! about to die that the keeper could not rotate, the operators' daily digest). Each has a
//! dedupe key, so one incident gives one message however many instances notice it. The
//! [`sender`] claims due messages under a lease (one instance sends each), composes them
//! ([`compose`]) and hands them to SMTP, retrying with backoff: at least once.

pub mod compose;
pub mod sender;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};

use crate::db::Database;
use crate::secret::random_urlsafe;
use crate::time::Clock;

pub use sender::{MailSettings, Mailer, SmtpUrlError};

/// Days before a refresh token dies when its merchant is warned (if the keeper could not
/// rotate it by then).
pub const EXPIRY_WARNING_DAYS: i64 = 7;
const DAY: i64 = 86_400;

/// Whether the account signed in on this request gets emails, as read with its session
/// (left in the request's extensions by the server, read by the connection page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailChoice(pub bool);

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
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Reconnect => "reconnect",
            MailKind::ExpiryWarning => "expiry_warning",
            MailKind::Digest => "digest",
        }
    }

    pub fn parse(text: &str) -> Option<MailKind> {
        Some(match text {
            "reconnect" => MailKind::Reconnect,
            "expiry_warning" => MailKind::ExpiryWarning,
            "digest" => MailKind::Digest,
            _ => return None,
        })
    }
}

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

/// What the digest says, fixed when it is queued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestContext {
    /// The day it covers (unix seconds of its midnight, UTC).
    pub day: i64,
    pub connected: i64,
    pub disconnected: i64,
    /// Connections needing reconnection by reason.
    pub needs_reconnect: Vec<(String, i64)>,
    /// Refresh tokens dying within [`EXPIRY_WARNING_DAYS`].
    pub expiring_soon: i64,
    /// Connections that broke in the 24 hours before the digest (at most 50 listed).
    pub broke: Vec<BrokenConnection>,
    pub broke_total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenConnection {
    pub connection_id: i64,
    pub email: String,
    pub business_name: Option<String>,
    pub reason: Option<String>,
    pub at: i64,
}

/// A message as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub kind: MailKind,
    pub reason: Option<String>,
    pub recipient: String,
    pub connection_id: Option<i64>,
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
pub(crate) async fn enqueue_reconnect(
    tx: &mut Transaction<'_, Any>,
    connection_id: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
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
            account_id: row.try_get("account_id")?,
            connection_id: Some(connection_id),
            recipient: row.try_get("email")?,
            context: None,
            wanted: row.try_get::<i64, _>("email_notifications")? != 0,
        },
        now,
    )
    .await
}

struct NewMail {
    dedupe_key: String,
    kind: MailKind,
    reason: Option<String>,
    account_id: i64,
    connection_id: Option<i64>,
    recipient: String,
    context: Option<String>,
    /// False when the recipient turned these emails off: kept, as suppressed.
    wanted: bool,
}

/// Writes one message unless its dedupe key is already there.
async fn insert<'e, E>(executor: E, mail: NewMail, now: i64) -> Result<(), sqlx::Error>
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
    .bind(random_urlsafe(24))
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
    db: Database,
    clock: Clock,
    /// From this hour (UTC) on, the day's digest is due.
    digest_hour: u32,
}

impl MailOutbox {
    pub fn new(db: Database, clock: Clock, digest_hour: u32) -> MailOutbox {
        MailOutbox {
            db,
            clock,
            digest_hour: digest_hour.min(23),
        }
    }

    /// Queues what is due and not queued yet: expiry warnings, and the day's digest once
    /// its hour has come (only when something needs attention). Safe on every instance at
    /// once. Returns how many messages it wrote.
    pub async fn plan(&self) -> Result<u64, sqlx::Error> {
        let now = self.clock.now();
        let mut written = self.plan_expiry_warnings(now).await?;
        let day = now - now.rem_euclid(DAY);
        if now - day >= i64::from(self.digest_hour) * 3600 {
            written += self.plan_digest(day, now).await?;
        }
        Ok(written)
    }

    async fn plan_expiry_warnings(&self, now: i64) -> Result<u64, sqlx::Error> {
        // The expression matches the index on (status, COALESCE(refresh_expires_at, …)).
        let rows = sqlx::query(
            "SELECT c.id, c.refresh_expires_at, m.id AS account_id, m.email, m.email_notifications \
             FROM connections c JOIN merchants m ON m.id = c.merchant_id WHERE c.status = 'connected' \
             AND COALESCE(c.refresh_expires_at, 9000000000000000000) > $1 \
             AND COALESCE(c.refresh_expires_at, 9000000000000000000) <= $2 \
             AND NOT EXISTS (SELECT 1 FROM mail_outbox o WHERE o.dedupe_key = \
                 'expiry_warning:' || CAST(c.id AS TEXT) || ':' || CAST(c.refresh_expires_at AS TEXT))",
        )
        .bind(now)
        .bind(now + EXPIRY_WARNING_DAYS * DAY)
        .fetch_all(self.db.pool())
        .await?;
        let mut written = 0;
        for row in rows {
            let connection_id: i64 = row.try_get("id")?;
            let expires_at: i64 = row.try_get("refresh_expires_at")?;
            insert(
                self.db.pool(),
                NewMail {
                    dedupe_key: format!("expiry_warning:{connection_id}:{expires_at}"),
                    kind: MailKind::ExpiryWarning,
                    reason: None,
                    account_id: row.try_get("account_id")?,
                    connection_id: Some(connection_id),
                    recipient: row.try_get("email")?,
                    context: Some(expires_at.to_string()),
                    wanted: row.try_get::<i64, _>("email_notifications")? != 0,
                },
                now,
            )
            .await?;
            written += 1;
        }
        Ok(written)
    }

    async fn plan_digest(&self, day: i64, now: i64) -> Result<u64, sqlx::Error> {
        let operators = sqlx::query(
            "SELECT m.id, m.email, m.email_notifications FROM merchants m WHERE m.role = 'operator' \
             AND NOT EXISTS (SELECT 1 FROM mail_outbox o WHERE o.dedupe_key = \
                 'digest:' || CAST($1 AS TEXT) || ':' || CAST(m.id AS TEXT))",
        )
        .bind(day)
        .fetch_all(self.db.pool())
        .await?;
        if operators.is_empty() {
            return Ok(0);
        }
        let context = self.digest_context(day, now).await?;
        let needs_attention =
            context.needs_reconnect.iter().any(|(_, n)| *n > 0) || context.expiring_soon > 0 || context.broke_total > 0;
        if !needs_attention {
            return Ok(0);
        }
        let json = serde_json::to_string(&context).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let mut written = 0;
        for row in operators {
            let id: i64 = row.try_get("id")?;
            insert(
                self.db.pool(),
                NewMail {
                    dedupe_key: format!("digest:{day}:{id}"),
                    kind: MailKind::Digest,
                    reason: None,
                    account_id: id,
                    connection_id: None,
                    recipient: row.try_get("email")?,
                    context: Some(json.clone()),
                    wanted: row.try_get::<i64, _>("email_notifications")? != 0,
                },
                now,
            )
            .await?;
            written += 1;
        }
        Ok(written)
    }

    /// What today's digest would say.
    pub async fn digest_context(&self, day: i64, now: i64) -> Result<DigestContext, sqlx::Error> {
        let mut context = DigestContext {
            day,
            ..Default::default()
        };
        let rows =
            sqlx::query("SELECT status, status_reason, COUNT(*) AS n FROM connections GROUP BY status, status_reason")
                .fetch_all(self.db.pool())
                .await?;
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            match status.as_str() {
                "connected" => context.connected += n,
                "disconnected" => context.disconnected += n,
                _ => context.needs_reconnect.push((
                    row.try_get::<Option<String>, _>("status_reason")?
                        .unwrap_or_else(|| "unknown".into()),
                    n,
                )),
            }
        }
        context.needs_reconnect.sort();
        context.expiring_soon = sqlx::query_scalar(
            "SELECT COUNT(*) FROM connections WHERE status = 'connected' \
             AND COALESCE(refresh_expires_at, 9000000000000000000) > $1 \
             AND COALESCE(refresh_expires_at, 9000000000000000000) <= $2",
        )
        .bind(now)
        .bind(now + EXPIRY_WARNING_DAYS * DAY)
        .fetch_one(self.db.pool())
        .await?;
        let since = now - DAY;
        let broke = sqlx::query(
            "SELECT e.connection_id, e.reason, e.created_at, m.email, c.business_name FROM connection_events e \
             JOIN connections c ON c.id = e.connection_id JOIN merchants m ON m.id = c.merchant_id \
             WHERE e.kind IN ('revoked', 'needs_reconnect') AND e.created_at > $1 ORDER BY e.id DESC LIMIT 50",
        )
        .bind(since)
        .fetch_all(self.db.pool())
        .await?;
        for row in broke {
            context.broke.push(BrokenConnection {
                connection_id: row.try_get("connection_id")?,
                email: row.try_get("email")?,
                business_name: row.try_get("business_name")?,
                reason: row.try_get("reason")?,
                at: row.try_get("created_at")?,
            });
        }
        context.broke_total = sqlx::query_scalar(
            "SELECT COUNT(*) FROM connection_events WHERE kind IN ('revoked', 'needs_reconnect') AND created_at > $1",
        )
        .bind(since)
        .fetch_one(self.db.pool())
        .await?;
        Ok(context)
    }

    /// The newest messages, newest first, before `before_id` if given.
    pub async fn list(&self, before_id: Option<i64>, limit: i64) -> Result<Vec<OutboxEntry>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, kind, reason, recipient, connection_id, status, attempts, next_attempt_at, last_answer, \
             sent_at, created_at FROM mail_outbox WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(OutboxEntry {
                    id: r.try_get("id")?,
                    kind: MailKind::parse(&kind)
                        .ok_or_else(|| sqlx::Error::Decode(format!("unknown mail kind {kind:?}").into()))?,
                    reason: r.try_get("reason")?,
                    recipient: r.try_get("recipient")?,
                    connection_id: r.try_get("connection_id")?,
                    status: MailStatus::parse(&r.try_get::<String, _>("status")?),
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_answer: r.try_get("last_answer")?,
                    sent_at: r.try_get("sent_at")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
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

    /// Whether the account gets these emails.
    pub async fn emails_on(&self, account_id: i64) -> Result<bool, sqlx::Error> {
        let on: Option<i64> = sqlx::query_scalar("SELECT email_notifications FROM merchants WHERE id = $1")
            .bind(account_id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(on.unwrap_or(0) != 0)
    }

    /// Turns the account's emails on or off; off also holds back what is queued for it.
    pub async fn set_emails(&self, account_id: i64, on: bool) -> Result<(), sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        sqlx::query("UPDATE merchants SET email_notifications = $1 WHERE id = $2")
            .bind(i64::from(on))
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        if !on {
            sqlx::query(
                "UPDATE mail_outbox SET status = 'suppressed', lease_owner = NULL, lease_until = NULL \
                 WHERE account_id = $1 AND status = 'queued'",
            )
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    /// The address a message's unsubscribe token belongs to (for the confirmation page).
    pub async fn unsubscribe_target(&self, token: &str) -> Result<Option<(i64, String, bool)>, sqlx::Error> {
        if !plausible_token(token) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT m.id, m.email, m.email_notifications FROM mail_outbox o JOIN merchants m ON m.id = o.account_id \
             WHERE o.unsubscribe_token = $1",
        )
        .bind(token)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("email")?,
                r.try_get::<i64, _>("email_notifications")? != 0,
            ))
        })
        .transpose()
    }

    /// RFC 8058 one-click unsubscribe: turns the emails of the token's account off.
    /// Returns the address, or `None` for an unknown token.
    pub async fn unsubscribe(&self, token: &str) -> Result<Option<String>, sqlx::Error> {
        let Some((account_id, email, _)) = self.unsubscribe_target(token).await? else {
            return Ok(None);
        };
        self.set_emails(account_id, false).await?;
        Ok(Some(email))
    }
}

/// Tokens are 32 URL-safe characters; anything else is not looked up.
fn plausible_token(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
