//! Cross-site request forgery defence: a state-changing request must come from a page of
//! this app, as its `Origin` (or, without one, its `Referer`) shows.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::state::AppState;

/// Paths that other servers call (and that authenticate otherwise).
const EXEMPT: [&str; 1] = ["/webhooks/airwallex"];

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
    if safe || EXEMPT.contains(&request.uri().path()) || same_origin(request.headers(), &state.config.public_origin()) {
        return next.run(request).await;
    }
    tracing::warn!(path = request.uri().path(), "refused a cross-site request");
    (
        StatusCode::FORBIDDEN,
        Html(
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Request refused · awx-onboard</title>\
             <link rel=\"stylesheet\" href=\"/pkg/awx-onboard.css\"></head><body><main class=\"container main\">\
             <section class=\"card narrow center\"><p class=\"eyebrow\">403</p><h1>Request refused</h1>\
             <p class=\"muted\">This request did not come from an awx-onboard page, so we did not act on it.</p>\
             <a class=\"button\" href=\"/\">Back to the home page</a></section></main></body></html>",
        ),
    )
        .into_response()
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
