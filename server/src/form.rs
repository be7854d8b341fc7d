//! Reading form posts: [`HtmlForm`] parses a bounded urlencoded body; [`PageRequest`]
//! keeps the request's head so a refused form can be rendered again with its feedback.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Largest form body read.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// A form post whose fields may repeat (`scope=…&scope=…`), which [`HtmlForm`]'s serde
/// mapping cannot express; bounded like it.
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Every field, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The first value of `name`, or "".
    pub fn first(&self, name: &str) -> &str {
        self.all(name).first().copied().unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequest<S> for FormFields {
    type Rejection = AppError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| AppError::FormTooLarge)?;
        Ok(FormFields(
            url::form_urlencoded::parse(&bytes)
                .map(|(key, value)| (key.into_owned(), value.into_owned()))
                .collect(),
        ))
    }
}

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
