//! The merchants' connections: the directory a page at a time, and one merchant's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use awx_onboard::platform::directory::{ConnectionInfo, Filter, DEFAULT_LIMIT, MAX_LIMIT};
use awx_onboard::platform::keys::Scope;
use awx_onboard::store::ConnectionStatus;

use super::caller::{Caller, MerchantPath};
use super::errors::{internal, ApiError, ErrorBody, KeyAnswers, MerchantAnswers};
use crate::state::AppState;

/// A merchant's connection.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionOut {
    pub merchant_id: i64,
    pub email: String,
    /// `connected`, `needs_reconnect`, `disconnected`, or `not_connected` (never connected).
    pub status: String,
    /// Why a connection needs reconnecting.
    pub reason: Option<String>,
    pub account_id: Option<String>,
    pub business_name: Option<String>,
    /// RFC 3339.
    pub connected_at: Option<String>,
    /// RFC 3339: when the current refresh token runs out (the app rotates it well before).
    pub refresh_token_expires_at: Option<String>,
    /// The merchant's connection page, where one click starts a (re)connection.
    pub reconnect_url: String,
}

/// One page of connections.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionsPage {
    pub connections: Vec<ConnectionOut>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `connected`, `needs_reconnect` or `disconnected`.
    pub status: Option<String>,
    /// The merchant's email, exactly.
    pub email: Option<String>,
    /// The `next_after` of the previous page.
    pub after: Option<i64>,
    /// Connections per page, 1 to 1000 (100 by default).
    pub limit: Option<i64>,
}

pub fn reconnect_url(state: &AppState) -> String {
    format!("{}{}", state.config.public_origin(), app::paths::CONNECTION)
}

fn connection_out(state: &AppState, info: ConnectionInfo) -> ConnectionOut {
    ConnectionOut {
        merchant_id: info.merchant_id,
        email: info.email,
        status: info
            .status
            .map(ConnectionStatus::as_str)
            .unwrap_or("not_connected")
            .to_string(),
        reason: info.status_reason,
        account_id: info.account_id,
        business_name: info.business_name,
        connected_at: info.connected_at.map(awx_onboard::time::rfc3339),
        refresh_token_expires_at: info.refresh_expires_at.map(awx_onboard::time::rfc3339),
        reconnect_url: reconnect_url(state),
    }
}

/// Lists merchants' connections, in a stable order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/platform/v1/connections",
    params(ListParams),
    responses(
        (status = 200, description = "A page of connections", body = ConnectionsPage),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
        (status = 403, description = "The key lacks connections:read", body = ErrorBody),
        KeyAnswers,
    ),
    security(("bearer" = [])),
    tag = "connections"
)]
pub async fn list_connections(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ConnectionsPage>, ApiError> {
    caller.require(Scope::ConnectionsRead)?;
    let Query(params) = params.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some("connected") => Some(ConnectionStatus::Connected),
        Some("needs_reconnect") => Some(ConnectionStatus::NeedsReconnect),
        Some("disconnected") => Some(ConnectionStatus::Disconnected),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status {other:?} is not one of connected, needs_reconnect, disconnected"
            )))
        }
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be from 1 to {MAX_LIMIT}")));
    }
    let page = state
        .services
        .directory
        .list(&Filter {
            status,
            email: params.email.filter(|e| !e.trim().is_empty()),
            after: params.after,
            limit,
        })
        .await
        .map_err(internal)?;
    Ok(Json(ConnectionsPage {
        connections: page
            .connections
            .into_iter()
            .map(|c| connection_out(&state, c))
            .collect(),
        next_after: page.next_after,
    }))
}

/// One merchant's connection.
#[utoipa::path(
    get,
    path = "/api/platform/v1/merchants/{merchant_id}/connection",
    params(("merchant_id" = i64, Path, description = "The merchant's id in awx-onboard")),
    responses(
        (status = 200, description = "The merchant's connection", body = ConnectionOut),
        (status = 403, description = "The key lacks connections:read", body = ErrorBody),
        KeyAnswers,
        MerchantAnswers,
    ),
    security(("bearer" = [])),
    tag = "connections"
)]
pub async fn connection(
    State(state): State<AppState>,
    caller: Caller,
    MerchantPath(merchant_id): MerchantPath,
) -> Result<Json<ConnectionOut>, ApiError> {
    caller.require(Scope::ConnectionsRead)?;
    let info = state
        .services
        .directory
        .of_merchant(merchant_id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(connection_out(&state, info)))
}
