//! Sends the outbox over SMTP (lettre, tokio, rustls), on every instance: due messages
//! are claimed under a lease so that one instance sends each; a temporary refusal or an
//! unreachable server is retried with backoff, a permanent refusal fails the message at
//! once (an operator can resend it). A crash between the server's "250" and the record of
//! it sends the message again: at least once, with the same `Message-ID` so that a
//! receiving system can tell.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;
use tokio::sync::watch;

use super::compose::{compose, Letter};
use super::headers::{AutoSubmitted, ListUnsubscribe, ListUnsubscribePost};
use super::smtp::transport;
pub use super::smtp::{check_smtp_url, parse_from, SmtpUrlError, CONNECTIONS, NOT_CONFIGURED};
use super::{MailKind, MailOutbox};
use crate::db::Database;
use crate::outbox_queue::{Courier, Schedule};
use crate::secret::random_urlsafe;
use crate::time::Clock;

/// How the mailer works.
#[derive(Clone)]
pub struct MailSettings {
    /// `SMTP_URL`; `None`: messages are queued and wait.
    pub smtp_url: Option<SecretString>,
    /// `MAIL_FROM`.
    pub from: String,
    /// `PUBLIC_URL` without a trailing slash: links in messages point there.
    pub public_url: String,
    /// Leases, pace and retries; the timeout is per SMTP conversation.
    pub schedule: Schedule,
    /// How often to look for expiry warnings and the digest.
    pub plan_every: Duration,
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "[redacted]"))
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .field("schedule", &self.schedule)
            .finish_non_exhaustive()
    }
}

impl MailSettings {
    pub fn new(smtp_url: Option<SecretString>, from: String, public_url: String) -> MailSettings {
        MailSettings {
            smtp_url,
            from,
            public_url: public_url.trim_end_matches('/').to_string(),
            schedule: Schedule {
                lease: Duration::from_secs(60),
                timeout: Duration::from_secs(20),
                batch: 200,
                concurrency: CONNECTIONS as usize,
                poll: Duration::from_millis(500),
                retry_base: Duration::from_secs(10),
                give_up_after: Duration::from_secs(3 * 86_400),
            },
            plan_every: Duration::from_secs(60),
        }
    }
}

/// A claimed message with what sending it needs.
pub struct Claimed {
    id: i64,
    kind: MailKind,
    reason: Option<String>,
    recipient: String,
    context: Option<String>,
    unsubscribe_token: String,
    business_name: Option<String>,
    wanted: bool,
    attempts: i64,
    created_at: i64,
}

/// How one attempt ended.
enum Outcome {
    Sent(String),
    /// Not now: the server was unreachable or answered 4xx.
    Retry(String),
    /// Never: the server answered 5xx, or the message cannot be built.
    Refused(String),
    /// The recipient turned these emails off.
    Suppressed,
}

/// Sends due messages and plans new ones, on every instance.
pub struct Mailer {
    db: Database,
    clock: Clock,
    outbox: MailOutbox,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    settings: MailSettings,
    instance: String,
    host: String,
    /// When expiry warnings and the digest were last planned.
    planned: Mutex<Option<Instant>>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(db: Database, clock: Clock, outbox: MailOutbox, settings: MailSettings) -> Result<Mailer, SmtpUrlError> {
        let transport = settings
            .smtp_url
            .as_ref()
            .map(|url| transport(url.expose_secret(), settings.schedule.timeout))
            .transpose()?;
        let from = parse_from(&settings.from)?;
        let host = url::Url::parse(&settings.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "awx-onboard.invalid".into());
        Ok(Mailer {
            db,
            clock,
            outbox,
            transport,
            from,
            settings,
            instance: format!("mailer-{}", random_urlsafe(6)),
            host,
            planned: Mutex::new(None),
        })
    }

    /// Whether an SMTP server is configured (else messages wait in the outbox).
    pub fn configured(&self) -> bool {
        self.transport.is_some()
    }

    pub fn outbox(&self) -> &MailOutbox {
        &self.outbox
    }

