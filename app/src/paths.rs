//! Every path of the app, the notices pages show after a redirect, and the rule for
//! where a visitor may be sent back to. Pages, plain handlers, server functions and
//! tests use these; nothing else spells a path.

/// The home page.
pub const HOME: &str = "/";
pub const SIGNUP: &str = "/signup";
pub const LOGIN: &str = "/login";
pub const LOGOUT: &str = "/logout";
/// The merchant's connection page.
pub const CONNECTION: &str = "/connection";
pub const DISCONNECT: &str = "/connection/disconnect";
/// The merchant turns emails about their connection on or off.
pub const CONNECTION_EMAILS: &str = "/connection/emails";
/// The merchant's password and the way to leave.
pub const CONNECTION_ACCOUNT: &str = "/connection/account";
pub const CONNECTION_PASSWORD: &str = "/connection/password";
pub const CONNECTION_DELETE: &str = "/connection/delete";
/// Sends the verification link again.
pub const CONNECTION_VERIFY_EMAIL: &str = "/connection/verify-email";
/// Uses a verification link (public: the secret in it is the key).
pub const VERIFY_EMAIL_ROUTE: &str = "/verify-email/{secret}";
/// "Forgot your password?": asks for the address; the link's page sets a new password.
pub const PASSWORD_RESET: &str = "/password-reset";
pub const PASSWORD_RESET_ROUTE: &str = "/password-reset/{secret}";
/// What would have been sent, in the embedded mode without SMTP_URL.
pub const MAILBOX: &str = "/mailbox";
/// An operator deletes a merchant's account.
pub const OPERATOR_DELETE_MERCHANT_ROUTE: &str = "/operator/connections/{id}/delete-merchant";

pub fn operator_delete_merchant(id: i64) -> String {
    format!("{}/delete-merchant", operator_connection(id))
}

/// The merchant's own second factor: set up, or turned off.
pub const CONNECTION_SECOND_FACTOR: &str = "/connection/second-factor";
pub const CONNECTION_SECOND_FACTOR_OFF: &str = "/connection/second-factor/off";
/// RFC 8058 one-click unsubscribe (`?t=` the message's token); GET shows a confirmation.
pub const EMAIL_UNSUBSCRIBE: &str = "/email/unsubscribe";
/// One page per way the OAuth callback can fail (`?reason=`).
pub const CONNECT_PROBLEM: &str = "/connect/problem";
pub const OAUTH_START: &str = "/oauth/start";
/// A platform's connect link (public: the secret in it is the key).
pub const CONNECT_LINK_ROUTE: &str = "/connect-link/{secret}";
pub const OAUTH_CALLBACK: &str = "/oauth/callback";
/// The operator dashboard; every operator page lives below it.
pub const OPERATOR: &str = "/operator";
pub const WEBHOOK_AIRWALLEX: &str = "/webhooks/airwallex";
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
/// Where server functions answer (`#[server(prefix = …)]` defaults to it).
pub const SERVER_FNS: &str = "/api";
/// Operator server functions live below this.
pub const OPERATOR_SERVER_FNS: &str = "/api/operator";

/// Service keys of the platform API.
pub const OPERATOR_API_KEYS: &str = "/operator/api-keys";
pub const OPERATOR_API_KEY_REVOKE_ROUTE: &str = "/operator/api-keys/{id}/revoke";
/// The platform's webhook endpoints.
pub const OPERATOR_WEBHOOKS: &str = "/operator/webhooks";
/// Where an operator creates a connect link (shown on the API keys page).
pub const OPERATOR_CONNECT_LINKS: &str = "/operator/connect-links";
pub const OPERATOR_WEBHOOK_DISABLE_ROUTE: &str = "/operator/webhooks/{id}/disable";
pub const OPERATOR_DELIVERY_RESEND_ROUTE: &str = "/operator/webhooks/deliveries/{id}/resend";
/// The mail outbox.
pub const OPERATOR_EMAILS: &str = "/operator/emails";
/// Operators, invitations and the security log.
pub const OPERATOR_TEAM: &str = "/operator/team";
pub const OPERATOR_TEAM_INVITE: &str = "/operator/team/invite";
pub const OPERATOR_TEAM_REMOVE_ROUTE: &str = "/operator/team/{id}/remove";
pub const OPERATOR_TEAM_LOG_OUT_ROUTE: &str = "/operator/team/{id}/log-out-everywhere";
pub const OPERATOR_INVITATION_CANCEL_ROUTE: &str = "/operator/team/invitations/{id}/cancel";

pub fn operator_invitation_cancel(id: i64) -> String {
    format!("{OPERATOR_TEAM}/invitations/{id}/cancel")
}
/// "Confirm it's you" before an export (a GET) goes on.
pub const OPERATOR_CONFIRM: &str = "/operator/confirm";
/// An operator invitation's link (public: the secret in it is the key).
pub const INVITATION_ROUTE: &str = "/invitation/{secret}";

