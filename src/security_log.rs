//! The security log: what happened to the keys of the house (operator log-ins, second
//! factors, re-authentications, keys, webhook endpoints, invitations, removals, session
//! ends), append-only like the connection events (the database refuses updates and
//! deletes). Shown on the operators' team page and counted in `/metrics`.

use sqlx::Row;

use crate::db::Database;
use crate::time::Clock;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    /// An operator signed in (password and second factor).
    OperatorLogin,
    /// A wrong second-factor code (at log-in or at a confirmation).
    SecondFactorFailed,
    /// A second factor was set up (operators at their first log-in; merchants who chose one).
    SecondFactorEnrolled,
    /// A merchant turned their second factor off.
    SecondFactorRemoved,
    /// A recovery code stood in for the second factor.
    RecoveryCodeUsed,
    /// A fresh code before an action that can take data out.
    Reauthenticated,
    ApiKeyCreated,
    ApiKeyRevoked,
    WebhookEndpointRegistered,
    WebhookEndpointDisabled,
    /// A CSV audit was exported.
    CsvExported,
    ConnectLinkCreated,
    OperatorInvited,
    InvitationAccepted,
    OperatorRemoved,
    /// Every session of an account was ended ("log out everywhere").
    SessionsEnded,
    /// An operator deleted a merchant's account.
    MerchantDeleted,
    InvitationCancelled,
}

impl SecurityEventKind {
    pub const ALL: [SecurityEventKind; 18] = [
        SecurityEventKind::OperatorLogin,
        SecurityEventKind::SecondFactorFailed,
        SecurityEventKind::SecondFactorEnrolled,
        SecurityEventKind::SecondFactorRemoved,
        SecurityEventKind::RecoveryCodeUsed,
        SecurityEventKind::Reauthenticated,
        SecurityEventKind::ApiKeyCreated,
        SecurityEventKind::ApiKeyRevoked,
        SecurityEventKind::WebhookEndpointRegistered,
        SecurityEventKind::WebhookEndpointDisabled,
        SecurityEventKind::CsvExported,
        SecurityEventKind::ConnectLinkCreated,
        SecurityEventKind::OperatorInvited,
        SecurityEventKind::InvitationAccepted,
        SecurityEventKind::OperatorRemoved,
        SecurityEventKind::SessionsEnded,
        SecurityEventKind::MerchantDeleted,
        SecurityEventKind::InvitationCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::OperatorLogin => "operator_login",
            SecurityEventKind::SecondFactorFailed => "second_factor_failed",
            SecurityEventKind::SecondFactorEnrolled => "second_factor_enrolled",
            SecurityEventKind::SecondFactorRemoved => "second_factor_removed",
            SecurityEventKind::RecoveryCodeUsed => "recovery_code_used",
            SecurityEventKind::Reauthenticated => "reauthenticated",
            SecurityEventKind::ApiKeyCreated => "api_key_created",
            SecurityEventKind::ApiKeyRevoked => "api_key_revoked",
            SecurityEventKind::WebhookEndpointRegistered => "webhook_endpoint_registered",
            SecurityEventKind::WebhookEndpointDisabled => "webhook_endpoint_disabled",
            SecurityEventKind::CsvExported => "csv_exported",
            SecurityEventKind::ConnectLinkCreated => "connect_link_created",
            SecurityEventKind::OperatorInvited => "operator_invited",
            SecurityEventKind::InvitationAccepted => "invitation_accepted",
            SecurityEventKind::OperatorRemoved => "operator_removed",
            SecurityEventKind::SessionsEnded => "sessions_ended",
            SecurityEventKind::MerchantDeleted => "merchant_deleted",
            SecurityEventKind::InvitationCancelled => "invitation_cancelled",
        }
    }

    /// In a few words, for the team page.
    pub fn label(self) -> &'static str {
        match self {
            SecurityEventKind::OperatorLogin => "Operator signed in",
            SecurityEventKind::SecondFactorFailed => "Wrong second-factor code",
            SecurityEventKind::SecondFactorEnrolled => "Second factor set up",
            SecurityEventKind::SecondFactorRemoved => "Second factor turned off",
            SecurityEventKind::RecoveryCodeUsed => "Recovery code used",
            SecurityEventKind::Reauthenticated => "Confirmed with a code",
            SecurityEventKind::ApiKeyCreated => "API key created",
            SecurityEventKind::ApiKeyRevoked => "API key revoked",
            SecurityEventKind::WebhookEndpointRegistered => "Webhook endpoint registered",
            SecurityEventKind::WebhookEndpointDisabled => "Webhook endpoint disabled",
            SecurityEventKind::CsvExported => "CSV exported",
            SecurityEventKind::ConnectLinkCreated => "Connect link created",
            SecurityEventKind::OperatorInvited => "Operator invited",
            SecurityEventKind::InvitationAccepted => "Invitation accepted",
            SecurityEventKind::OperatorRemoved => "Operator removed",
            SecurityEventKind::SessionsEnded => "Sessions ended",
            SecurityEventKind::MerchantDeleted => "Merchant account deleted",
            SecurityEventKind::InvitationCancelled => "Invitation cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<SecurityEventKind> {
        SecurityEventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Who did it, and from where.
#[derive(Debug, Clone, Default)]
pub struct Actor<'a> {
    pub account_id: Option<i64>,
    pub email: Option<&'a str>,
    pub ip: Option<&'a str>,
}

