//! The merchants' connections: the directory a page at a time, and one merchant's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use awx_onboard::platform::connect_sessions::{tags_from_text, Tags};
use awx_onboard::platform::directory::{ConnectionInfo, Filter, DEFAULT_LIMIT, MAX_LIMIT};
use awx_onboard::platform::keys::Scope;
use awx_onboard::store::ConnectionStatus;

use super::caller::{Caller, ExternalId, MerchantPath};
use super::errors::{internal, ApiError, ErrorBody, ExternalIdAnswers, KeyAnswers, MerchantAnswers};
use crate::state::AppState;

/// A merchant's connection.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectionOut {
    pub merchant_id: i64,
    /// The platform's id for the merchant (connect sessions); null for merchants who signed
    /// up themselves.
    pub external_id: Option<String>,
    /// The platform's tags on the merchant (`{}` when none).
    pub tags: Tags,
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
    /// The platform's id for the merchant, exactly.
    pub external_id: Option<String>,
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
        tags: tags_from_text(info.tags.as_deref()),
        external_id: info.external_id,
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
            external_id: params.external_id.filter(|e| !e.is_empty()),
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
    connection_of(&state, merchant_id).await.map(Json)
}

async fn connection_of(state: &AppState, merchant_id: i64) -> Result<ConnectionOut, ApiError> {
    let info = state
        .services
        .directory
        .of_merchant(merchant_id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(connection_out(state, info))
}

/// One merchant's connection, by the platform's id for them.
#[utoipa::path(
    get,
    path = "/api/platform/v1/merchants/external/{external_id}/connection",
    params(("external_id" = String, Path, description = "The platform's id for the merchant")),
    responses(
        (status = 200, description = "The merchant's connection", body = ConnectionOut),
        (status = 403, description = "The key lacks connections:read", body = ErrorBody),
        KeyAnswers,
        ExternalIdAnswers,
    ),
    security(("bearer" = [])),
    tag = "connections"
)]
pub async fn connection_by_external_id(
    State(state): State<AppState>,
    caller: Caller,
    external: ExternalId,
) -> Result<Json<ConnectionOut>, ApiError> {
    caller.require(Scope::ConnectionsRead)?;
    let merchant_id = external.merchant(&state).await?;
    connection_of(&state, merchant_id).await.map(Json)
}

/// Disconnects the merchant on the platform's behalf: tokens forgotten, history kept,
/// `connection.disconnected` sent. Answers the connection as it is afterwards.
#[utoipa::path(
    delete,
    path = "/api/platform/v1/merchants/external/{external_id}/connection",
    params(("external_id" = String, Path, description = "The platform's id for the merchant")),
    responses(
        (status = 200, description = "The connection, disconnected", body = ConnectionOut),
        (status = 403, description = "The key lacks connect:write", body = ErrorBody),
        (status = 409, description = "`not_connected`: the merchant never connected", body = ErrorBody),
        KeyAnswers,
        ExternalIdAnswers,
    ),
    security(("bearer" = [])),
    tag = "connections"
)]
pub async fn disconnect_by_external_id(
    State(state): State<AppState>,
    caller: Caller,
    external: ExternalId,
) -> Result<Json<ConnectionOut>, ApiError> {
    caller.require(Scope::ConnectWrite)?;
    let merchant_id = external.merchant(&state).await?;
    let disconnected = state
        .services
        .connections
        .disconnect_as(merchant_id, &caller.actor())
        .await
        .map_err(internal)?;
    if disconnected.is_none() {
        return Err(ApiError::NotConnected {
            message: "The merchant has not connected Airwallex.",
            reconnect_url: reconnect_url(&state),
        });
    }
    tracing::info!(merchant_id, key = %caller.0.id, "merchant disconnected by the platform");
    connection_of(&state, merchant_id).await.map(Json)
}
