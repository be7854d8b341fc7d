//! Operator actions (plain form posts) and `GET /metrics`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::ExposeSecret;
use tower_sessions::Session;

use awx_onboard::accounts::Role;
use awx_onboard::operator::OperatorError;

use crate::auth::current_account;
use crate::state::AppState;

/// The signed-in operator's email, or the response refusing the request.
async fn operator_email(session: &Session) -> Result<String, Response> {
    match current_account(session).await {
        Ok(Some(account)) if account.role == Role::Operator => Ok(account.email),
        Ok(Some(_)) => Err(StatusCode::FORBIDDEN.into_response()),
        Ok(None) => Err(Redirect::to("/login?next=/operator&notice=login_required").into_response()),
        Err(status) => Err(status.into_response()),
    }
}

fn after_action(id: i64, result: Result<(), OperatorError>, notice: &str) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/operator/connections/{id}?notice={notice}")).into_response(),
        Err(OperatorError::NotFound) => crate::pages::plain_page(
            StatusCode::NOT_FOUND,
            "No such connection",
            "There is no connection with that number.",
        ),
        Err(OperatorError::Database(error)) => {
            tracing::error!(%error, "operator action failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(OperatorError::StorageUnavailable) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `POST /operator/connections/{id}/refresh`: "Refresh now".
pub async fn refresh(State(state): State<AppState>, session: Session, Path(id): Path<i64>) -> Response {
    let operator = match operator_email(&session).await {
        Ok(email) => email,
        Err(response) => return response,
    };
    tracing::info!(connection_id = id, "operator refresh");
    after_action(id, state.services.operator_refresh(id, &operator).await, "refreshed")
}

/// `POST /operator/connections/{id}/check`: "Check with Airwallex".
pub async fn check(State(state): State<AppState>, session: Session, Path(id): Path<i64>) -> Response {
    let operator = match operator_email(&session).await {
        Ok(email) => email,
        Err(response) => return response,
    };
    tracing::info!(connection_id = id, "operator check");
    after_action(id, state.services.operator_check(id, &operator).await, "checked")
}

/// `GET /metrics`: Prometheus text, for loopback callers or with the configured bearer token.
pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let token_ok = state.config.metrics_token.as_ref().is_some_and(|token| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                awx_onboard::secret::constant_time_eq(given.as_bytes(), token.expose_secret().as_bytes())
            })
    });
    if !peer.ip().is_loopback() && !token_ok {
        return StatusCode::FORBIDDEN.into_response();
    }
    let mut text = awx_onboard::metrics::render();
    match state.services.status_counts().await {
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
    text.push_str(&format!(
        "# HELP awx_keeper_backlog Connections the keeper found due in its latest pass.\n# TYPE awx_keeper_backlog gauge\nawx_keeper_backlog {}\n",
        state.services.keeper.backlog()
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
