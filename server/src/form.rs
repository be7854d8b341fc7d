//! Reading form posts: [`HtmlForm`] parses a bounded urlencoded body; [`PageRequest`]
//! keeps the request's head so a refused form can be rendered again with its feedback.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Largest form body read.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// A form post's fields.
pub struct HtmlForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for HtmlForm<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| AppError::FormTooLarge)?;
        serde_urlencoded::from_bytes(&bytes)
            .map(HtmlForm)
            .map_err(|_| AppError::BadForm("not a urlencoded form of the expected fields"))
    }
}

/// The head of the request (method, URI, headers, extensions), for rendering a page in
/// answer to it.
pub struct PageRequest(pub Parts);

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageRequest(parts.clone()))
    }
}
