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
use super::mailbox::{KeptMail, LocalMailbox};
use super::smtp::transport;
pub use super::smtp::{check_smtp_url, parse_from, SmtpUrlError, CONNECTIONS, NOT_CONFIGURED};
use super::{MailKind, MailOutbox};
use crate::crypto::TokenCipher;
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
    /// Without `SMTP_URL`, keep what would be sent in a local mailbox (the embedded mode's
    /// `/mailbox`) instead of letting it wait.
    pub local_mailbox: bool,
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
            local_mailbox: false,
        }
    }
}

/// Queued messages; an address not verified yet gets only the link that verifies it (and
/// the links it asked for), the rest waits.
const MESSAGES: crate::outbox_queue::Queue = crate::outbox_queue::Queue {
    table: "mail_outbox",
    due_status: "queued",
    per_group: None,
    filter: "kind IN ('verify_email', 'password_reset', 'invitation', 'security_alert', 'digest') \
             OR account_id IN (SELECT id FROM merchants WHERE email_verified_at IS NOT NULL)",
};

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
    /// Opens what a message keeps sealed (an invitation's link).
    cipher: Option<Arc<TokenCipher>>,
    /// Without SMTP in the embedded mode: where messages go instead.
    mailbox: Option<LocalMailbox>,
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
        let settings_local_mailbox = settings.local_mailbox && transport.is_none();
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
            cipher: None,
            mailbox: settings_local_mailbox.then(LocalMailbox::default),
        })
    }

    /// The local mailbox, in the embedded mode without `SMTP_URL`.
    pub fn mailbox(&self) -> Option<Vec<KeptMail>> {
        self.mailbox.as_ref().map(LocalMailbox::messages)
    }

    /// The cipher that opens what messages keep sealed (an invitation's link).
    pub fn with_cipher(mut self, cipher: Arc<TokenCipher>) -> Mailer {
        self.cipher = Some(cipher);
        self
    }

    /// A link-carrying message's context for composing: who sent it, and the link (its
    /// secret opened here, at the last moment).
    fn link_context(&self, message: &Claimed) -> Result<String, String> {
        let link = message
            .context
            .as_deref()
            .and_then(super::SealedLink::from_json)
            .ok_or("the message has no link")?;
        let token = self
            .cipher
            .as_ref()
            .and_then(|cipher| cipher.open_text(&link.sealed, &link.aad()))
            .ok_or("the link cannot be opened (was the encryption key changed?)")?;
        Ok(serde_json::json!({
            "by": link.by,
            "url": format!("{}{}{token}", self.settings.public_url, link.path),
        })
        .to_string())
    }

    /// Whether messages go anywhere: an SMTP server, or the local mailbox (else they wait
    /// in the outbox).
    pub fn configured(&self) -> bool {
        self.transport.is_some() || self.mailbox.is_some()
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

    /// The message's words, with its links opened.
    fn compose(&self, message: &Claimed) -> Result<super::compose::Composed, String> {
        let unsubscribe_url = self.unsubscribe_url(&message.unsubscribe_token);
        let context = if message.kind.carries_link() {
            Some(self.link_context(message)?)
        } else {
            message.context.clone()
        };
        Ok(compose(&Letter {
            kind: message.kind,
            reason: message.reason.as_deref(),
            business_name: message.business_name.as_deref(),
            context: context.as_deref(),
            public_url: &self.settings.public_url,
            unsubscribe_url: &unsubscribe_url,
        }))
    }

    fn build(&self, message: &Claimed) -> Result<Message, String> {
        let unsubscribe_url = self.unsubscribe_url(&message.unsubscribe_token);
        let composed = self.compose(message)?;
        let to = message
            .recipient
            .parse::<Mailbox>()
            .map_err(|e| format!("the address cannot be used: {e}"))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(composed.subject)
            .message_id(Some(format!("<mail.{}@{}>", message.id, self.host)));
        if !message.kind.always_sent() {
            builder = builder
                .header(ListUnsubscribe(format!("<{unsubscribe_url}>")))
                .header(ListUnsubscribePost);
        }
        builder
            .header(AutoSubmitted)
            .multipart(MultiPart::alternative_plain_html(composed.text, composed.html))
            .map_err(|e| format!("the message cannot be built: {e}"))
    }

    /// Keeps the message in the local mailbox.
    fn keep(&self, mailbox: &LocalMailbox, message: &Claimed) -> Outcome {
        if !message.wanted {
            return Outcome::Suppressed;
        }
        match self.compose(message) {
            Ok(composed) => {
                mailbox.keep(KeptMail {
                    to: message.recipient.clone(),
                    subject: composed.subject,
                    text: composed.text,
                    at: self.clock.now(),
                });
                Outcome::Sent("kept in the local mailbox (no SMTP_URL): see /mailbox".into())
            }
            Err(problem) => Outcome::Refused(problem),
        }
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

    async fn claim(&self, limit: i64) -> Result<Vec<Claimed>, sqlx::Error> {
        if self.transport.is_none() && self.mailbox.is_none() {
            return Ok(Vec::new());
        }

        let ids = crate::outbox_queue::claim_due(
            &self.db,
            &MESSAGES,
            &self.instance,
            &self.settings.schedule,
            limit,
            self.clock.now(),
        )
        .await?;
        let rows = crate::outbox_queue::fetch_claimed(
            &self.db,
            "SELECT o.id, o.kind, o.reason, o.recipient, o.context, o.attempts, o.created_at, \
             m.email_notifications, c.business_name FROM mail_outbox o LEFT JOIN merchants m ON m.id = o.account_id \
             LEFT JOIN connections c ON c.id = o.connection_id WHERE o.id IN",
            &ids,
        )
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                let kind = MailKind::parse(&kind).unwrap_or(MailKind::Reconnect);
                let emails_on = r.try_get::<Option<i64>, _>("email_notifications")? == Some(1);
                Ok(Claimed {
                    id: r.try_get("id")?,
                    kind,
                    reason: r.try_get("reason")?,
                    recipient: r.try_get("recipient")?,
                    context: r.try_get("context")?,
                    unsubscribe_token: String::new(),
                    business_name: r.try_get("business_name")?,
                    wanted: kind.always_sent() || emails_on,
                    attempts: r.try_get("attempts")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Sends one message and records the outcome (only while this instance holds it).
    async fn deliver(&self, mut message: Claimed) {
        if self.transport.is_none() && self.mailbox.is_none() {
            return;
        }
        // A new unsubscribe token for this sending: the message carries it, the outbox keeps
        // only its hash.
        let token = random_urlsafe(24);
        let stored = sqlx::query("UPDATE mail_outbox SET unsubscribe_token = $1 WHERE id = $2 AND lease_owner = $3")
            .bind(super::stored_unsubscribe_token(&token))
            .bind(message.id)
            .bind(&self.instance)
            .execute(self.db.pool())
            .await;
        if let Err(error) = stored {
            tracing::warn!(%error, message = message.id, "an email's unsubscribe token could not be stored; sent later");
            return;
        }
        message.unsubscribe_token = token;
        let outcome = match (&self.transport, &self.mailbox) {
            (Some(transport), _) => self.attempt(transport, &message).await,
            (None, Some(mailbox)) => self.keep(mailbox, &message),
            (None, None) => return,
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
