//! Who wants email: the account's switch on its connection page, and one-click unsubscribe.

use sqlx::Row;

use super::MailOutbox;

/// Whether the account signed in on this request gets emails, as read with its session
/// (left in the request's extensions by the server, read by the connection page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailChoice(pub bool);

impl MailOutbox {
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
        let mut tx = self.db.begin().await?;
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
        .bind(super::stored_unsubscribe_token(token))
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
