//! Email: where it goes (`SMTP_URL`), who sends it (`MAIL_FROM`) and when the operators'
//! digest is due (`DIGEST_HOUR_UTC`).

use secrecy::SecretString;
use url::Url;

use super::reader::Reader;

#[derive(Debug)]
pub struct MailConfig {
    /// `SMTP_URL`: where emails go; `None` keeps them in the outbox.
    pub smtp_url: Option<SecretString>,
    /// `MAIL_FROM`: the sender of every email.
    pub from: String,
    /// `DIGEST_HOUR_UTC`: from this hour on, the operators' daily digest is due.
    pub digest_hour: u32,
    /// In the embedded mode without `SMTP_URL`: messages go to the local mailbox at
    /// `/mailbox` (`LOCAL_MAILBOX`, on by default there).
    pub local_mailbox: bool,
}

pub(super) fn read(r: &mut Reader, public_url: Option<&Url>, sim: bool) -> MailConfig {
    let smtp_url = r.raw("SMTP_URL");
    if let Some(Err(problem)) = smtp_url.as_deref().map(awx_onboard::mail::sender::check_smtp_url) {
        r.fail("SMTP_URL", problem.to_string());
    }
    let from = r.raw("MAIL_FROM").unwrap_or_else(|| {
        let host = public_url
            .and_then(|u| u.host_str().map(str::to_string))
            .filter(|h| h.contains('.') && h.parse::<std::net::IpAddr>().is_err())
            .unwrap_or_else(|| "localhost.localdomain".into());
        format!("awx-onboard <no-reply@{host}>")
    });
    if let Err(problem) = awx_onboard::mail::sender::parse_from(&from) {
        r.fail("MAIL_FROM", problem.to_string());
    }
    let digest_hour = match r.raw("DIGEST_HOUR_UTC") {
        None => 7,
        Some(value) => match value.parse::<u32>() {
            Ok(hour) if hour < 24 => hour,
            _ => {
                r.fail(
                    "DIGEST_HOUR_UTC",
                    format!("must be an hour from 0 to 23, got {value:?}"),
                );
                7
            }
        },
    };
    let local_mailbox = r.flag("LOCAL_MAILBOX", true) && sim && smtp_url.is_none();
    MailConfig {
        smtp_url: smtp_url.map(SecretString::from),
        from,
        digest_hour,
        local_mailbox,
    }
}
