//! Pages outside the Leptos app, in its style: for refusals that happen before any page
//! is rendered (no data, no scripts), and for a render that did not finish.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A small page in the app's style for refusals that happen before any page is rendered
/// (no data, no scripts).
pub fn plain_page(status: StatusCode, title: &str, text: &str) -> Response {
    page_with_body(
        status,
        title,
        &format!("<p class=\"muted\">{text}</p><a class=\"button\" href=\"/\">Back to the home page</a>"),
    )
}

/// A page outside the Leptos app around `body` (trusted HTML: escape what goes into it).
pub fn page_with_body(status: StatusCode, title: &str, body: &str) -> Response {
    page_with_eyebrow(status, &status.as_u16().to_string(), title, body)
}

/// [`page_with_body`] with `eyebrow` (escaped here) above the title instead of the status.
pub fn page_with_eyebrow(status: StatusCode, eyebrow: &str, title: &str, body: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · awx-onboard</title><link rel=\"stylesheet\" href=\"{css}\"></head>\
         <body><main class=\"container main\"><section class=\"card narrow center\">\
         <p class=\"eyebrow\">{eyebrow}</p><h1>{title}</h1>{body}</section></main></body></html>",
        title = awx_onboard::html::escape(title),
        eyebrow = awx_onboard::html::escape(eyebrow),
        css = crate::assets::stylesheet(),
    );
    (status, axum::response::Html(body)).into_response()
}
