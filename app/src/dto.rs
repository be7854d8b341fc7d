//! What pages receive from the server. Plain data: no tokens, no hashes, no internals.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub email: String,
    pub is_operator: bool,
}

/// A message for the form a failed POST came from, with what the person typed (never a
/// password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormFeedback {
    pub message: String,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    NotConnected,
    Connected,
    NeedsReconnect { reason: String },
    Disconnected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AccountView {
    pub business_name: Option<String>,
    pub trading_name: Option<String>,
    pub account_id: Option<String>,
    pub status: Option<String>,
    pub legal_entity_type: Option<String>,
    pub email: Option<String>,
    pub country: Option<String>,
    pub created: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub state: ConnectionState,
    pub account: Option<AccountView>,
    pub account_stale: bool,
    pub connected_at: Option<String>,
    pub last_refresh_at: Option<String>,
    /// Whether the merchant gets emails when the connection needs them.
    pub emails_on: bool,
    /// The way back to the platform, when this browser came from its connect link.
    pub back_to: Option<BackLink>,
    /// Whether the merchant's address is verified (else only the link that verifies it
    /// is sent).
    pub email_verified: bool,
    /// The merchant's address (shown when it waits for verification).
    pub email: String,
}

/// A link back to the platform a merchant came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackLink {
    /// `Back to {PLATFORM_NAME}`.
    pub label: String,
    pub href: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CountsView {
    pub connected: i64,
    pub needs_reconnect: Vec<(String, i64)>,
    pub not_connected: i64,
    pub disconnected: i64,
}

/// One row of the operator table; times already formatted, countdown in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    pub connection_id: Option<i64>,
    pub email: String,
    /// Whether the merchant's address is verified (shown when it is not).
    pub email_verified: bool,
    /// The platform's id for the merchant, if a platform created them.
    pub external_id: Option<String>,
    /// The platform's tags on the merchant, `key=value`.
    pub tags: Vec<String>,
    pub business_name: Option<String>,
    pub account_id: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub connected_since: Option<String>,
    pub last_refresh: Option<String>,
    pub last_refresh_result: Option<String>,
    pub access_expires: Option<String>,
    pub refresh_expires_in: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorOverview {
    pub counts: CountsView,
    pub lines: Vec<LineView>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub reason: Option<String>,
    pub actor: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionDetailView {
    pub connection_id: i64,
    /// Who read this connection's access token through the platform API, newest first.
    pub token_reads: Vec<TokenReadView>,
    pub line: LineView,
    pub generation: i64,
    pub key_id: Option<String>,
    pub refresh_expires_at: Option<String>,
    pub events: Vec<EventView>,
    pub older_before: Option<i64>,
    /// The merchant's connect sessions, newest first.
    pub connect_sessions: Vec<ConnectSessionView>,
    /// Calls the platform made to Airwallex through the proxy, newest first.
    pub proxy_calls: Vec<ProxyCallView>,
}

/// One call through the Airwallex proxy, as operators see it (never a body or a query).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyCallView {
    pub at: String,
    pub key_name: String,
    pub key_id: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
}

/// A connect session as operators see it (never its link).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectSessionView {
    pub id: String,
    /// `key:<id>` or `operator:<id>`.
    pub created_by: String,
    pub created_at: String,
    pub opened_at: Option<String>,
    pub status: String,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub return_url: String,
}

/// A secret shown once, right after it was made (an API key, a signing secret). Its
/// `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revealed {
    pub label: String,
    pub secret: String,
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revealed")
            .field("label", &self.label)
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub last_used: Option<String>,
    pub revoked: Option<String>,
    /// When the key ends, if it was given an end.
    pub expires: Option<String>,
    pub expired: bool,
}

/// The operators' team page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamView {
    /// The operator looking at the page.
    pub me: i64,
    pub members: Vec<TeamMemberView>,
    pub invitations: Vec<InvitationView>,
    pub events: Vec<SecurityEventView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMemberView {
    pub id: i64,
    pub email: String,
    pub second_factor: bool,
    pub last_login: Option<String>,
    pub active_sessions: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationView {
    pub id: i64,
    pub email: String,
    pub invited_by: String,
    pub expires: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityEventView {
    pub at: String,
    pub kind: String,
    pub label: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub disabled: Option<String>,
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered: Option<String>,
    pub created: String,
}

/// One message of the mail outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailView {
    pub id: i64,
    /// What it is about, in words.
    pub about: String,
    pub recipient: String,
    pub connection_id: Option<i64>,
    /// `queued`, `sent`, `failed` or `suppressed`.
    pub status: String,
    pub attempts: i64,
    /// The SMTP server's last answer (or why nothing was sent).
    pub answer: Option<String>,
    /// When it was sent, or when the next attempt is due.
    pub when: Option<String>,
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxView {
    /// An SMTP server is configured.
    pub configured: bool,
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub messages: Vec<MailView>,
    /// Older messages start before this id.
    pub older_before: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointDetailView {
    pub endpoint: EndpointView,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenReadView {
    pub minute: String,
    pub key_name: String,
    pub key_id: String,
    pub reads: i64,
}

#[cfg(test)]
mod tests {
    use super::Revealed;

    #[test]
    fn a_revealed_secret_stays_out_of_debug_output() {
        let revealed = Revealed {
            label: "The new key".into(),
            secret: "awx_pk_abc_very-secret-part".into(),
        };
        let shown = format!("{revealed:?}");
        assert!(!shown.contains("very-secret-part"), "{shown}");
        assert!(shown.contains("The new key"));
    }
}

/// One series of a bar chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesView {
    pub name: String,
    /// `ok`, `warn`, `bad` or `none`: the bar colour.
    pub tone: String,
    pub values: Vec<i64>,
}

/// A bar chart (stacked when it has several series), drawn as SVG on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartView {
    /// For element ids.
    pub id: String,
    pub title: String,
    /// What it shows, in a sentence with its headline numbers.
    pub description: String,
    /// The first column's heading in the table of numbers.
    pub period: String,
    pub labels: Vec<String>,
    pub series: Vec<SeriesView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendsView {
    pub charts: Vec<ChartView>,
    /// Refresh tokens ending within 7 days.
    pub expiring_soon: i64,
}
