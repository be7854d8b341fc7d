//! The platform API (`/api/platform/v1/…`): JSON for the platform's own backend, with
//! service keys (`Authorization: Bearer awx_pk_…`) instead of sessions. Errors are
//! `{"code", "message"}`. The OpenAPI 3.1 document at [`OPENAPI_PATH`] is generated from
//! the handlers' annotations below (utoipa), and a test checks it against what they do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use awx_onboard::platform::directory::{ConnectionInfo, Filter, DEFAULT_LIMIT, MAX_LIMIT};
use awx_onboard::platform::keys::{ApiKey, Scope};
use awx_onboard::store::ConnectionStatus;
use awx_onboard::vault::VaultError;

use crate::state::AppState;

/// Every platform API path, with its method: the router is built from these, and the
/// OpenAPI document must describe exactly them.
pub const PREFIX: &str = "/api/platform/v1";
pub const CONNECTIONS_PATH: &str = "/api/platform/v1/connections";
pub const CONNECTION_PATH: &str = "/api/platform/v1/merchants/{merchant_id}/connection";
pub const ACCESS_TOKEN_PATH: &str = "/api/platform/v1/merchants/{merchant_id}/access-token";
pub const OPENAPI_PATH: &str = "/api/platform/v1/openapi.json";
pub const ROUTES: [(&str, &str); 4] = [
    ("get", CONNECTIONS_PATH),
    ("get", CONNECTION_PATH),
    ("post", ACCESS_TOKEN_PATH),
    ("get", OPENAPI_PATH),
];

/// Seconds a caller should wait when Airwallex is unreachable.
const RETRY_UNAVAILABLE_SECONDS: u64 = 5;

/// The routes, relative to [`PREFIX`] (nested there, with their own 404).
pub fn routes() -> Router<AppState> {
    let relative = |path: &'static str| &path[PREFIX.len()..];
    Router::new()
        .route(relative(CONNECTIONS_PATH), get(list_connections))
        .route(relative(CONNECTION_PATH), get(connection))
        .route(relative(ACCESS_TOKEN_PATH), post(access_token))
        .route(relative(OPENAPI_PATH), get(openapi))
        .fallback(|| async { ApiError::NotFoundRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// An error as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `rate_limited`, `bad_request`, `not_found`,
    /// `method_not_allowed`, `not_connected`, `needs_reconnect`, `airwallex_unavailable`, `internal`.
    pub code: String,
    pub message: String,
    /// With `needs_reconnect`: why (`revoked`, `refresh_rejected`, `refresh_expired`,
    /// `refresh_unconfirmed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `needs_reconnect` and `not_connected`: the merchant's connection page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_url: Option<String>,
}

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    Forbidden(Scope),
    RateLimited {
        retry_after: u64,
    },
    BadRequest(String),
    NotFound,
    NotFoundRoute,
    MethodNotAllowed,
    NotConnected {
        message: &'static str,
        reconnect_url: String,
    },
    NeedsReconnect {
        reason: String,
        reconnect_url: String,
    },
    Unavailable,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = |code: &str, message: String| ErrorBody {
            code: code.to_string(),
            message,
            reason: None,
            reconnect_url: None,
        };
        let (status, body, retry_after) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                body(
                    "unauthorized",
                    "A valid API key is required: Authorization: Bearer awx_pk_…".into(),
                ),
                None,
            ),
            ApiError::Forbidden(scope) => (
                StatusCode::FORBIDDEN,
                body("forbidden", format!("This key lacks the {} scope.", scope.as_str())),
                None,
            ),
            ApiError::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                body("rate_limited", "Too many requests with this key; slow down.".into()),
                Some(retry_after),
            ),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, body("bad_request", message), None),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                body("not_found", "No merchant with this id.".into()),
                None,
            ),
            ApiError::NotFoundRoute => (
                StatusCode::NOT_FOUND,
                body(
                    "not_found",
                    "No such endpoint; see /api/platform/v1/openapi.json.".into(),
                ),
                None,
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                body(
                    "method_not_allowed",
                    "This endpoint does not take that method; see Allow.".into(),
                ),
                None,
            ),
            ApiError::NotConnected { message, reconnect_url } => (
                StatusCode::CONFLICT,
                ErrorBody {
                    reconnect_url: Some(reconnect_url),
                    ..body("not_connected", message.into())
                },
                None,
            ),
            ApiError::NeedsReconnect { reason, reconnect_url } => (
                StatusCode::CONFLICT,
                ErrorBody {
                    reason: Some(reason),
                    reconnect_url: Some(reconnect_url),
                    ..body(
                        "needs_reconnect",
                        "Airwallex no longer accepts this connection: the merchant must connect again.".into(),
                    )
                },
                None,
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                body(
                    "airwallex_unavailable",
                    "Airwallex is not reachable right now; try again shortly.".into(),
                ),
                Some(RETRY_UNAVAILABLE_SECONDS),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body("internal", "Something went wrong on our side.".into()),
                None,
            ),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Requests per key and second, per instance: a token bucket holding a second's worth.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request from `key`'s bucket; `Err(seconds)` to wait when it is empty.
    fn take(&self, key: &str, per_second: u32) -> Result<(), u64> {
        let rate = f64::from(per_second.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// The key a request carries, checked, within its rate limit.
pub struct Caller(pub ApiKey);

impl Caller {
    fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let key = match state.services.api_keys.authenticate(presented).await {
            Ok(Ok(key)) => key,
            Ok(Err(_)) => return Err(ApiError::Unauthorized),
            Err(_) => return Err(ApiError::Internal),
        };
        state
            .rate_limiter
            .take(&key.id, state.config.platform_rate_limit)
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        Ok(Caller(key))
    }
}

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

/// A valid Airwallex access token for the merchant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessTokenOut {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// RFC 3339; at least `REFRESH_MARGIN_SECONDS` away.
    pub expires_at: String,
    pub account_id: Option<String>,
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

fn reconnect_url(state: &AppState) -> String {
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
        reason: info.reason,
        account_id: info.account_id,
        business_name: info.business_name,
        connected_at: info.connected_at.map(awx_onboard::time::rfc3339),
        refresh_token_expires_at: info.refresh_token_expires_at.map(awx_onboard::time::rfc3339),
        reconnect_url: reconnect_url(state),
    }
}

