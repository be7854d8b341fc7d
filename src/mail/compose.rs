//! The words of each message, as plain text and as simple HTML (no images, no remote
//! content, no tracking), with the link that fixes the problem and the way to stop them.

use super::{DigestContext, MailKind};
use crate::html::escape;
use crate::time::human_datetime;

/// A message ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What composing needs besides the outbox row.
#[derive(Debug, Clone)]
pub struct Letter<'a> {
    pub kind: MailKind,
    pub reason: Option<&'a str>,
    pub business_name: Option<&'a str>,
    pub context: Option<&'a str>,
    /// `PUBLIC_URL` without a trailing slash.
    pub public_url: &'a str,
    pub unsubscribe_url: &'a str,
}

/// Paragraphs of a message: each is plain text; a link is shown as its URL in the text
/// part and as a link in the HTML part.
enum Part {
    Text(String),
    Link { label: String, url: String },
    List(Vec<String>),
}

pub fn compose(letter: &Letter<'_>) -> Composed {
    let connection_url = format!("{}/connection", letter.public_url);
    let business = letter
        .business_name
        .filter(|n| !n.trim().is_empty())
        .map(|n| format!("your Airwallex account ({n})"))
        .unwrap_or_else(|| "your Airwallex account".to_string());
    let (subject, mut parts) = match letter.kind {
        MailKind::Reconnect => {
            let (subject, what) = reconnect_wording(letter.reason, &business);
            (
                subject.to_string(),
                vec![
                    Part::Text(what),
                    Part::Text("Until you reconnect, we cannot show your account or act on it.".into()),
                    Part::Link {
                        label: "Reconnect Airwallex".into(),
                        url: connection_url.clone(),
                    },
                    Part::Text("One click on that page starts the reconnection; your history is kept.".into()),
                ],
            )
        }
        MailKind::ExpiryWarning => {
            let when = letter
                .context
                .and_then(|c| c.parse::<i64>().ok())
                .map(human_datetime)
                .unwrap_or_else(|| "within a week".into());
            (
                format!("Your Airwallex connection stops working on {when}"),
                vec![
                    Part::Text(format!(
                        "Our access to {business} ends on {when}, and we have not been able to renew it."
                    )),
                    Part::Text("Reconnect before then to keep it working without a gap:".into()),
                    Part::Link {
                        label: "Reconnect Airwallex".into(),
                        url: connection_url.clone(),
                    },
                ],
            )
        }
        MailKind::Digest => digest(letter, &connection_url),
        MailKind::Invitation => invitation(letter),
        MailKind::SecurityAlert => security_alert(letter),
        MailKind::VerifyEmail => verify_email(letter),
        MailKind::PasswordReset => password_reset(letter),
    };
    match letter.kind {
        MailKind::Invitation | MailKind::VerifyEmail | MailKind::PasswordReset => {}
        MailKind::SecurityAlert => parts.push(Part::Text(
            "Every operator gets these alerts; they cannot be turned off, so that no one can act unseen.".into(),
        )),
        kind => {
            parts.push(Part::Text(match kind {
                MailKind::Digest => "You get this digest because you are an operator of awx-onboard, on days when \
                                     something needs attention."
                    .into(),
                _ => "You get this email because you connected Airwallex to awx-onboard.".into(),
            }));
            parts.push(Part::Link {
                label: "Stop these emails".into(),
                url: letter.unsubscribe_url.to_string(),
            });
        }
    }
    Composed {
        text: text_of(&parts),
        html: html_of(&subject, &parts),
        subject,
    }
}

fn reconnect_wording(reason: Option<&str>, business: &str) -> (&'static str, String) {
    match reason {
        Some("revoked") => (
            "Your Airwallex connection was disconnected",
            format!(
                "Airwallex told us that our access to {business} was removed. This happens when someone \
                 disconnects awx-onboard in Airwallex, or when the person who connected it is no longer an \
                 Owner, Admin or Finance Admin there."
            ),
        ),
        Some("refresh_expired") => (
            "Your Airwallex connection expired",
            format!("Our access to {business} ran out before we could renew it."),
        ),
        Some("refresh_rejected") => (
            "Action needed: reconnect Airwallex",
            format!("Airwallex refused to renew our access to {business}."),
        ),
        _ => (
            "Action needed: reconnect Airwallex",
            format!(
                "We could not confirm a renewal of our access to {business} with Airwallex, so we stopped \
                 using it to keep your account safe."
            ),
        ),
    }
}

