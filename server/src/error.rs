//! One error type for every handler: `Result<Response, AppError>` and `?`. Each variant
//! is answered with a styled page (or a redirect); internal causes are logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use app::paths::{self, LocalPath, Notice};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Nobody is signed in: log in first, then continue to `next`.
    #[error("login required")]
    LoginRequired { next: LocalPath, notice: Notice },
    /// Signed in, but not allowed here.
    #[error("operators only")]
    OperatorsOnly,
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The form could not be read (too large, malformed).
    #[error("bad form: {0}")]
    BadForm(&'static str),
    #[error("form too large")]
    FormTooLarge,
    /// The request cannot be done as things stand (e.g. removing the last operator).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Something this app depends on is down for now (storage, Airwallex).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or a failure with no better answer; the cause is logged.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn internal(cause: impl std::fmt::Display) -> AppError {
        AppError::Internal(cause.to_string())
    }
}

impl From<awx_onboard::sessions::SessionError> for AppError {
    fn from(error: awx_onboard::sessions::SessionError) -> Self {
        AppError::internal(error)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        AppError::internal(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::LoginRequired { next, notice } => {
                Redirect::to(&paths::login_then(&next, Some(notice))).into_response()
            }
            AppError::OperatorsOnly => crate::problem::plain_page(
                StatusCode::FORBIDDEN,
                "Operators only",
                "This part of awx-onboard is for the people who run it. Your connection is on the Connection page.",
            ),
            AppError::NotFound(text) => {
                crate::problem::plain_page(StatusCode::NOT_FOUND, "We could not find that", text)
            }
            AppError::BadForm(what) => {
                tracing::info!(what, "malformed form refused");
                crate::problem::plain_page(
                    StatusCode::BAD_REQUEST,
                    "That did not work",
                    "The form could not be read. Please go back and try again.",
                )
            }
            AppError::FormTooLarge => crate::problem::plain_page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too much data",
                "The form sent more than we accept.",
            ),
            AppError::Conflict(text) => crate::problem::plain_page(
                StatusCode::CONFLICT,
                "That cannot be done",
                &awx_onboard::html::escape(&text),
            ),
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "answered 503");
                crate::problem::plain_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Not available right now",
                    "Something we depend on is not answering. Please try again in a moment.",
                )
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "answered 500");
                crate::problem::plain_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "It is on our side, not yours. Please try again in a moment.",
                )
            }
        }
    }
}