impl<'a> Actor<'a> {
    /// A signed-in account, from client address `ip`. A merchant is logged by id only:
    /// the log is append-only, and a merchant who leaves takes their address along.
    pub fn of(account: &'a crate::accounts::Account, ip: Option<&'a str>) -> Actor<'a> {
        Actor {
            account_id: Some(account.id),
            email: (account.role == crate::accounts::Role::Operator).then_some(account.email.as_str()),
            ip,
        }
    }
}

/// One entry, as the team page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub id: i64,
    pub at: i64,
    pub kind: SecurityEventKind,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SecurityLog {
    db: Database,
    clock: Clock,
}

impl SecurityLog {
    pub fn new(db: Database, clock: Clock) -> SecurityLog {
        SecurityLog { db, clock }
    }

    /// Appends one entry. A log that cannot be written is logged as an error, never a
    /// reason to fail what was done (it is already done).
    pub async fn record(&self, kind: SecurityEventKind, actor: &Actor<'_>, subject: Option<&str>) {
        let _gate = self.db.write_gate().await;
        let written = sqlx::query(
            "INSERT INTO security_events (at, kind, account_id, actor, subject, ip) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(self.clock.now())
        .bind(kind.as_str())
        .bind(actor.account_id)
        .bind(actor.email)
        .bind(subject)
        .bind(actor.ip)
        .execute(self.db.pool())
        .await;
        if let Err(error) = written {
            tracing::error!(%error, kind = kind.as_str(), "the security log could not be written");
        }
    }

    /// The newest `limit` entries, newest first.
    pub async fn recent(&self, limit: i64) -> Result<Vec<SecurityEvent>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT id, at, kind, actor, subject, ip FROM security_events ORDER BY id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .filter_map(|row| {
                let kind: String = match row.try_get("kind") {
                    Ok(kind) => kind,
                    Err(error) => return Some(Err(error)),
                };
                let kind = SecurityEventKind::parse(&kind)?;
                Some((|| {
                    Ok(SecurityEvent {
                        id: row.try_get("id")?,
                        at: row.try_get("at")?,
                        kind,
                        actor: row.try_get("actor")?,
                        subject: row.try_get("subject")?,
                        ip: row.try_get("ip")?,
                    })
                })())
            })
            .collect()
    }

    /// How many entries of each kind (every kind, zeros included), for `/metrics`.
    pub async fn counts(&self) -> Result<Vec<(SecurityEventKind, i64)>, sqlx::Error> {
        let rows = sqlx::query("SELECT kind, CAST(COUNT(*) AS BIGINT) AS n FROM security_events GROUP BY kind")
            .fetch_all(self.db.pool())
            .await?;
        let mut counts: Vec<(SecurityEventKind, i64)> = SecurityEventKind::ALL.iter().map(|k| (*k, 0)).collect();
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let n: i64 = row.try_get("n")?;
            if let Some(entry) = counts.iter_mut().find(|(k, _)| k.as_str() == kind) {
                entry.1 = n;
            }
        }
        Ok(counts)
    }
}

/// The security log in Prometheus' text format.
pub fn render_counts(counts: &[(SecurityEventKind, i64)]) -> String {
    let mut text = String::from(
        "# HELP awx_security_events_total Entries of the security log, by kind.\n# TYPE awx_security_events_total counter\n",
    );
    for (kind, n) in counts {
        text.push_str(&format!(
            "awx_security_events_total{{kind=\"{}\"}} {n}\n",
            kind.as_str()
        ));
    }
    text
}
