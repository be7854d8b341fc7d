//! Cross-site request forgery defence: a state-changing request must come from a page of
//! this app, as its `Origin` (or, without one, its `Referer`) shows.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Paths that other servers call (and that authenticate otherwise: signatures, service keys,
/// the unsubscribe token of a message that mail providers post to, RFC 8058).
const EXEMPT: [&str; 2] = [app::paths::WEBHOOK_AIRWALLEX, app::paths::EMAIL_UNSUBSCRIBE];
const EXEMPT_PREFIX: &str = "/api/platform/";

pub fn same_origin(headers: &axum::http::HeaderMap, origin: &str) -> bool {
    if let Some(value) = headers.get(header::ORIGIN) {
        return value.to_str().is_ok_and(|v| v == origin);
    }
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|referer| referer == origin || referer.starts_with(&format!("{origin}/")))
}

pub async fn check(State(state): State<AppState>, request: Request<Body>, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let path = request.uri().path();
    let exempt = EXEMPT.contains(&path) || path.starts_with(EXEMPT_PREFIX);
    if safe || exempt || same_origin(request.headers(), &state.config.public_origin()) {
        return next.run(request).await;
    }
    tracing::warn!(path = request.uri().path(), "refused a cross-site request");
    crate::problem::plain_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This request did not come from an awx-onboard page, so we did not act on it.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn origin_or_referer_must_be_this_app() {
        let origin = "https://onboard.example.com";
        let mut headers = HeaderMap::new();
        assert!(!same_origin(&headers, origin));
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("https://onboard.example.com/login"),
        );
        assert!(same_origin(&headers, origin));
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("https://onboard.example.com.evil.example/x"),
        );
        assert!(!same_origin(&headers, origin));
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("https://onboard.example.com/login"),
        );
        assert!(!same_origin(&headers, origin), "Origin wins over Referer");
        headers.insert(header::ORIGIN, HeaderValue::from_static("https://onboard.example.com"));
        assert!(same_origin(&headers, origin));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, origin));
    }
}
