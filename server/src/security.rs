//! Security headers on every response: no sniffing, no referrer to other sites (callback URLs
//! carry codes), no framing, no caching of pages, and a CSP where the page did not set its own
//! (pages set one with their script nonce, see `app::csp`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub async fn headers(State(state): State<AppState>, request: Request<Body>, next: Next) -> Response {
    let mut response = with_error_page(next.run(request).await);
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, state.default_csp.clone());
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // same-origin: our own form posts keep their Origin (CSRF check); nothing leaks out.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if state.config.secure_cookies() {
        // Served over https: browsers should never try http again.
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// An error answered without a body (from a handler or a layer) gets a page in the app's
/// style instead of a blank screen; nothing internal is shown.
fn with_error_page(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let (title, text) = match status.as_u16() {
        403 => ("Not allowed", "You do not have access to this."),
        404 => (
            "We could not find that page",
            "The link may be old, or the address mistyped.",
        ),
        405 => ("Not allowed", "That action cannot be done this way."),
        413 => ("Too much data", "The form sent more than we accept."),
        s if s >= 500 => (
            "Something went wrong",
            "It is on our side, not yours. Please try again in a moment.",
        ),
        _ => (
            "That did not work",
            "The request could not be handled. Please go back and try again.",
        ),
    };
    crate::problem::plain_page(status, title, text)
}