    /// Delivery rounds until `stop` turns true ([`crate::outbox_queue::run`]), planning
    /// expiry warnings and the digest between them.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        crate::outbox_queue::run(self, stop).await
    }

    /// One round: claims due messages and sends them. Returns how many it claimed (none
    /// without an SMTP server).
    pub async fn run_once(&self) -> Result<usize, sqlx::Error> {
        crate::outbox_queue::round(self).await
    }

    /// The unsubscribe link of a message.
    pub fn unsubscribe_url(&self, token: &str) -> String {
        format!("{}/email/unsubscribe?t={token}", self.settings.public_url)
    }

    fn build(&self, message: &Claimed) -> Result<Message, String> {
        let unsubscribe_url = self.unsubscribe_url(&message.unsubscribe_token);
        let composed = compose(&Letter {
            kind: message.kind,
            reason: message.reason.as_deref(),
            business_name: message.business_name.as_deref(),
            context: message.context.as_deref(),
            public_url: &self.settings.public_url,
            unsubscribe_url: &unsubscribe_url,
        });
        let to = message
            .recipient
            .parse::<Mailbox>()
            .map_err(|e| format!("the address cannot be used: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(composed.subject)
            .message_id(Some(format!("<mail.{}@{}>", message.id, self.host)))
            .header(ListUnsubscribe(format!("<{unsubscribe_url}>")))
            .header(ListUnsubscribePost)
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(composed.text, composed.html))
            .map_err(|e| format!("the message cannot be built: {e}"))
    }

    async fn attempt(&self, transport: &AsyncSmtpTransport<Tokio1Executor>, message: &Claimed) -> Outcome {
        if !message.wanted {
            return Outcome::Suppressed;
        }
        let email = match self.build(message) {
            Ok(email) => email,
            Err(problem) => return Outcome::Refused(problem),
        };
        match transport.send(email).await {
            Ok(response) => Outcome::Sent(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Err(error) if error.is_permanent() => Outcome::Refused(error.to_string()),
            Err(error) => Outcome::Retry(error.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl Courier for Mailer {
    type Claimed = Claimed;
    const WHAT: &'static str = "email";

    fn schedule(&self) -> &Schedule {
        &self.settings.schedule
    }

    /// Expiry warnings and the digest are planned at most every `plan_every`.
    async fn before_round(&self) {
        let due = {
            let mut planned = self.planned.lock().unwrap_or_else(|p| p.into_inner());
            let due = planned.is_none_or(|at| at.elapsed() >= self.settings.plan_every);
            if due {
                *planned = Some(Instant::now());
            }
            due
        };
        if due {
            if let Err(error) = self.outbox.plan().await {
                tracing::warn!(%error, "planning emails failed; trying again later");
            }
        }
    }

    async fn claim(&self) -> Result<Vec<Claimed>, sqlx::Error> {
        if self.transport.is_none() {
            return Ok(Vec::new());
        }

        let ids = crate::outbox_queue::claim_due(
            &self.db,
            "mail_outbox",
            "queued",
            &self.instance,
            &self.settings.schedule,
            self.clock.now(),
        )
        .await?;
        let rows = crate::outbox_queue::fetch_claimed(
            &self.db,
            "SELECT o.id, o.kind, o.reason, o.recipient, o.context, o.unsubscribe_token, o.attempts, o.created_at, \
             m.email_notifications, c.business_name FROM mail_outbox o JOIN merchants m ON m.id = o.account_id \
             LEFT JOIN connections c ON c.id = o.connection_id WHERE o.id IN",
            &ids,
        )
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(Claimed {
                    id: r.try_get("id")?,
                    kind: MailKind::parse(&kind).unwrap_or(MailKind::Reconnect),
                    reason: r.try_get("reason")?,
                    recipient: r.try_get("recipient")?,
                    context: r.try_get("context")?,
                    unsubscribe_token: r.try_get("unsubscribe_token")?,
                    business_name: r.try_get("business_name")?,
                    wanted: r.try_get::<i64, _>("email_notifications")? != 0,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Sends one message and records the outcome (only while this instance holds it).
    async fn deliver(&self, message: Claimed) {
        let outcome = match &self.transport {
            Some(transport) => self.attempt(transport, &message).await,
            None => return,
        };
        let now = self.clock.now();
        let attempts = message.attempts + 1;
        let (status, answer, next, sent_at) = match outcome {
            Outcome::Sent(answer) => ("sent", answer, now, Some(now)),
            Outcome::Suppressed => (
                "suppressed",
                "not sent: the recipient turned these emails off".into(),
                now,
                None,
            ),
            Outcome::Refused(answer) => ("failed", answer, now, None),
            Outcome::Retry(answer) => match self.settings.schedule.retry_at(attempts, message.created_at, now) {
                Some(at) => ("queued", answer, at, None),
                None => ("failed", answer, now, None),
            },
        };
        crate::metrics::record_mail(status);
        if status != "sent" {
            tracing::info!(message = message.id, attempts, status, answer = %answer, "email not sent");
        }
        // A sent message keeps the instance that sent it in `lease_owner` (only queued
        // messages are claimed, so it holds nothing back).
        let result = sqlx::query(
            "UPDATE mail_outbox SET status = $1, attempts = $2, last_answer = $3, next_attempt_at = $4, sent_at = $5, \
             lease_owner = CASE WHEN $1 = 'sent' THEN lease_owner END, lease_until = NULL \
             WHERE id = $6 AND lease_owner = $7",
        )
        .bind(status)
        .bind(attempts)
        .bind(answer.chars().take(500).collect::<String>())
        .bind(next)
        .bind(sent_at)
        .bind(message.id)
        .bind(&self.instance)
        .execute(self.db.pool())
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, message = message.id, "an email's outcome could not be recorded; it will be sent again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_and_senders_are_checked() {
        for good in [
            "smtp://127.0.0.1:2525",
            "smtps://user:pass@smtp.example.com:465",
            "smtp://smtp.example.com:587?tls=required",
        ] {
            assert_eq!(check_smtp_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://smtp.example.com",
            "smtp://",
            "not a url",
            "smtp://host?tls=sometimes",
        ] {
            assert!(check_smtp_url(bad).is_err(), "{bad}");
        }
        assert!(parse_from("awx-onboard <no-reply@example.com>").is_ok());
        assert!(parse_from("no-reply").is_err());
        let settings = MailSettings::new(
            Some(SecretString::from("smtps://user:hunter2@smtp.example.com:465")),
            "a@b.example".into(),
            "https://x.example/".into(),
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert_eq!(settings.public_url, "https://x.example");
    }
}