/// A reconnection reason in a few words (`revoked` → "revoked on Airwallex").
pub fn reason_label(reason: &str) -> &'static str {
    match reason {
        "revoked" => "revoked on Airwallex",
        "refresh_rejected" => "refresh rejected",
        "refresh_expired" => "refresh token expired",
        "refresh_unconfirmed" => "refresh unconfirmed",
        _ => "other",
    }
}

fn digest(letter: &Letter<'_>, connection_url: &str) -> (String, Vec<Part>) {
    let context: DigestContext = letter
        .context
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let needing: i64 = context.needs_reconnect.iter().map(|(_, n)| n).sum();
    let subject = format!(
        "awx-onboard daily digest: {needing} need reconnection, {} broke since yesterday",
        context.broke_total
    );
    let mut counts = vec![
        format!("Connected: {}", context.connected),
        format!("Needs reconnection: {needing}"),
    ];
    for (reason, n) in &context.needs_reconnect {
        counts.push(format!("  {}: {n}", reason_label(reason)));
    }
    counts.push(format!(
        "Refresh tokens ending within 7 days: {}",
        context.expiring_soon
    ));
    counts.push(format!("Disconnected: {}", context.disconnected));
    let mut parts = vec![
        Part::Text(format!("Connections on {}:", human_datetime(context.day))),
        Part::List(counts),
    ];
    if context.broke_total > 0 {
        parts.push(Part::Text(format!(
            "Broke in the last 24 hours ({}{}):",
            context.broke_total,
            if context.broke_total as usize > context.broke.len() {
                format!(", the newest {}", context.broke.len())
            } else {
                String::new()
            }
        )));
        parts.push(Part::List(
            context
                .broke
                .iter()
                .map(|b| {
                    format!(
                        "{}{}: {} at {}",
                        b.email,
                        b.business_name
                            .as_deref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default(),
                        reason_label(b.reason.as_deref().unwrap_or("")),
                        human_datetime(b.at)
                    )
                })
                .collect(),
        ));
    }
    let dashboard = connection_url.trim_end_matches("/connection").to_string() + "/operator";
    parts.push(Part::Link {
        label: "Open the dashboard".into(),
        url: dashboard,
    });
    (subject, parts)
}

fn context_of(letter: &Letter<'_>) -> serde_json::Value {
    letter
        .context
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}

fn invitation(letter: &Letter<'_>) -> (String, Vec<Part>) {
    let context = context_of(letter);
    let by = context["by"].as_str().unwrap_or("An operator");
    let url = context["url"].as_str().unwrap_or_default().to_string();
    (
        "You are invited to operate awx-onboard".into(),
        vec![
            Part::Text(format!(
                "{by} invited you to become an operator of awx-onboard, where merchants' Airwallex connections \
                 are kept. Choose your password and set up your second factor here:"
            )),
            Part::Link {
                label: "Accept the invitation".into(),
                url,
            },
            Part::Text(format!(
                "The link works once, for {} hours. If you did not expect it, ignore this email.",
                crate::operator::team::INVITATION_HOURS
            )),
        ],
    )
}

fn verify_email(letter: &Letter<'_>) -> (String, Vec<Part>) {
    let url = context_of(letter)["url"].as_str().unwrap_or_default().to_string();
    (
        "Confirm your email address for awx-onboard".into(),
        vec![
            Part::Text(
                "Someone (we hope you) signed up to awx-onboard with this address. Confirm it, so that we can \
                 tell you when your Airwallex connection needs you:"
                    .into(),
            ),
            Part::Link {
                label: "Confirm my email address".into(),
                url,
            },
            Part::Text(format!(
                "The link works once, for {} hours. If you did not sign up, ignore this email: we will not write \
                 to this address again.",
                crate::accounts::lifecycle::VERIFY_HOURS
            )),
        ],
    )
}

fn password_reset(letter: &Letter<'_>) -> (String, Vec<Part>) {
    let url = context_of(letter)["url"].as_str().unwrap_or_default().to_string();
    (
        "Reset your awx-onboard password".into(),
        vec![
            Part::Text("Someone asked to reset the password of the awx-onboard account with this address.".into()),
            Part::Link {
                label: "Choose a new password".into(),
                url,
            },
            Part::Text(format!(
                "The link works once, for {} minutes; using it logs you out everywhere. If you did not ask, \
                 ignore this email: your password stays as it is.",
                crate::accounts::lifecycle::RESET_MINUTES
            )),
        ],
    )
}

