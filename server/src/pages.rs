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

/// A small page in the app's style for refusals that happen before any page is rendered
/// (no data, no scripts).
pub fn plain_page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · awx-onboard</title><link rel=\"stylesheet\" href=\"/pkg/awx-onboard.css\"></head>\
         <body><main class=\"container main\"><section class=\"card narrow center\">\
         <p class=\"eyebrow\">{code}</p><h1>{title}</h1><p class=\"muted\">{text}</p>\
         <a class=\"button\" href=\"/\">Back to the home page</a></section></main></body></html>",
        code = status.as_u16(),
    );
    (status, axum::response::Html(body)).into_response()
}
