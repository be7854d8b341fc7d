//! A merchant's account from first to last: the address proven by a link (24 h), the
//! password reset by a link (30 minutes) or changed, and the account deleted. Links are
//! single use; their secrets are stored as SHA-256, and sealed in the mail outbox until
//! the message is sent (see [`crate::mail`]).

use std::sync::Arc;

use sqlx::Row;

use crate::crypto::TokenCipher;
use crate::db::{Database, WriteTx};
use crate::mail::{link_hash, MailKind};
use crate::secret::random_urlsafe;
use crate::time::Clock;

/// How long a verification link works.
pub const VERIFY_HOURS: i64 = 24;
/// How long a password-reset link works.
pub const RESET_MINUTES: i64 = 30;
/// A new verification link at most this often per account.
pub const VERIFY_RESEND_SECONDS: i64 = 60;
/// Reset links per account per hour, and per client address per hour.
pub const RESETS_PER_ACCOUNT_PER_HOUR: i64 = 3;
pub const RESETS_PER_ADDRESS_PER_HOUR: i64 = 10;

pub const VERIFY_PATH: &str = "/verify-email/";
pub const RESET_PATH: &str = "/password-reset/";

/// Whether the signed-in account's address is verified, as read with the session (a
/// request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailVerified(pub bool);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
        }
    }

    fn mail_kind(self) -> MailKind {
        match self {
            Purpose::VerifyEmail => MailKind::VerifyEmail,
            Purpose::PasswordReset => MailKind::PasswordReset,
        }
    }

    fn path(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => VERIFY_PATH,
            Purpose::PasswordReset => RESET_PATH,
        }
    }

    fn lifetime(self) -> i64 {
        match self {
            Purpose::VerifyEmail => VERIFY_HOURS * 3600,
            Purpose::PasswordReset => RESET_MINUTES * 60,
        }
    }
}

/// What a request for a link came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Sent,
    /// Asked again too soon (or too often): nothing sent.
    TooSoon,
    /// No such account (or none that can use it): nothing sent; answered like `Sent`.
    Nobody,
}

/// Where a deleted account's address goes: unique, and no one's.
pub fn erased_email(account_id: i64) -> String {
    format!("deleted-{account_id}@deleted.invalid")
}

#[derive(Clone)]
pub struct AccountLinks {
    db: Database,
    clock: Clock,
    cipher: Arc<TokenCipher>,
}

impl std::fmt::Debug for AccountLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountLinks").finish_non_exhaustive()
    }
}

impl AccountLinks {
    pub fn new(db: Database, clock: Clock, cipher: Arc<TokenCipher>) -> AccountLinks {
        AccountLinks { db, clock, cipher }
    }

