//! The API's errors: one JSON shape, `{"code", "message"}` (with `reason` and
//! `reconnect_url` where they help), and the status that goes with each.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use awx_onboard::platform::keys::Scope;

/// Seconds a caller should wait when Airwallex is unreachable.
const RETRY_UNAVAILABLE_SECONDS: u64 = 5;

/// An error as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `rate_limited`, `bad_request`, `invalid_return_url`,
    /// `path_not_allowed`, `not_found`, `email_in_use`, `method_not_allowed`, `not_connected`,
    /// `needs_reconnect`, `body_too_large`, `airwallex_unavailable`, `airwallex_timeout`,
    /// `internal`.
    pub code: String,
    pub message: String,
    /// With `needs_reconnect`: why (`revoked`, `refresh_rejected`, `refresh_expired`,
    /// `refresh_unconfirmed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `needs_reconnect` and `not_connected`: the merchant's connection page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_url: Option<String>,
    /// With `bad_request`, `invalid_return_url` and `email_in_use`: the request field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What every route taking a key may answer besides its own (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum KeyAnswers {
    /// No valid key
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// Rate limited; see Retry-After
    #[response(status = 429)]
    RateLimited(ErrorBody),
}

/// What every route naming a merchant may answer besides its own (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum MerchantAnswers {
    /// merchant_id is not a whole number
    #[response(status = 400)]
    BadMerchantId(ErrorBody),
    /// No such merchant
    #[response(status = 404)]
    NoSuchMerchant(ErrorBody),
}

/// What every route naming a merchant by the platform's id for them may answer besides its
/// own (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum ExternalIdAnswers {
    /// external_id is not valid
    #[response(status = 400)]
    BadExternalId(ErrorBody),
    /// No merchant with this external id
    #[response(status = 404)]
    NoSuchExternalId(ErrorBody),
}

/// What both proxy routes answer: Airwallex's answer, or why it was not asked (for the
/// OpenAPI document).
#[derive(utoipa::IntoResponses)]
pub enum ProxyAnswers {
    /// Airwallex's answer (any status of Airwallex's comes back as it is), with `awx-onboard-connection`
    #[response(status = 200)]
    Forwarded,
    /// `path_not_allowed` (the path is not under `api/v1/`), or the merchant in the path is not valid
    #[response(status = 400)]
    PathNotAllowed(ErrorBody),
    /// The key lacks airwallex:proxy
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such merchant
    #[response(status = 404)]
    NoSuchMerchant(ErrorBody),
    /// `needs_reconnect` (with `reason`) or `not_connected`
    #[response(status = 409)]
    NotConnected(ErrorBody),
    /// `body_too_large`: the request body is above 1 MiB
    #[response(status = 413)]
    BodyTooLarge(ErrorBody),
    /// `airwallex_unavailable`: Airwallex could not be reached
    #[response(status = 502)]
    Unreachable(ErrorBody),
    /// `airwallex_unavailable`: the token could not be renewed right now; see Retry-After
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// `airwallex_timeout`: no answer within AIRWALLEX_PROXY_TIMEOUT_SECONDS
    #[response(status = 504)]
    Timeout(ErrorBody),
}

#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    /// The key's expiry has passed.
    KeyExpired,
    Forbidden(Scope),
    /// The key has none of these scopes.
    ForbiddenAll(&'static [Scope]),
    /// A field of the request body is not acceptable.
    InvalidField {
        field: String,
        message: String,
    },
    InvalidReturnUrl(String),
    EmailInUse,
    /// Not found, with what was not found.
    Missing(&'static str),
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
    /// The proxy refuses to forward this path (it would leave `api/v1/`).
    PathNotAllowed(&'static str),
    /// A proxied request body above the limit.
    BodyTooLarge,
    /// The proxy's own limit in front of Airwallex for this connection.
    ProxyRateLimited {
        retry_after: u64,
    },
    /// Airwallex did not answer a proxied call in time.
    AirwallexTimeout,
    /// Airwallex could not be reached for a proxied call.
    AirwallexUnreachable,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = |code: &str, message: String| ErrorBody {
            code: code.to_string(),
            message,
            reason: None,
            reconnect_url: None,
            field: None,
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
            ApiError::KeyExpired => (
                StatusCode::UNAUTHORIZED,
                body(
                    "key_expired",
                    "This API key has expired: an operator can create a new one at /operator/api-keys.".into(),
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
            ApiError::ForbiddenAll(scopes) => (
                StatusCode::FORBIDDEN,
                body(
                    "forbidden",
                    format!(
                        "This key lacks the {} scope.",
                        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
                    ),
                ),
                None,
            ),
            ApiError::InvalidField { field, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    field: Some(field.clone()),
                    ..body("bad_request", format!("{field}: {message}"))
                },
                None,
            ),
            ApiError::InvalidReturnUrl(message) => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    field: Some("return_url".into()),
                    ..body("invalid_return_url", format!("return_url: {message}"))
                },
                None,
            ),
            ApiError::EmailInUse => (
                StatusCode::CONFLICT,
                ErrorBody {
                    field: Some("email".into()),
                    ..body("email_in_use", "email: this email belongs to another merchant.".into())
                },
                None,
            ),
            ApiError::Missing(message) => (StatusCode::NOT_FOUND, body("not_found", message.into()), None),
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
            ApiError::PathNotAllowed(message) => {
                (StatusCode::BAD_REQUEST, body("path_not_allowed", message.into()), None)
            }
            ApiError::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                body("body_too_large", "The request body is above 1 MiB.".into()),
                None,
            ),
            ApiError::ProxyRateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                body(
                    "rate_limited",
                    "Too many calls to Airwallex for this connection right now (the proxy's limit in front of \
                     Airwallex); Airwallex was not called."
                        .into(),
                ),
                Some(retry_after),
            ),
            ApiError::AirwallexTimeout => (
                StatusCode::GATEWAY_TIMEOUT,
                body(
                    "airwallex_timeout",
                    "Airwallex did not answer in time (AIRWALLEX_PROXY_TIMEOUT_SECONDS).".into(),
                ),
                None,
            ),
            ApiError::AirwallexUnreachable => (
                StatusCode::BAD_GATEWAY,
                body("airwallex_unavailable", "Airwallex could not be reached.".into()),
                None,
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

/// Logs what went wrong; the caller hears only that it did.
pub fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "platform API failed");
    ApiError::Internal
}
