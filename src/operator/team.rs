//! Operators managing operators: who they are (second factor on?, last log-in, active
//! sessions), invitations (a single-use link by email, 24 h, its secret stored as SHA-256
//! and sealed in the outbox), removal (never the last one) and ending every
//! session of an account ("log out everywhere").
//!
//! A removed operator's row stays (audit trails name it) without a password, second factor
//! or session: it can no longer sign in, and an invitation may bring the address back.

use std::sync::Arc;

use sqlx::Row;

use crate::accounts::{Account, Email, Role};
use crate::crypto::TokenCipher;
use crate::db::Database;
use crate::mail::{link_hash, MailKind, NewMail};
use crate::secret::random_urlsafe;
use crate::time::Clock;

/// How long an invitation link works.
pub const INVITATION_HOURS: i64 = 24;

/// An operator as the team page shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMember {
    pub id: i64,
    pub email: String,
    pub second_factor: bool,
    pub last_login_at: Option<i64>,
    pub active_sessions: i64,
}

/// An invitation not used yet.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Invitation {
    pub id: i64,
    pub email: String,
    pub invited_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    #[error("{0}")]
    InvalidEmail(String),
    #[error("that address is already an operator's")]
    AlreadyOperator,
    #[error("that address belongs to a merchant's account; invite another address")]
    MerchantAddress,
    #[error("the last operator cannot be removed (create another first)")]
    LastOperator,
    #[error("there is no operator with that number")]
    NotFound,
    #[error("this invitation link was used already, has expired, or never existed")]
    InvitationGone,
    #[error("database error")]
    Database,
}

crate::database_errors_are_logged!(TeamError => TeamError::Database, "operator team");

/// Where an invitation link points, below `PUBLIC_URL` (the secret follows).
pub const INVITATION_PATH: &str = "/invitation/";

#[derive(Clone)]
pub struct Team {
    db: Database,
    clock: Clock,
    cipher: Arc<TokenCipher>,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team").finish_non_exhaustive()
    }
}

const ACTIVE_OPERATOR: &str = "role = 'operator' AND removed_at IS NULL";

impl Team {
    pub fn new(db: Database, clock: Clock, cipher: Arc<TokenCipher>) -> Team {
        Team { db, clock, cipher }
    }