pub fn operator_team_remove(id: i64) -> String {
    format!("{OPERATOR_TEAM}/{id}/remove")
}

pub fn operator_team_log_out(id: i64) -> String {
    format!("{OPERATOR_TEAM}/{id}/log-out-everywhere")
}
pub const OPERATOR_EMAIL_RESEND_ROUTE: &str = "/operator/emails/{id}/resend";
/// Every token read, as CSV.
pub const OPERATOR_TOKEN_READS_CSV: &str = "/operator/token-reads.csv";
pub const OPERATOR_CONNECTION_TOKEN_READS_CSV_ROUTE: &str = "/operator/connections/{id}/token-reads.csv";
pub const OPERATOR_PROXY_CALLS_CSV: &str = "/operator/proxy-calls.csv";
pub const OPERATOR_CONNECTION_PROXY_CALLS_CSV_ROUTE: &str = "/operator/connections/{id}/proxy-calls.csv";

pub fn operator_connection_proxy_calls_csv(id: i64) -> String {
    OPERATOR_CONNECTION_PROXY_CALLS_CSV_ROUTE.replace("{id}", &id.to_string())
}

pub fn operator_api_key_revoke(id: &str) -> String {
    format!("{OPERATOR_API_KEYS}/{id}/revoke")
}

pub fn operator_webhook(id: i64) -> String {
    format!("{OPERATOR_WEBHOOKS}/{id}")
}

pub fn operator_webhook_disable(id: i64) -> String {
    format!("{OPERATOR_WEBHOOKS}/{id}/disable")
}

pub fn operator_delivery_resend(id: i64) -> String {
    format!("{OPERATOR_WEBHOOKS}/deliveries/{id}/resend")
}

pub fn operator_email_resend(id: i64) -> String {
    format!("{OPERATOR_EMAILS}/{id}/resend")
}

pub fn operator_connection_token_reads_csv(id: i64) -> String {
    format!("{}/token-reads.csv", operator_connection(id))
}

/// An operator's page of one connection.
pub fn operator_connection(id: i64) -> String {
    format!("{OPERATOR}/connections/{id}")
}

/// Route patterns (axum syntax) of the operator's actions on a connection.
pub const OPERATOR_REFRESH_ROUTE: &str = "/operator/connections/{id}/refresh";
pub const OPERATOR_CHECK_ROUTE: &str = "/operator/connections/{id}/check";

pub fn operator_refresh(id: i64) -> String {
    format!("{}/refresh", operator_connection(id))
}

pub fn operator_check(id: i64) -> String {
    format!("{}/check", operator_connection(id))
}

/// Who may enter a part of the app, by where it lives. Operator pages and server
/// functions live under [`OPERATOR`] and [`OPERATOR_SERVER_FNS`]; the merchant's under
/// [`CONNECTION`] and `/connect`. The server guards each area with one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Public,
    Merchant,
    Operator,
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

impl Area {
    pub fn of(path: &str) -> Area {
        if under(path, OPERATOR) || under(path, OPERATOR_SERVER_FNS) {
            Area::Operator
        } else if under(path, CONNECTION) || under(path, "/connect") || path == "/api/connection" {
            Area::Merchant
        } else {
            Area::Public
        }
    }

    /// Where a visitor of this area starts after logging in.
    pub fn home(self) -> &'static str {
        match self {
            Area::Operator => OPERATOR,
            Area::Merchant | Area::Public => CONNECTION,
        }
    }
}

/// A one-line message a page shows after a redirect (`?notice=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Welcome,
    Connected,
    Disconnected,
    SignedOut,
    LoginRequired,
    LoginToConnect,
    Refreshed,
    Checked,
    KeyRevoked,
    EndpointDisabled,
    Resent,
    EmailsOn,
    EmailsOff,
    Invited,
    OperatorRemoved,
    SessionsEnded,
    SecondFactorOff,
    VerificationSent,
    VerificationTooSoon,
    EmailVerified,
    PasswordChanged,
    PasswordReset,
    AccountDeleted,
    MerchantDeleted,
    InvitationCancelled,
}

/// How a notice looks: `ok` or `warn`.
pub type NoticeTone = &'static str;