/// The merchant id in the path, or a JSON 400.
fn merchant_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::BadRequest("merchant_id must be a whole number".into()))
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "platform API failed");
    ApiError::Internal
}

/// Lists merchants' connections, in a stable order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/platform/v1/connections",
    params(ListParams),
    responses(
        (status = 200, description = "A page of connections", body = ConnectionsPage),
        (status = 400, description = "A parameter is not valid", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The key lacks connections:read", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
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
        (status = 400, description = "merchant_id is not a whole number", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The key lacks connections:read", body = ErrorBody),
        (status = 404, description = "No such merchant", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "connections"
)]
pub async fn connection(
    State(state): State<AppState>,
    caller: Caller,
    merchant: Result<Path<i64>, PathRejection>,
) -> Result<Json<ConnectionOut>, ApiError> {
    caller.require(Scope::ConnectionsRead)?;
    let merchant_id = merchant_id(merchant)?;
    let info = state
        .services
        .directory
        .of_merchant(merchant_id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(connection_out(&state, info)))
}

/// A valid access token for the merchant's Airwallex account, refreshed if needed (one
/// refresh for all callers, across instances). Every read is recorded for operators.
#[utoipa::path(
    post,
    path = "/api/platform/v1/merchants/{merchant_id}/access-token",
    params(("merchant_id" = i64, Path, description = "The merchant's id in awx-onboard")),
    responses(
        (status = 200, description = "A token with at least REFRESH_MARGIN_SECONDS left", body = AccessTokenOut),
        (status = 400, description = "merchant_id is not a whole number", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "The key lacks tokens:read", body = ErrorBody),
        (status = 404, description = "No such merchant", body = ErrorBody),
        (status = 409, description = "`needs_reconnect` (with `reason`) or `not_connected`", body = ErrorBody),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorBody),
        (status = 503, description = "`airwallex_unavailable`; see Retry-After", body = ErrorBody),
    ),
    security(("bearer" = [])),
    tag = "tokens"
)]
pub async fn access_token(
    State(state): State<AppState>,
    caller: Caller,
    merchant: Result<Path<i64>, PathRejection>,
) -> Result<Json<AccessTokenOut>, ApiError> {
    caller.require(Scope::TokensRead)?;
    let merchant_id = merchant_id(merchant)?;
    let services = &state.services;
    let grant = match services.vault.access_token_for(merchant_id).await {
        Ok(grant) => grant,
        Err(VaultError::NotConnected) => {
            return Err(
                match services.directory.of_merchant(merchant_id).await.map_err(internal)? {
                    None => ApiError::NotFound,
                    Some(_) => ApiError::NotConnected {
                        message: "The merchant has not connected Airwallex.",
                        reconnect_url: reconnect_url(&state),
                    },
                },
            )
        }
        Err(VaultError::Disconnected) => {
            return Err(ApiError::NotConnected {
                message: "The merchant disconnected Airwallex.",
                reconnect_url: reconnect_url(&state),
            })
        }
        Err(VaultError::NeedsReconnect(reason)) => {
            return Err(ApiError::NeedsReconnect {
                reason: reason.as_str().to_string(),
                reconnect_url: reconnect_url(&state),
            })
        }
        Err(VaultError::Unavailable) => return Err(ApiError::Unavailable),
        Err(error) => return Err(internal(error)),
    };
    // No token leaves unrecorded.
    services
        .token_reads
        .record(&caller.0.id, grant.connection_id)
        .await
        .map_err(internal)?;
    Ok(Json(AccessTokenOut {
        access_token: grant.token.expose().to_string(),
        token_type: "Bearer".into(),
        expires_at: awx_onboard::time::rfc3339(grant.expires_at),
        account_id: grant.account_id,
    }))
}

/// Adds the bearer scheme the operations require.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "awx-onboard platform API",
        version = "1",
        description = "The merchants' Airwallex connections that awx-onboard keeps alive, for the platform's backend. \
                       Authenticate with a service key: `Authorization: Bearer awx_pk_…`."
    ),
    paths(list_connections, connection, access_token, openapi),
    components(schemas(ConnectionOut, ConnectionsPage, AccessTokenOut, ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "connections", description = "Merchants' connections"),
        (name = "tokens", description = "Access tokens, audited"),
        (name = "meta", description = "About the API")
    )
)]
pub struct PlatformApi;

/// This document: the OpenAPI 3.1 description of the API (no key needed).
#[utoipa::path(
    get,
    path = "/api/platform/v1/openapi.json",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json")),
    tag = "meta"
)]
pub async fn openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let json = DOCUMENT.get_or_init(|| PlatformApi::openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response()
}

/// Shared limiter state.
pub type SharedRateLimiter = Arc<RateLimiter>;
