//! Operator server functions. Every one checks the role on the server.

use leptos::prelude::*;

use crate::dto::{ApiKeyView, EndpointDetailView, EndpointView, OperatorOverview, Revealed, TeamView};

mod connection;

pub use connection::load_operator_connection;

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use leptos::prelude::*;

    use awx_onboard::accounts::{Access, Account};
    use awx_onboard::operator::ConnectionLine;
    use awx_onboard::store::ConnectionStatus;
    use awx_onboard::time::human_datetime;

    use crate::dto::LineView;

    pub fn require_operator() -> Result<Account, ServerFnError> {
        crate::api::ssr::require(Access::Operator)
    }

    pub fn line_view(line: ConnectionLine, now: i64) -> LineView {
        LineView {
            connection_id: line.connection_id,
            email: line.email,
            email_verified: line.email_verified,
            external_id: line.external_id,
            tags: awx_onboard::platform::connect_sessions::tags_from_text(line.tags.as_deref())
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            business_name: line.business_name,
            account_id: line.account_id,
            status: line
                .status
                .map(ConnectionStatus::as_str)
                .unwrap_or("not_connected")
                .to_string(),
            status_reason: line.status_reason,
            connected_since: line.connected_at.map(human_datetime),
            last_refresh: line.last_refresh_at.map(human_datetime),
            last_refresh_result: line.last_refresh_result,
            access_expires: line.access_expires_at.map(human_datetime),
            refresh_expires_in: line.refresh_expires_at.map(|at| at - now),
            last_error: line.last_error,
        }
    }

    pub fn internal<E: std::fmt::Display>(error: E) -> ServerFnError {
        tracing::error!(%error, "operator view failed");
        ServerFnError::new("Something went wrong on our side. Please try again.")
    }
}

/// Counts and one page of the operator table.
#[server(endpoint = "operator/overview")]
pub async fn load_operator_overview(
    status: Option<String>,
    search: Option<String>,
    sort: Option<String>,
    after: Option<String>,
) -> Result<OperatorOverview, ServerFnError> {
    use awx_onboard::operator::{Cursor, ListQuery, SortOrder, StatusFilter};

    use crate::dto::CountsView;

    ssr::require_operator()?;
    let services = crate::api::ssr::services()?;
    let desk = &services.operator;
    let query = ListQuery {
        status: status.as_deref().and_then(StatusFilter::parse),
        search: search
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.chars().take(200).collect()),
        sort: sort.as_deref().and_then(SortOrder::parse).unwrap_or_default(),
        after: after.as_deref().and_then(Cursor::decode),
    };
    let counts = desk.status_counts().await.map_err(ssr::internal)?;
    let page = desk.list_connections(&query).await.map_err(ssr::internal)?;
    let now = services.clock.now();
    Ok(OperatorOverview {
        counts: CountsView {
            connected: counts.connected,
            needs_reconnect: counts.needs_reconnect,
            not_connected: counts.not_connected,
            disconnected: counts.disconnected,
        },
        lines: page.lines.into_iter().map(|line| ssr::line_view(line, now)).collect(),
        next: page.next.map(|c| c.encode()),
    })
}

/// A secret the server just made for the operator (shown once), if this response has one.
pub fn revealed() -> Resource<Option<Revealed>> {
    crate::components::from_render_context()
}

/// The platform API's service keys.
#[server(endpoint = "operator/api_keys")]
pub async fn load_api_keys() -> Result<Vec<ApiKeyView>, ServerFnError> {
    use awx_onboard::time::human_datetime;

    ssr::require_operator()?;
    let services = crate::api::ssr::services()?;
    let keys = services.api_keys.list().await.map_err(ssr::internal)?;
    let now = services.clock.now();
    Ok(keys
        .into_iter()
        .map(|k| ApiKeyView {
            id: k.id,
            name: k.name,
            scopes: k.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            created_by: k.created_by,
            created_at: human_datetime(k.created_at),
            last_used: k.last_used_at.map(human_datetime),
            revoked: k.revoked_at.map(human_datetime),
            expires: k.expires_at.map(human_datetime),
            expired: k.expires_at.is_some_and(|at| at <= now),
        })
        .collect())
}

