//! Logging: `tracing` with an env filter (`RUST_LOG`), one span per request carrying the
//! matched route (never the raw URI: OAuth callbacks carry codes in their query).

use axum::extract::MatchedPath;
use axum::http::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info,hyper=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .try_init();
}

type MakeSpan = fn(&Request<axum::body::Body>) -> tracing::Span;

pub fn trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeSpan> {
    TraceLayer::new_for_http().make_span_with(request_span as MakeSpan)
}

fn request_span(request: &Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("unmatched");
    // The client as the trusted proxy reports it (see `proxy`), else the peer.
    let client = request
        .extensions()
        .get::<crate::proxy::ClientAddr>()
        .map(|c| c.ip.to_string())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route, client)
}

/// Counts every answered request by method, matched route and status.
pub async fn count_requests(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    awx_onboard::metrics::record_http(&method, &route, response.status().as_u16());
    response
}