    /// Whether the account is a merchant's that is not deleted.
    pub async fn is_live_merchant(&self, account_id: i64) -> Result<bool, sqlx::Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM merchants WHERE id = $1 AND role = 'merchant' AND deleted_at IS NULL",
        )
        .bind(account_id)
        .fetch_one(self.db.pool())
        .await?;
        Ok(n == 1)
    }

    /// Whether the account's address is verified.
    pub async fn is_verified(&self, account_id: i64) -> Result<bool, sqlx::Error> {
        let at: Option<Option<i64>> = sqlx::query_scalar("SELECT email_verified_at FROM merchants WHERE id = $1")
            .bind(account_id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(at.flatten().is_some())
    }

    /// Sends (through the outbox) a verification link to the account's address, unless
    /// one went less than a minute ago or the address is verified.
    pub async fn send_verification(&self, account_id: i64) -> Result<Requested, sqlx::Error> {
        let row = sqlx::query("SELECT email, email_verified_at FROM merchants WHERE id = $1 AND deleted_at IS NULL")
            .bind(account_id)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(Requested::Nobody) };
        if row.try_get::<Option<i64>, _>("email_verified_at")?.is_some() {
            return Ok(Requested::Nobody);
        }
        let email: String = row.try_get("email")?;
        let now = self.clock.now();
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM account_tokens WHERE account_id = $1 AND purpose = 'verify_email' AND created_at > $2",
        )
        .bind(account_id)
        .bind(now - VERIFY_RESEND_SECONDS)
        .fetch_one(self.db.pool())
        .await?;
        if recent > 0 {
            return Ok(Requested::TooSoon);
        }
        self.issue(account_id, &email, Purpose::VerifyEmail, None).await?;
        Ok(Requested::Sent)
    }

    /// The address a verification link is for, if it can still be used.
    pub async fn verification_target(&self, token: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT m.email FROM account_tokens t JOIN merchants m ON m.id = t.account_id \
             WHERE t.token_hash = $1 AND t.purpose = 'verify_email' AND t.used_at IS NULL AND t.expires_at > $2 \
             AND m.deleted_at IS NULL",
        )
        .bind(link_hash(token))
        .bind(self.clock.now())
        .fetch_optional(self.db.pool())
        .await
    }

    /// Uses a verification link: the address is verified. Returns the account.
    pub async fn verify(&self, token: &str) -> Result<Option<i64>, sqlx::Error> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let account = use_link(&mut tx, Purpose::VerifyEmail, token, now).await?;
        if let Some(id) = account {
            sqlx::query("UPDATE merchants SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(account)
    }

    /// "Forgot your password?": a reset link to `email` if an account with a password has
    /// that address, within the limits per account and per client address. The caller
    /// answers the same whatever this returns.
    pub async fn request_reset(&self, email: &str, ip: &str) -> Result<Requested, sqlx::Error> {
        let ip = crate::accounts::client_key(ip);
        let normalized = email.trim().to_lowercase();
        let account: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, email FROM merchants WHERE email = $1 AND password_hash <> '' AND deleted_at IS NULL \
             AND removed_at IS NULL",
        )
        .bind(&normalized)
        .fetch_optional(self.db.pool())
        .await?;
        let Some((account_id, email)) = account else {
            return Ok(Requested::Nobody);
        };
        let issued = self
            .issue(account_id, &email, Purpose::PasswordReset, Some(&ip))
            .await?;
        Ok(if issued { Requested::Sent } else { Requested::TooSoon })
    }

    /// The account a reset link is for, if it can still be used (the page asks for the
    /// new password).
    pub async fn reset_target(&self, token: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT m.id, m.email FROM account_tokens t JOIN merchants m ON m.id = t.account_id \
             WHERE t.token_hash = $1 AND t.purpose = 'password_reset' AND t.used_at IS NULL AND t.expires_at > $2 \
             AND m.deleted_at IS NULL AND m.removed_at IS NULL",
        )
        .bind(link_hash(token))
        .bind(self.clock.now())
        .fetch_optional(self.db.pool())
        .await
    }

    /// Uses a reset link (once) with the new password's hash: the password is replaced,
    /// every session of the account ends, and so do its other reset links.
    pub async fn reset_password(&self, token: &str, password_hash: &str) -> Result<Option<i64>, sqlx::Error> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let Some(id) = use_link(&mut tx, Purpose::PasswordReset, token, now).await? else {
            return Ok(None);
        };
        // The link reached the address: it is verified too. A removed or deleted account
        // gets no password back.
        let set = sqlx::query(
            "UPDATE merchants SET password_hash = $1, email_verified_at = COALESCE(email_verified_at, $2) \
             WHERE id = $3 AND removed_at IS NULL AND deleted_at IS NULL",
        )
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if set.rows_affected() == 0 {
            return Ok(None);
        }
        end_reset_links(&mut tx, id, now).await?;
        sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Erases a deleted account (its connection disconnected first, by the caller): the
    /// address and business name leave every table that holds them (the merchant row
    /// keeps its id for the audit trails, with an address that is no one's), and nothing
    /// of the account can sign in, be emailed or be reset again. Returns the old address.
    pub async fn erase(&self, account_id: i64) -> Result<Option<String>, sqlx::Error> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let found: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT email, external_id FROM merchants WHERE id = $1 AND role = 'merchant' AND deleted_at IS NULL",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((email, external_id)) = found else {
            return Ok(None);
        };
        let erased = erased_email(account_id);
        sqlx::query(
            "UPDATE merchants SET email = $1, password_hash = '', deleted_at = $2, email_notifications = 0, \
             external_id = NULL, tags = NULL WHERE id = $3",
        )
        .bind(&erased)
        .bind(now)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        let business: Option<Option<String>> =
            sqlx::query_scalar("SELECT business_name FROM connections WHERE merchant_id = $1")
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
        // The Airwallex account's details (names, contact, address) go with the name.
        sqlx::query(
            "UPDATE connections SET business_name = NULL, account_json = NULL, account_fetched_at = NULL \
             WHERE merchant_id = $1",
        )
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        // Events the platform was (or is still to be) sent name the merchant: their copies
        // here forget the address and the name (a JSON string, replaced by null).
        const EVENTS: &str = "UPDATE platform_events SET payload = REPLACE(payload, $1, $2) \
             WHERE connection_id IN (SELECT id FROM connections WHERE merchant_id = $3)";
        let mut replacements = vec![(
            serde_json::to_string(&email).unwrap_or_default(),
            serde_json::to_string(&erased).unwrap_or_default(),
        )];
        if let Some(Some(name)) = business.filter(|b| b.as_ref().is_some_and(|n| !n.is_empty())) {
            replacements.push((
                format!("\"business_name\":{}", serde_json::to_string(&name).unwrap_or_default()),
                "\"business_name\":null".to_string(),
            ));
        }
        if let Some(external) = external_id {
            replacements.push((
                format!(
                    "\"external_id\":{}",
                    serde_json::to_string(&external).unwrap_or_default()
                ),
                "\"external_id\":null".to_string(),
            ));
        }
        for (from, to) in replacements {
            sqlx::query(EVENTS)
                .bind(from)
                .bind(to)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE mail_outbox SET recipient = $1, context = NULL WHERE account_id = $2")
            .bind(&erased)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        // Links still open for the account end: none can sign anyone in as it again.
        sqlx::query(
            "UPDATE connect_sessions SET business_name = NULL, \
             completed_at = CASE WHEN completed_at IS NULL THEN $2 ELSE completed_at END, \
             outcome = CASE WHEN outcome IS NULL THEN 'failed' ELSE outcome END, \
             reason = CASE WHEN reason IS NULL THEN 'account_deleted' ELSE reason END, \
             expires_at = CASE WHEN expires_at > $2 THEN $2 ELSE expires_at END WHERE merchant_id = $1",
        )
        .bind(account_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::accounts::end_access(&mut tx, account_id).await?;
        sqlx::query("DELETE FROM auth_attempts WHERE email = $1")
            .bind(&email)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(email))
    }

    /// A link for `purpose`, its email queued in the same transaction; a reset only within
    /// its limits per account and per client address, counted in the same transaction (the
    /// account's row locked on PostgreSQL, every write serialized on SQLite). Returns
    /// whether it was issued.
    async fn issue(
        &self,
        account_id: i64,
        email: &str,
        purpose: Purpose,
        ip: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let token = random_urlsafe(32);
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        if purpose == Purpose::PasswordReset {
            if self.db.engine() == crate::db::Engine::Postgres {
                sqlx::query("SELECT id FROM merchants WHERE id = $1 FOR UPDATE")
                    .bind(account_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let (by_account, by_address): (i64, i64) = sqlx::query_as(
                "SELECT \
                 (SELECT COUNT(*) FROM account_tokens WHERE account_id = $1 AND purpose = 'password_reset' AND created_at > $2), \
                 (SELECT COUNT(*) FROM account_tokens WHERE ip = $3 AND purpose = 'password_reset' AND created_at > $2)",
            )
            .bind(account_id)
            .bind(now - 3600)
            .bind(ip.unwrap_or_default())
            .fetch_one(&mut *tx)
            .await?;
            if by_account >= RESETS_PER_ACCOUNT_PER_HOUR || by_address >= RESETS_PER_ADDRESS_PER_HOUR {
                return Ok(false);
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO account_tokens (account_id, purpose, token_hash, ip, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(account_id)
        .bind(purpose.as_str())
        .bind(link_hash(&token))
        .bind(ip)
        .bind(now)
        .bind(now + purpose.lifetime())
        .fetch_one(&mut *tx)
        .await?;
        let link = crate::mail::SealedLink::seal(&self.cipher, "account_tokens", id, purpose.path(), &token, None);
        link.queue(&mut tx, purpose.mail_kind(), Some(account_id), email.to_string(), now)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Uses a link for `purpose` once, if it can still be used: the account it is for.
async fn use_link(tx: &mut WriteTx, purpose: Purpose, token: &str, now: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND purpose = $3 \
         AND used_at IS NULL AND expires_at > $1 RETURNING account_id",
    )
    .bind(now)
    .bind(link_hash(token))
    .bind(purpose.as_str())
    .fetch_optional(&mut **tx)
    .await
}

/// The account's reset links not used yet stop working, inside the caller's transaction.
pub(crate) async fn end_reset_links(tx: &mut WriteTx, account_id: i64, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE account_tokens SET used_at = $1 WHERE account_id = $2 AND purpose = 'password_reset' \
         AND used_at IS NULL",
    )
    .bind(now)
    .bind(account_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