/// Operators, open invitations and the newest entries of the security log.
#[server(endpoint = "operator/team")]
pub async fn load_team() -> Result<TeamView, ServerFnError> {
    use awx_onboard::time::human_datetime;

    use crate::dto::{InvitationView, SecurityEventView, TeamMemberView};

    let me = ssr::require_operator()?;
    let services = crate::api::ssr::services()?;
    let members = services.team.members().await.map_err(ssr::internal)?;
    let invitations = services.team.open_invitations().await.map_err(ssr::internal)?;
    let events = services.security_log.recent(100).await.map_err(ssr::internal)?;
    Ok(TeamView {
        me: me.id,
        members: members
            .into_iter()
            .map(|m| TeamMemberView {
                id: m.id,
                email: m.email,
                second_factor: m.second_factor,
                last_login: m.last_login_at.map(human_datetime),
                active_sessions: m.active_sessions,
            })
            .collect(),
        invitations: invitations
            .into_iter()
            .map(|i| InvitationView {
                id: i.id,
                email: i.email,
                invited_by: i.invited_by,
                expires: human_datetime(i.expires_at),
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| SecurityEventView {
                at: human_datetime(e.at),
                kind: e.kind.as_str().to_string(),
                label: e.kind.label().to_string(),
                actor: e.actor,
                subject: e.subject,
                ip: e.ip,
            })
            .collect(),
    })
}

#[cfg(feature = "ssr")]
fn endpoint_view(e: awx_onboard::platform::outbox::Endpoint) -> EndpointView {
    use awx_onboard::time::human_datetime;
    EndpointView {
        id: e.id,
        url: e.url,
        events: e.events.iter().map(|ev| ev.as_str().to_string()).collect(),
        created_by: e.created_by,
        created_at: human_datetime(e.created_at),
        disabled: e.disabled_at.map(human_datetime),
        delivered: e.delivered,
        pending: e.pending,
        failed: e.failed,
    }
}

/// The platform's webhook endpoints.
#[server(endpoint = "operator/webhooks")]
pub async fn load_webhooks() -> Result<Vec<EndpointView>, ServerFnError> {
    ssr::require_operator()?;
    let endpoints = crate::api::ssr::services()?
        .webhooks
        .list()
        .await
        .map_err(ssr::internal)?;
    Ok(endpoints.into_iter().map(endpoint_view).collect())
}

/// One endpoint and its newest deliveries.
#[server(endpoint = "operator/webhook")]
pub async fn load_webhook(id: i64) -> Result<EndpointDetailView, ServerFnError> {
    use awx_onboard::time::human_datetime;

    ssr::require_operator()?;
    let services = crate::api::ssr::services()?;
    let endpoint = services
        .webhooks
        .list()
        .await
        .map_err(ssr::internal)?
        .into_iter()
        .find(|e| e.id == id);
    let Some(endpoint) = endpoint else {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
        return Err(ServerFnError::new("There is no webhook endpoint with that number."));
    };
    let deliveries = services
        .webhooks
        .deliveries(id, 100)
        .await
        .map_err(ssr::internal)?
        .into_iter()
        .map(|d| crate::dto::DeliveryView {
            id: d.id,
            event_id: d.event_id,
            kind: d.kind,
            next_attempt: (d.status == "pending").then(|| human_datetime(d.next_attempt_at)),
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            delivered: d.delivered_at.map(human_datetime),
            created: human_datetime(d.created_at),
        })
        .collect();
    Ok(EndpointDetailView {
        endpoint: endpoint_view(endpoint),
        deliveries,
    })
}

/// The mail outbox, newest first (100 per page).
#[server(endpoint = "operator/emails")]
pub async fn load_outbox(before: Option<i64>) -> Result<crate::dto::OutboxView, ServerFnError> {
    use awx_onboard::mail::sender::NOT_CONFIGURED;
    use awx_onboard::mail::{MailKind, MailStatus};
    use awx_onboard::time::human_datetime;

    const PAGE: i64 = 100;
    ssr::require_operator()?;
    let services = crate::api::ssr::services()?;
    let configured = services.mailer.configured();
    let counts = services.mail.counts().await.map_err(ssr::internal)?;
    let entries = services.mail.list(before, PAGE + 1).await.map_err(ssr::internal)?;
    let older_before = (entries.len() as i64 > PAGE).then(|| entries[PAGE as usize - 1].id);
    let messages = entries
        .into_iter()
        .take(PAGE as usize)
        .map(|m| crate::dto::MailView {
            id: m.id,
            about: match m.kind {
                MailKind::Reconnect => format!(
                    "Reconnect ({})",
                    m.reason
                        .as_deref()
                        .map(awx_onboard::mail::compose::reason_label)
                        .unwrap_or("unknown")
                ),
                MailKind::ExpiryWarning => "Refresh token ends within 7 days".to_string(),
                MailKind::Digest => "Operators' daily digest".to_string(),
                MailKind::Invitation => "Operator invitation".to_string(),
                MailKind::SecurityAlert => "Security alert to operators".to_string(),
                MailKind::VerifyEmail => "Email address verification".to_string(),
                MailKind::PasswordReset => "Password reset".to_string(),
            },
            recipient: m.recipient,
            connection_id: m.connection_id,
            status: m.status.as_str().to_string(),
            attempts: m.attempts,
            answer: match (m.status, m.last_answer) {
                (MailStatus::Queued, None) if !configured => Some(NOT_CONFIGURED.to_string()),
                (_, answer) => answer,
            },
            when: match m.status {
                MailStatus::Sent => m.sent_at.map(|at| format!("sent {}", human_datetime(at))),
                MailStatus::Queued if configured => Some(format!("next attempt {}", human_datetime(m.next_attempt_at))),
                _ => None,
            },
            created: human_datetime(m.created_at),
        })
        .collect();
    Ok(crate::dto::OutboxView {
        configured,
        queued: counts.queued,
        sent: counts.sent,
        failed: counts.failed,
        suppressed: counts.suppressed,
        messages,
        older_before,
    })
}

/// The dashboard's trends: status per day (30 days), refreshes per hour (48 hours),
/// refresh-token expiries per day (next 60 days).
#[server(endpoint = "operator/trends")]
pub async fn load_trends() -> Result<crate::dto::TrendsView, ServerFnError> {
    use awx_onboard::time::human_datetime;

    use crate::dto::{ChartView, SeriesView, TrendsView};

    ssr::require_operator()?;
    let services = crate::api::ssr::services()?;
    let data = services.trends.load().await.map_err(ssr::internal)?;
    let day_label = |at: i64| human_datetime(at).split(',').next().unwrap_or_default().to_string();
    let hour_label = |at: i64| human_datetime(at);
    let series = |name: &str, tone: &str, values: Vec<i64>| SeriesView {
        name: name.to_string(),
        tone: tone.to_string(),
        values,
    };
    let today = data.status_days.last().copied().unwrap_or_default();
    let status = ChartView {
        id: "trend-status".into(),
        title: "Connections by status, last 30 days".into(),
        description: format!(
            "Connections at the end of each day, from the event log. Today: {} connected, {} needing reconnection, {} disconnected.",
            today.connected, today.needs_reconnect, today.disconnected
        ),
        period: "Day".into(),
        labels: data.status_days.iter().map(|d| day_label(d.day)).collect(),
        series: vec![
            series("Connected", "ok", data.status_days.iter().map(|d| d.connected).collect()),
            series("Needs reconnection", "warn", data.status_days.iter().map(|d| d.needs_reconnect).collect()),
            series("Disconnected", "none", data.status_days.iter().map(|d| d.disconnected).collect()),
        ],
    };
    let (ok, transient, rejected) = data
        .refresh_hours
        .iter()
        .fold((0, 0, 0), |(a, b, c), h| (a + h.ok, b + h.transient, c + h.rejected));
    let refreshes = ChartView {
        id: "trend-refreshes".into(),
        title: "Refreshes per hour, last 48 hours".into(),
        description: format!(
            "Token refreshes by outcome. In 48 hours: {ok} succeeded, {transient} failed for now (retried), {rejected} rejected (the connection needs reconnection)."
        ),
        period: "Hour (UTC)".into(),
        labels: data.refresh_hours.iter().map(|h| hour_label(h.hour)).collect(),
        series: vec![
            series("Succeeded", "ok", data.refresh_hours.iter().map(|h| h.ok).collect()),
            series("Failed for now", "warn", data.refresh_hours.iter().map(|h| h.transient).collect()),
            series("Rejected", "bad", data.refresh_hours.iter().map(|h| h.rejected).collect()),
        ],
    };
    let expiring_soon: i64 = data.expiry_days.iter().take(7).map(|d| d.count).sum();
    let total: i64 = data.expiry_days.iter().map(|d| d.count).sum();
    let expiry = ChartView {
        id: "trend-expiry".into(),
        title: "Refresh tokens ending, next 60 days".into(),
        description: format!(
            "Connected refresh tokens by the day they end if the keeper does not rotate them first (counted at most a minute ago). {expiring_soon} within 7 days, {total} within 60 days."
        ),
        period: "Day".into(),
        labels: data.expiry_days.iter().map(|d| day_label(d.day)).collect(),
        series: vec![series("Ending", "warn", data.expiry_days.iter().map(|d| d.count).collect())],
    };
    Ok(TrendsView {
        charts: vec![status, refreshes, expiry],
        expiring_soon,
    })
}
