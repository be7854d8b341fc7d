//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::airwallex;
use super::connections::{self, ConnectionOut, ConnectionsPage};
use super::errors::ErrorBody;
use super::sessions::{self, ConnectSessionOut, CreatedConnectSession, NewConnectSession};
use super::tokens::{self, AccessTokenOut};

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
    paths(
        connections::list_connections,
        connections::connection,
        tokens::access_token,
        openapi,
        sessions::create_session,
        sessions::session,
        connections::connection_by_external_id,
        connections::disconnect_by_external_id,
        tokens::access_token_by_external_id,
        airwallex::by_merchant_id,
        airwallex::by_external_id
    ),
    components(schemas(
        ConnectionOut,
        ConnectionsPage,
        AccessTokenOut,
        ErrorBody,
        NewConnectSession,
        CreatedConnectSession,
        ConnectSessionOut
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "connections", description = "Merchants' connections"),
        (name = "tokens", description = "Access tokens, audited"),
        (name = "connect sessions", description = "One-use links for the platform's own merchants to connect"),
        (name = "airwallex", description = "Airwallex's API on a merchant's behalf; the token never leaves"),
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
