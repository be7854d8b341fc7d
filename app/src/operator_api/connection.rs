//! One connection as an operator sees it: its state, timeline, token reads, proxied calls
//! and connect sessions.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use super::ssr;
use crate::dto::ConnectionDetailView;

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
    let token_reads = services
        .token_reads
        .for_connection(id, 50)
        .await
        .map_err(ssr::internal)?
        .into_iter()
        .map(|r| crate::dto::TokenReadView {
            minute: human_datetime(r.minute),
            key_name: r.key_name,
            key_id: r.key_id,
            reads: r.reads,
        })
        .collect();
    let now = services.clock.now();
    let merchant = services
        .directory
        .of_merchant(row.merchant_id)
        .await
        .map_err(ssr::internal)?;
    let line = ssr::line_view(
        ConnectionLine {
            merchant_id: row.merchant_id,
            email,
            external_id: merchant.as_ref().and_then(|m| m.external_id.clone()),
            email_verified: merchant.as_ref().is_none_or(|m| m.email_verified),
            tags: merchant.and_then(|m| m.tags),
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
    let connect_sessions = services
        .connect_sessions
        .of_merchant(row.merchant_id, 20)
        .await
        .map_err(ssr::internal)?
        .into_iter()
        .map(|s| crate::dto::ConnectSessionView {
            status: s.status(now).as_str().to_string(),
            id: s.id,
            created_by: s.created_by,
            created_at: human_datetime(s.created_at),
            opened_at: s.opened_at.map(human_datetime),
            outcome: s.outcome.map(|o| o.as_str().to_string()),
            reason: s.reason,
            return_url: s.return_url,
        })
        .collect();
    services.proxy_calls.flush().await.map_err(ssr::internal)?;
    let proxy_calls = services
        .proxy_calls
        .for_connection(id, 50)
        .await
        .map_err(ssr::internal)?
        .into_iter()
        .map(|line| crate::dto::ProxyCallView {
            at: human_datetime(line.call.at),
            key_name: line.key_name,
            key_id: line.call.key_id,
            method: line.call.method,
            path: line.call.path,
            status: line.call.status,
            duration_ms: line.call.duration_ms,
            request_bytes: line.call.request_bytes,
            response_bytes: line.call.response_bytes,
        })
        .collect();
    Ok(ConnectionDetailView {
        proxy_calls,
        connect_sessions,
        connection_id: row.id,
        token_reads,
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
