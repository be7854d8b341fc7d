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

/// A request method as a metrics label: the standard ones by name, any other as `other`
/// (a label per invented method would grow the metrics without bound).
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Counts every answered request by method, matched route and status.
pub async fn count_requests(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    awx_onboard::metrics::record_http(method, &route, response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn invented_methods_are_other() {
        use axum::http::Method;
        assert_eq!(super::method_label(&Method::GET), "GET");
        assert_eq!(super::method_label(&Method::DELETE), "DELETE");
        for invented in ["INVENTED1", "PROPFIND", "get"] {
            assert_eq!(
                super::method_label(&Method::from_bytes(invented.as_bytes()).unwrap()),
                "other"
            );
        }
    }
}