impl Notice {
    pub const ALL: [Notice; 25] = [
        Notice::Welcome,
        Notice::Connected,
        Notice::Disconnected,
        Notice::SignedOut,
        Notice::LoginRequired,
        Notice::LoginToConnect,
        Notice::Refreshed,
        Notice::Checked,
        Notice::KeyRevoked,
        Notice::EndpointDisabled,
        Notice::Resent,
        Notice::EmailsOn,
        Notice::EmailsOff,
        Notice::Invited,
        Notice::OperatorRemoved,
        Notice::SessionsEnded,
        Notice::SecondFactorOff,
        Notice::VerificationSent,
        Notice::VerificationTooSoon,
        Notice::EmailVerified,
        Notice::PasswordChanged,
        Notice::PasswordReset,
        Notice::AccountDeleted,
        Notice::MerchantDeleted,
        Notice::InvitationCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Welcome => "welcome",
            Notice::Connected => "connected",
            Notice::Disconnected => "disconnected",
            Notice::SignedOut => "signed_out",
            Notice::LoginRequired => "login_required",
            Notice::LoginToConnect => "login_to_connect",
            Notice::Refreshed => "refreshed",
            Notice::Checked => "checked",
            Notice::KeyRevoked => "key_revoked",
            Notice::EndpointDisabled => "endpoint_disabled",
            Notice::Resent => "resent",
            Notice::EmailsOn => "emails_on",
            Notice::EmailsOff => "emails_off",
            Notice::Invited => "invited",
            Notice::OperatorRemoved => "operator_removed",
            Notice::SessionsEnded => "sessions_ended",
            Notice::SecondFactorOff => "second_factor_off",
            Notice::VerificationSent => "verification_sent",
            Notice::VerificationTooSoon => "verification_too_soon",
            Notice::EmailVerified => "email_verified",
            Notice::PasswordChanged => "password_changed",
            Notice::PasswordReset => "password_reset",
            Notice::AccountDeleted => "account_deleted",
            Notice::MerchantDeleted => "merchant_deleted",
            Notice::InvitationCancelled => "invitation_cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Notice> {
        Notice::ALL.into_iter().find(|n| n.as_str() == text)
    }

    pub fn message(self) -> (NoticeTone, &'static str) {
        match self {
            Notice::Welcome => (
                "ok",
                "Welcome! Your account is ready. Connect Airwallex to get started.",
            ),
            Notice::Connected => ("ok", "Your Airwallex account is connected."),
            Notice::Disconnected => (
                "ok",
                "Airwallex is disconnected. We deleted the access Airwallex gave us.",
            ),
            Notice::SignedOut => ("ok", "You are logged out."),
            Notice::LoginRequired => ("warn", "Log in to continue."),
            Notice::LoginToConnect => (
                "warn",
                "Log in to finish connecting Airwallex, then start the connection again.",
            ),
            Notice::Refreshed => ("ok", "Refresh requested. The result is the newest event below."),
            Notice::Checked => ("ok", "Checked with Airwallex. The result is the newest event below."),
            Notice::KeyRevoked => ("ok", "The key is revoked: it no longer works, on any instance."),
            Notice::EndpointDisabled => ("ok", "The endpoint is disabled: nothing more is sent to it."),
            Notice::Resent => ("ok", "Queued again: it goes out within seconds."),
            Notice::EmailsOn => ("ok", "Emails are on: we will write when your connection needs you."),
            Notice::EmailsOff => ("ok", "Emails are off: we will not write about your connection."),
            Notice::Invited => ("ok", "Invitation sent: the link in it works once, for 24 hours."),
            Notice::OperatorRemoved => (
                "ok",
                "The operator is removed: their sessions ended and they can no longer sign in.",
            ),
            Notice::SessionsEnded => ("ok", "Their sessions are ended, on every device."),
            Notice::SecondFactorOff => ("ok", "Your second factor is off: you log in with your password alone."),
            Notice::VerificationSent => ("ok", "A new link is on its way: it works once, for 24 hours."),
            Notice::VerificationTooSoon => (
                "warn",
                "A link went out less than a minute ago: give it a moment, then try again.",
            ),
            Notice::EmailVerified => ("ok", "Your email address is confirmed. Thank you!"),
            Notice::PasswordChanged => ("ok", "Your password is changed: your other sessions have ended."),
            Notice::PasswordReset => (
                "ok",
                "Your password is set: log in with it (every earlier session has ended).",
            ),
            Notice::AccountDeleted => (
                "ok",
                "Your account is deleted: your Airwallex connection is gone and we forgot your address.",
            ),
            Notice::MerchantDeleted => ("ok", "The merchant's account is deleted, and logged."),
            Notice::InvitationCancelled => ("ok", "The invitation is cancelled: its link no longer works."),
        }
    }
}

/// `path` with `?notice=` (or `&notice=` when it has a query already).
pub fn with_notice(path: &str, notice: Notice) -> String {
    let separator = if path.contains('?') { '&' } else { '?' };
    format!("{path}{separator}notice={}", notice.as_str())
}