fn security_alert(letter: &Letter<'_>) -> (String, Vec<Part>) {
    let context = context_of(letter);
    let what = context["what"]
        .as_str()
        .unwrap_or("Something changed in the operators' area")
        .to_string();
    (
        format!("awx-onboard security alert: {what}"),
        vec![
            Part::Text(format!("{what}.")),
            Part::Text("If this was not expected, revoke it and review the security log:".into()),
            Part::Link {
                label: "Open the team page".into(),
                url: format!("{}/operator/team", letter.public_url),
            },
        ],
    )
}

fn text_of(parts: &[Part]) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Link { label, url } => out.push_str(&format!("{label}: {url}")),
            Part::List(items) => out.push_str(&items.iter().map(|i| format!("- {i}")).collect::<Vec<_>>().join("\n")),
        }
        out.push_str("\n\n");
    }
    out
}

fn html_of(subject: &str, parts: &[Part]) -> String {
    let mut body = String::new();
    for part in parts {
        match part {
            Part::Text(t) => body.push_str(&format!("<p>{}</p>", escape(t))),
            Part::Link { label, url } => body.push_str(&format!(
                "<p><a href=\"{}\" style=\"color:#0b57d0\">{}</a></p>",
                escape(url),
                escape(label)
            )),
            Part::List(items) => {
                body.push_str("<ul>");
                for item in items {
                    body.push_str(&format!("<li>{}</li>", escape(item.trim())));
                }
                body.push_str("</ul>");
            }
        }
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head>\
         <body style=\"font-family:sans-serif;color:#1a1f2b;line-height:1.5\">{body}</body></html>",
        escape(subject)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(kind: MailKind, reason: Option<&'static str>) -> Letter<'static> {
        Letter {
            kind,
            reason,
            business_name: Some("Acme <Pty> Ltd"),
            context: None,
            public_url: "https://onboard.example.com",
            unsubscribe_url: "https://onboard.example.com/email/unsubscribe?t=abc",
        }
    }

    #[test]
    fn each_reason_has_its_own_words_and_the_link() {
        let mut subjects = Vec::new();
        for reason in ["revoked", "refresh_rejected", "refresh_expired", "refresh_unconfirmed"] {
            let mail = compose(&letter(MailKind::Reconnect, Some(reason)));
            assert!(mail.text.contains("https://onboard.example.com/connection"), "{reason}");
            assert!(mail.html.contains("href=\"https://onboard.example.com/connection\""));
            assert!(mail.text.contains("/email/unsubscribe?t=abc"));
            // Names are escaped in HTML, never markup.
            assert!(mail.html.contains("Acme &lt;Pty&gt; Ltd") && !mail.html.contains("<Pty>"));
            assert!(!mail.html.contains("<img"));
            subjects.push((mail.subject, mail.text));
        }
        assert!(subjects[0].1.contains("Owner, Admin or Finance Admin"));
        assert!(subjects[1].1.contains("refused to renew"));
        assert!(subjects[2].1.contains("ran out"));
        assert!(subjects[3].1.contains("could not confirm"));
    }

    #[test]
    fn the_digest_lists_counts_and_what_broke() {
        let context = DigestContext {
            day: 1_800_000_000 - 1_800_000_000 % 86_400,
            connected: 7,
            needs_reconnect: vec![("revoked".into(), 2), ("refresh_rejected".into(), 1)],
            expiring_soon: 4,
            broke: vec![super::super::BrokenConnection {
                connection_id: 3,
                email: "shop@example.com".into(),
                business_name: Some("Shop".into()),
                reason: Some("revoked".into()),
                at: 1_800_000_000,
            }],
            broke_total: 1,
            ..Default::default()
        };
        let json = serde_json::to_string(&context).unwrap();
        let mut l = letter(MailKind::Digest, None);
        l.context = Some(&json);
        let mail = compose(&l);
        assert!(
            mail.subject.contains("3 need reconnection, 1 broke"),
            "{}",
            mail.subject
        );
        assert!(mail.text.contains("Connected: 7"));
        assert!(mail.text.contains("revoked on Airwallex: 2"));
        assert!(mail.text.contains("ending within 7 days: 4"));
        assert!(mail.text.contains("shop@example.com (Shop): revoked on Airwallex"));
        assert!(mail.text.contains("https://onboard.example.com/operator"));
    }
}
