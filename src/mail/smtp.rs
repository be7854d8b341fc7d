//! The SMTP side: `SMTP_URL` and `MAIL_FROM` checked, and the pooled transport built.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

/// The answer recorded for messages while no SMTP server is configured.
pub const NOT_CONFIGURED: &str = "not sent: no mail server configured";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpUrlError {
    #[error("must look like smtp://host:25, smtp://host:587?tls=required or smtps://user:password@host:465 ({0})")]
    BadUrl(String),
    #[error("must be an address like \"awx-onboard <no-reply@example.com>\" ({0})")]
    BadFrom(String),
}

/// Checks an `SMTP_URL` (without connecting, and outside a runtime too).
pub fn check_smtp_url(url: &str) -> Result<(), SmtpUrlError> {
    transport_builder(url).map(|_| ())
}

/// Checks a `MAIL_FROM`.
pub fn parse_from(from: &str) -> Result<Mailbox, SmtpUrlError> {
    from.parse::<Mailbox>()
        .map_err(|e| SmtpUrlError::BadFrom(e.to_string()))
}

/// SMTP connections kept open, and messages in flight at once. lettre writes a message's
/// end-of-data marker in a write of its own without `TCP_NODELAY`, so each message waits
/// for the server's delayed ACK (~40 ms on Linux): one connection carries at most ~25
/// messages a second, and throughput comes from parallel connections.
pub const CONNECTIONS: u32 = 16;

/// The transport; its connection pool needs the tokio runtime.
pub(super) fn transport(url: &str, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, SmtpUrlError> {
    Ok(transport_builder(url)?
        .timeout(Some(timeout))
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(CONNECTIONS))
        .build())
}

fn transport_builder(url: &str) -> Result<lettre::transport::smtp::AsyncSmtpTransportBuilder, SmtpUrlError> {
    let parsed = url::Url::parse(url).map_err(|e| SmtpUrlError::BadUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(SmtpUrlError::BadUrl("scheme smtp or smtps, and a host".into()));
    }
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        // lettre's message names the part that is wrong, never the password.
        .map_err(|e| SmtpUrlError::BadUrl(e.to_string()))
}
