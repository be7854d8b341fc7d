//! Rendering a Leptos page from a plain handler, for form posts that fail: the page is
//! rendered for `path` with the form's feedback and answered with the given status.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::provide_context;

use app::dto::FormFeedback;
use app::shell;

use crate::state::AppState;

pub async fn render_with_feedback(
    state: &AppState,
    mut parts: Parts,
    path: &str,
    feedback: FormFeedback,
    status: StatusCode,
) -> Response {
    parts.method = Method::GET;
    parts.uri = match path.parse() {
        Ok(uri) => uri,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let request = Request::from_parts(parts, Body::empty());
    let services = state.services.clone();
    let origin = state.authorize_origin.clone();
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_async_with_context(
        move || {
            provide_context(services.clone());
            provide_context(origin.clone());
            provide_context(feedback.clone());
        },
        move || shell(options.clone()),
    );
    let mut response = render(request).await.into_response();
    *response.status_mut() = status;
    response
}
