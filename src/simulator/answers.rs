//! The simulator's error answers, in Airwallex's shapes: OAuth errors, API errors and
//! error pages.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::json;

use super::pages;
use super::state::TokenError;

pub fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

pub fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    (status, Html(pages::error(message))).into_response()
}

/// A redirect to the client with `pairs` (and `state`) added to its query.
pub fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "The redirect_uri is not a valid URL."),
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        match self {
            TokenError::InvalidRequest(description) => {
                token_error(StatusCode::BAD_REQUEST, "invalid_request", &description)
            }
            TokenError::InvalidClient => token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            TokenError::InvalidGrant(description) => token_error(StatusCode::BAD_REQUEST, "invalid_grant", description),
            TokenError::UnsupportedGrantType => token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type is not supported",
            ),
            // Airwallex reports this one in its API error shape.
            TokenError::ConcurrentRefresh => (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({
                    "code": "too_many_requests",
                    "message": "Concurrent token refresh is not allowed.",
                })),
            )
                .into_response(),
        }
    }
}
