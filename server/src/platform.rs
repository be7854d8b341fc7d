//! The platform API (`/api/platform/v1/…`): JSON for the platform's own backend, with
//! service keys (`Authorization: Bearer awx_pk_…`) instead of sessions. Errors are
//! `{"code", "message"}` ([`errors`]); the key a request carries is checked by
//! [`caller::Caller`]; [`connections`], [`tokens`], [`sessions`] (connect sessions) and
//! [`airwallex`] (the proxy) answer; the OpenAPI 3.1 document at
//! [`OPENAPI_PATH`] is generated from the handlers' annotations ([`openapi`]), and a test
//! checks it against what they do.

pub mod airwallex;
pub mod caller;
pub mod connections;
pub mod errors;
pub mod openapi;
pub mod sessions;
pub mod tokens;

use axum::handler::Handler;
use axum::routing::{get, post, MethodRouter};
use axum::Router;

pub use errors::{ApiError, ErrorBody};

use crate::state::AppState;

/// Every platform API path, with its method: the router is built from these, and the
/// OpenAPI document must describe exactly them.
pub const PREFIX: &str = "/api/platform/v1";
pub const CONNECTIONS_PATH: &str = "/api/platform/v1/connections";
pub const CONNECTION_PATH: &str = "/api/platform/v1/merchants/{merchant_id}/connection";
pub const ACCESS_TOKEN_PATH: &str = "/api/platform/v1/merchants/{merchant_id}/access-token";
pub const OPENAPI_PATH: &str = "/api/platform/v1/openapi.json";
pub const CONNECT_SESSIONS_PATH: &str = "/api/platform/v1/connect-sessions";
pub const CONNECT_SESSION_PATH: &str = "/api/platform/v1/connect-sessions/{id}";
pub const EXTERNAL_CONNECTION_PATH: &str = "/api/platform/v1/merchants/external/{external_id}/connection";
pub const EXTERNAL_ACCESS_TOKEN_PATH: &str = "/api/platform/v1/merchants/external/{external_id}/access-token";
pub const PROXY_PATH: &str = "/api/platform/v1/merchants/{merchant_id}/airwallex/{path}";
pub const EXTERNAL_PROXY_PATH: &str = "/api/platform/v1/merchants/external/{external_id}/airwallex/{path}";
pub const ROUTES: [(&str, &str); 19] = [
    ("get", CONNECTIONS_PATH),
    ("get", CONNECTION_PATH),
    ("post", ACCESS_TOKEN_PATH),
    ("get", OPENAPI_PATH),
    ("post", CONNECT_SESSIONS_PATH),
    ("get", CONNECT_SESSION_PATH),
    ("get", EXTERNAL_CONNECTION_PATH),
    ("delete", EXTERNAL_CONNECTION_PATH),
    ("post", EXTERNAL_ACCESS_TOKEN_PATH),
    ("get", PROXY_PATH),
    ("post", PROXY_PATH),
    ("put", PROXY_PATH),
    ("patch", PROXY_PATH),
    ("delete", PROXY_PATH),
    ("get", EXTERNAL_PROXY_PATH),
    ("post", EXTERNAL_PROXY_PATH),
    ("put", EXTERNAL_PROXY_PATH),
    ("patch", EXTERNAL_PROXY_PATH),
    ("delete", EXTERNAL_PROXY_PATH),
];

/// A proxy route: every method it passes on to Airwallex goes to `handler`.
fn proxied<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    get(handler.clone())
        .post(handler.clone())
        .put(handler.clone())
        .patch(handler.clone())
        .delete(handler)
}

/// The routes, relative to [`PREFIX`] (nested there, with their own 404).
pub fn routes() -> Router<AppState> {
    let relative = |path: &'static str| &path[PREFIX.len()..];
    Router::new()
        .route(relative(CONNECTIONS_PATH), get(connections::list_connections))
        .route(relative(CONNECTION_PATH), get(connections::connection))
        .route(relative(ACCESS_TOKEN_PATH), post(tokens::access_token))
        .route(relative(OPENAPI_PATH), get(openapi::openapi))
        .route(relative(CONNECT_SESSIONS_PATH), post(sessions::create_session))
        .route(relative(CONNECT_SESSION_PATH), get(sessions::session))
        .route(
            relative(EXTERNAL_CONNECTION_PATH),
            get(connections::connection_by_external_id).delete(connections::disconnect_by_external_id),
        )
        .route(
            relative(EXTERNAL_ACCESS_TOKEN_PATH),
            post(tokens::access_token_by_external_id),
        )
        .route(
            "/merchants/{merchant_id}/airwallex/{*path}",
            proxied(airwallex::by_merchant_id),
        )
        .route(
            "/merchants/external/{external_id}/airwallex/{*path}",
            proxied(airwallex::by_external_id),
        )
        .fallback(|| async { ApiError::NotFoundRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // JSON bodies as large as the proxy's (1 MiB; 413 beyond).
        .layer(axum::extract::DefaultBodyLimit::max(airwallex::MAX_BODY_BYTES))
        // Tokens, merchants and Airwallex's answers: never kept by a cache on the way.
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        ))
}