    /// Every operator, oldest first.
    pub async fn members(&self) -> Result<Vec<TeamMember>, TeamError> {
        let rows = sqlx::query(&format!(
            "SELECT m.id, m.email, m.last_login_at, \
             (SELECT COUNT(*) FROM second_factors f WHERE f.account_id = m.id AND f.confirmed_at IS NOT NULL) AS factors, \
             (SELECT COUNT(*) FROM sessions s WHERE s.account_id = m.id AND s.expiry_date > $1) AS live \
             FROM merchants m WHERE m.{ACTIVE_OPERATOR} ORDER BY m.id"
        ))
        .bind(self.clock.now())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TeamMember {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    last_login_at: row.try_get("last_login_at")?,
                    second_factor: row.try_get::<i64, _>("factors")? > 0,
                    active_sessions: row.try_get("live")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(TeamError::from)
    }

    /// Other operators who get emails (for the security alerts).
    pub(crate) async fn others(&self, except: i64) -> Result<Vec<(i64, String, bool)>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT id, email, email_notifications FROM merchants WHERE {ACTIVE_OPERATOR} AND id <> $1 ORDER BY id"
        ))
        .bind(except)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    row.try_get("email")?,
                    row.try_get::<i64, _>("email_notifications")? != 0,
                ))
            })
            .collect()
    }

    /// Invitations not used and not expired, newest first.
    pub async fn open_invitations(&self) -> Result<Vec<Invitation>, TeamError> {
        let invitations = sqlx::query_as::<_, Invitation>(
            "SELECT id, email, invited_by, created_at, expires_at FROM operator_invitations \
             WHERE used_at IS NULL AND expires_at > $1 ORDER BY id DESC",
        )
        .bind(self.clock.now())
        .fetch_all(self.db.pool())
        .await?;
        Ok(invitations)
    }

    /// Invites `email` to be an operator: the invitation and its email (through the
    /// outbox) in one transaction.
    pub async fn invite(&self, email: &str, by: &Account) -> Result<Invitation, TeamError> {
        let email = Email::parse(email).map_err(|e| TeamError::InvalidEmail(e.to_string()))?;
        let existing = sqlx::query("SELECT role, removed_at FROM merchants WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        if let Some(row) = existing {
            let role: String = row.try_get("role")?;
            let removed: Option<i64> = row.try_get("removed_at")?;
            match (role.as_str(), removed) {
                ("operator", None) => return Err(TeamError::AlreadyOperator),
                ("operator", Some(_)) => {}
                _ => return Err(TeamError::MerchantAddress),
            }
        }
        let token = random_urlsafe(32);
        let now = self.clock.now();
        let expires_at = now + INVITATION_HOURS * 3600;
        let mut tx = self.db.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO operator_invitations (email, token_hash, invited_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(email.as_str())
        .bind(link_hash(&token))
        .bind(&by.email)
        .bind(now)
        .bind(expires_at)
        .fetch_one(&mut *tx)
        .await?;
        let link = crate::mail::SealedLink::seal(
            &self.cipher,
            "operator_invitations",
            id,
            INVITATION_PATH,
            &token,
            Some(by.email.clone()),
        );
        link.queue(&mut tx, MailKind::Invitation, None, email.to_string(), now)
            .await?;
        tx.commit().await?;
        Ok(Invitation {
            id,
            email: email.to_string(),
            invited_by: by.email.clone(),
            created_at: now,
            expires_at,
        })
    }

    /// The invitation a link carries, if it can still be used.
    pub async fn invitation(&self, token: &str) -> Result<Option<Invitation>, TeamError> {
        let invitation = sqlx::query_as::<_, Invitation>(
            "SELECT id, email, invited_by, created_at, expires_at FROM operator_invitations \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(link_hash(token))
        .bind(self.clock.now())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(invitation)
    }

    /// Uses an invitation (once) with the invitee's password hash: the operator account
    /// exists afterwards (a removed operator's address comes back).
    pub async fn accept(&self, token: &str, password_hash: &str) -> Result<Account, TeamError> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let email: Option<String> = sqlx::query_scalar(
            "UPDATE operator_invitations SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING email",
        )
        .bind(now)
        .bind(link_hash(token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(email) = email else {
            return Err(TeamError::InvitationGone);
        };
        let id: Option<i64> = sqlx::query_scalar(
            // The invitation reached the address: verified.
            "INSERT INTO merchants (email, password_hash, role, created_at, email_verified_at) \
             VALUES ($1, $2, 'operator', $3, $3) \
             ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash, removed_at = NULL \
             WHERE merchants.role = 'operator' AND merchants.removed_at IS NOT NULL RETURNING id",
        )
        .bind(&email)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            // The address became someone's meanwhile.
            return Err(TeamError::MerchantAddress);
        };
        sqlx::query("UPDATE operator_invitations SET account_id = $1 WHERE token_hash = $2")
            .bind(id)
            .bind(link_hash(token))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Account {
            id,
            email,
            role: Role::Operator,
        })
    }

    /// Removes an operator (never the last one): no password, second factor or session
    /// is left. Returns their address.
    pub async fn remove(&self, id: i64) -> Result<String, TeamError> {
        let mut tx = self.db.begin().await?;
        if self.db.engine() == crate::db::Engine::Postgres {
            // Two operators removing each other at once: one waits for the other.
            sqlx::query("SELECT pg_advisory_xact_lock(727001)")
                .execute(&mut *tx)
                .await?;
        }
        let email: Option<String> = sqlx::query_scalar(&format!(
            "SELECT email FROM merchants WHERE id = $1 AND {ACTIVE_OPERATOR}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(email) = email else {
            return Err(TeamError::NotFound);
        };
        let active: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM merchants WHERE {ACTIVE_OPERATOR}"))
            .fetch_one(&mut *tx)
            .await?;
        if active <= 1 {
            return Err(TeamError::LastOperator);
        }
        sqlx::query("UPDATE merchants SET removed_at = $1, password_hash = '' WHERE id = $2")
            .bind(self.clock.now())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Nothing of theirs works afterwards: no factor, session or reset link, and no
        // invitation they sent (or that was sent to them) can still be used.
        crate::accounts::end_access(&mut tx, id).await?;
        sqlx::query(
            "UPDATE operator_invitations SET expires_at = $1 WHERE used_at IS NULL AND expires_at > $1 \
             AND (invited_by = $2 OR email = $2)",
        )
        .bind(self.clock.now())
        .bind(&email)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(email)
    }

    /// Cancels an open invitation (its link stops working). Returns its address.
    pub async fn cancel_invitation(&self, id: i64) -> Result<String, TeamError> {
        let _gate = self.db.write_gate().await;
        let email: Option<String> = sqlx::query_scalar(
            "UPDATE operator_invitations SET expires_at = $1 WHERE id = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING email",
        )
        .bind(self.clock.now())
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        email.ok_or(TeamError::NotFound)
    }

    /// Ends every session of an account. Returns how many there were.
    pub async fn end_sessions(&self, account_id: i64) -> Result<u64, TeamError> {
        let _gate = self.db.write_gate().await;
        let ended = sqlx::query("DELETE FROM sessions WHERE account_id = $1")
            .bind(account_id)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(ended)
    }

    /// The operator with this id, if active.
    pub async fn member_email(&self, id: i64) -> Result<Option<String>, TeamError> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT email FROM merchants WHERE id = $1 AND {ACTIVE_OPERATOR}"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// Emails every other operator about what `actor` did (a security alert through the
    /// outbox).
    pub async fn alert_others(&self, actor: &Account, what: &str) -> Result<usize, TeamError> {
        let others = self.others(actor.id).await?;
        let now = self.clock.now();
        let alert = random_urlsafe(9);
        let context = serde_json::json!({ "what": what }).to_string();
        let _gate = self.db.write_gate().await;
        for (id, email, wanted) in &others {
            crate::mail::insert(
                self.db.pool(),
                NewMail {
                    dedupe_key: format!("security_alert:{alert}:{id}"),
                    kind: MailKind::SecurityAlert,
                    reason: None,
                    account_id: Some(*id),
                    connection_id: None,
                    recipient: email.clone(),
                    context: Some(context.clone()),
                    wanted: *wanted,
                },
                now,
            )
            .await?;
        }
        Ok(others.len())
    }
}
