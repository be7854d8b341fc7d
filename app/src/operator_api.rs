//! Operator server functions. Every one checks the role on the server.

use leptos::prelude::*;

use crate::dto::{ConnectionDetailView, OperatorOverview};

#[cfg(feature = "ssr")]
mod ssr {
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

/// One connection and a page of its timeline (newest first).
#[server(endpoint = "operator/connection")]
pub async fn load_operator_connection(id: i64, before: Option<i64>) -> Result<ConnectionDetailView, ServerFnError> {
    use awx_onboard::operator::{ConnectionLine, OperatorError};
    use awx_onboard::time::human_datetime;

    use crate::dto::EventView;

    ssr::require_operator()?;
    let services = crate::api::ssr::services()?;
    let desk = &services.operator;
    let (row, email) = match desk.connection_detail(id).await {
        Ok(found) => found,
        Err(OperatorError::NotFound) => {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(http::StatusCode::NOT_FOUND);
            }
            return Err(ServerFnError::new("There is no connection with that number."));
        }
        Err(error) => return Err(ssr::internal(error)),
    };
    let (events, older_before) = desk.connection_events(id, before).await.map_err(ssr::internal)?;
    let now = services.clock.now();
    let line = ssr::line_view(
        ConnectionLine {
            merchant_id: row.merchant_id,
            email,
            connection_id: Some(row.id),
            status: Some(row.status),
            status_reason: row.status_reason.clone(),
            business_name: row.business_name.clone(),
            account_id: row.account_id.clone(),
            connected_at: row.connected_at,
            last_refresh_at: row.last_refresh_at,
            last_refresh_result: row.last_refresh_result.clone(),
            access_expires_at: row.access_expires_at,
            refresh_expires_at: row.refresh_expires_at,
            last_error: row.last_error.clone(),
            last_activity_at: Some(row.last_activity_at),
        },
        now,
    );
    Ok(ConnectionDetailView {
        connection_id: row.id,
        line,
        generation: row.generation,
        key_id: row.key_id.clone(),
        refresh_expires_at: row.refresh_expires_at.map(human_datetime),
        events: events
            .into_iter()
            .map(|e| EventView {
                id: e.id,
                at: human_datetime(e.created_at),
                kind: e.kind.as_str().to_string(),
                reason: e.reason,
                actor: e.actor,
                detail: e.detail,
            })
            .collect(),
        older_before,
    })
}