/// A path on this site to continue to, never one a browser could resolve to another
/// origin. The one rule every redirect to a visitor-chosen target goes through.
///
/// Browsers (WHATWG URL parsing) drop tabs and newlines anywhere in a URL, treat `\\` as
/// `/`, and take `//host` as another origin; servers and proxies on the way may decode
/// `%2F`. So a local path starts with exactly one `/`, and neither it nor any
/// percent-decoding of it holds a control character (C0 or DEL), a backslash, or a
/// leading `//`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath(String);

/// Percent-decoding rounds checked (`%252F` is `%2F` after one round, `/` after two).
const DECODE_ROUNDS: usize = 3;

fn plainly_local(text: &str) -> bool {
    text.starts_with('/') && !text.starts_with("//") && !text.chars().any(|c| c == '\\' || c.is_ascii_control())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl LocalPath {
    pub fn parse(text: &str) -> Option<LocalPath> {
        let mut form = text.to_string();
        for _ in 0..=DECODE_ROUNDS {
            if !plainly_local(&form) {
                return None;
            }
            let decoded = percent_decode(&form);
            if decoded == form {
                return Some(LocalPath(text.to_string()));
            }
            form = decoded;
        }
        // Encoded more deeply than any legitimate link of this app.
        None
    }

    /// A path this app spells itself (one of the constants above).
    pub fn trusted(path: &'static str) -> LocalPath {
        LocalPath(path.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The login page, continuing to `next` afterwards, with a notice.
pub fn login_then(next: &LocalPath, notice: Option<Notice>) -> String {
    let login = format!("{LOGIN}?next={}", encode(next.as_str()));
    match notice {
        Some(notice) => with_notice(&login, notice),
        None => login,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_follow_where_paths_live() {
        assert_eq!(Area::of("/operator"), Area::Operator);
        assert_eq!(Area::of("/operator/connections/7"), Area::Operator);
        assert_eq!(Area::of("/api/operator/overview"), Area::Operator);
        assert_eq!(Area::of("/operatorx"), Area::Public);
        assert_eq!(Area::of("/connection"), Area::Merchant);
        assert_eq!(Area::of("/connect/problem"), Area::Merchant);
        assert_eq!(Area::of("/api/connection"), Area::Merchant);
        assert_eq!(Area::of("/login"), Area::Public);
        assert_eq!(Area::of("/api/current_user"), Area::Public);
    }

    #[test]
    fn notices_round_trip() {
        for notice in Notice::ALL {
            assert_eq!(Notice::parse(notice.as_str()), Some(notice));
        }
        assert_eq!(
            with_notice("/connection", Notice::Connected),
            "/connection?notice=connected"
        );
        assert_eq!(
            login_then(&LocalPath::trusted(CONNECTION), Some(Notice::LoginRequired)),
            "/login?next=%2Fconnection&notice=login_required"
        );
    }

    #[test]
    fn only_local_paths_are_followed() {
        for local in [
            "/",
            "/connection",
            "/operator?status=needs_reconnect&q=acme%20co",
            "/operator/connections/7?before=12",
            "/connect/problem?reason=declined",
            "/a/b%20c",
        ] {
            assert_eq!(
                LocalPath::parse(local).map(|p| p.0),
                Some(local.to_string()),
                "{local:?}"
            );
        }
    }

    #[test]
    fn nothing_a_browser_could_resolve_to_another_origin_is_followed() {
        let hostile = [
            "",
            "connection",
            "//evil.example",
            "///evil.example",
            "https://evil.example",
            "HTTPS://evil.example",
            "javascript:alert(1)",
            "data:text/html,x",
            " /connection",
            "/\\evil.example",
            "\\/evil.example",
            "/\\/evil.example",
            // Browsers drop tabs and newlines from URLs: these become //evil.example.
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\r\n/evil.example",
            // Encoded variants, once and twice.
            "/%2F/evil.example",
            "/%2f%2fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%5c/evil.example",
            "/%09/evil.example",
            "/%0A/evil.example",
            "/%0d%0a/evil.example",
            "/%252F/evil.example",
            "/%255C/evil.example",
            "/%2509/evil.example",
            "/\u{0}/evil.example",
            "/connection\u{7f}",
        ];
        for input in hostile {
            assert_eq!(LocalPath::parse(input), None, "{input:?} must be refused");
        }
        // Every ASCII control character, anywhere in the path, raw or encoded.
        for byte in (0u8..0x20).chain(std::iter::once(0x7f)) {
            let c = byte as char;
            for input in [
                format!("/{c}/evil.example"),
                format!("{c}/connection"),
                format!("/connection{c}"),
                format!("/operator?q={c}"),
                format!("/%{byte:02X}/evil.example"),
                format!("/%{byte:02x}connection"),
            ] {
                assert_eq!(LocalPath::parse(&input), None, "{input:?} must be refused");
            }
        }
    }
}
