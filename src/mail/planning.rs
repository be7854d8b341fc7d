//! What the planner queues on its own: expiry warnings for refresh tokens the keeper
//! could not rotate, and the operators' daily digest (only on days when something needs
//! attention).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{insert, MailKind, MailOutbox, NewMail, EXPIRY_WARNING_DAYS};

const DAY: i64 = 86_400;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BrokenConnection {
    pub connection_id: i64,
    pub email: String,
    pub business_name: Option<String>,
    pub reason: Option<String>,
    pub at: i64,
}

impl MailOutbox {
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
        let warnings = rows.into_iter().map(|row| {
            let connection_id: i64 = row.try_get("id")?;
            let expires_at: i64 = row.try_get("refresh_expires_at")?;
            NewMail::to_account(
                &row,
                MailKind::ExpiryWarning,
                format!("expiry_warning:{connection_id}:{expires_at}"),
                row.try_get("account_id")?,
                Some(connection_id),
                expires_at.to_string(),
            )
        });
        self.insert_each(warnings, now).await
    }

    async fn plan_digest(&self, day: i64, now: i64) -> Result<u64, sqlx::Error> {
        let operators = sqlx::query(
            "SELECT m.id, m.email, m.email_notifications FROM merchants m WHERE m.role = 'operator' AND m.removed_at IS NULL \
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
        let digests = operators.into_iter().map(|row| {
            let id: i64 = row.try_get("id")?;
            NewMail::to_account(
                &row,
                MailKind::Digest,
                format!("digest:{day}:{id}"),
                id,
                None,
                json.clone(),
            )
        });
        self.insert_each(digests, now).await
    }

    /// Writes each message in turn (stopping at the first that cannot be made or written);
    /// returns how many were written.
    async fn insert_each(
        &self,
        mails: impl Iterator<Item = Result<NewMail, sqlx::Error>>,
        now: i64,
    ) -> Result<u64, sqlx::Error> {
        let mut written = 0;
        for mail in mails {
            insert(self.db.pool(), mail?, now).await?;
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
        context.broke = sqlx::query_as::<_, BrokenConnection>(
            "SELECT e.connection_id, e.reason, e.created_at AS at, m.email, c.business_name FROM connection_events e \
             JOIN connections c ON c.id = e.connection_id JOIN merchants m ON m.id = c.merchant_id \
             WHERE e.kind IN ('revoked', 'needs_reconnect') AND e.created_at > $1 ORDER BY e.id DESC LIMIT 50",
        )
        .bind(since)
        .fetch_all(self.db.pool())
        .await?;
        context.broke_total = sqlx::query_scalar(
            "SELECT COUNT(*) FROM connection_events WHERE kind IN ('revoked', 'needs_reconnect') AND created_at > $1",
        )
        .bind(since)
        .fetch_one(self.db.pool())
        .await?;
        Ok(context)
    }
}
