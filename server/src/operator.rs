//! Operator actions (plain form posts) and `GET /metrics`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::ExposeSecret;

use app::paths::{self, Notice};
use awx_onboard::operator::OperatorError;

use crate::access::OperatorUser;
use crate::error::AppError;
use crate::proxy::ClientAddr;
use crate::state::AppState;

fn after_action(id: i64, result: Result<(), OperatorError>, notice: Notice) -> Result<Response, AppError> {
    match result {
        Ok(()) => Ok(Redirect::to(&paths::with_notice(&paths::operator_connection(id), notice)).into_response()),
        Err(OperatorError::NotFound) => Err(AppError::NotFound("There is no connection with that number.")),
        Err(OperatorError::Database(error)) => Err(AppError::internal(error)),
        Err(OperatorError::StorageUnavailable) => Err(AppError::Unavailable("token storage".into())),
    }
}

/// `POST /operator/connections/{id}/refresh`: "Refresh now".
pub async fn refresh(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    tracing::info!(connection_id = id, "operator refresh");
    after_action(
        id,
        state.services.operator.refresh_now(id, &operator.email).await,
        Notice::Refreshed,
    )
}

/// `POST /operator/connections/{id}/check`: "Check with Airwallex".
pub async fn check(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    tracing::info!(connection_id = id, "operator check");
    after_action(
        id,
        state.services.operator.check_with_airwallex(id, &operator.email).await,
        Notice::Checked,
    )
}

/// `GET /metrics`: Prometheus text, for loopback callers or with the configured bearer token.
pub async fn metrics(State(state): State<AppState>, client: ClientAddr, headers: HeaderMap) -> Response {
    let token_ok = state.config.network.metrics_token.as_ref().is_some_and(|token| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                awx_onboard::secret::constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes())
            })
    });
    // The client as the trusted proxy reports it: behind a same-host proxy, visitors are
    // not "loopback".
    if !client.ip.is_loopback() && !token_ok {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut text = awx_onboard::metrics::render();
    match state.services.operator.status_counts().await {
        Ok(counts) => {
            text.push_str("# HELP awx_connections Connections by status (and reason).\n# TYPE awx_connections gauge\n");
            text.push_str(&format!(
                "awx_connections{{status=\"connected\"}} {}\n",
                counts.connected
            ));
            for (reason, n) in &counts.needs_reconnect {
                text.push_str(&format!(
                    "awx_connections{{status=\"needs_reconnect\",reason=\"{reason}\"}} {n}\n"
                ));
            }
            text.push_str(&format!(
                "awx_connections{{status=\"disconnected\"}} {}\n",
                counts.disconnected
            ));
            text.push_str(&format!(
                "awx_connections{{status=\"not_connected\"}} {}\n",
                counts.not_connected
            ));
        }
        Err(error) => tracing::warn!(%error, "metrics: connection counts unavailable"),
    }
    match state.services.security_log.counts().await {
        Ok(counts) => text.push_str(&awx_onboard::security_log::render_counts(&counts)),
        Err(error) => tracing::warn!(%error, "metrics: security log counts unavailable"),
    }
    text.push_str(&format!(
        "# HELP awx_keeper_backlog Connections the keeper found due in its latest pass.\n# TYPE awx_keeper_backlog gauge\nawx_keeper_backlog {}\n",
        state.services.keeper.backlog()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
