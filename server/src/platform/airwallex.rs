//! The Airwallex proxy: the platform calls Airwallex on a merchant's behalf and the token
//! never leaves awx-onboard.
//!
//! `…/merchants/{merchant_id}/airwallex/{path}` (and by external id) forwards to
//! `{AIRWALLEX_API_URL}/{path}` paths under `api/v1/` only, with the query and body as sent
//! and the merchant's access token from the vault. Only `content-type`, `accept`,
//! `accept-language` and `x-api-version` pass upstream (the pinned `AIRWALLEX_API_VERSION`
//! when the caller gives none); only Airwallex's status, body, `content-type`,
//! `x-request-id` and `retry-after` come back, streamed, with `awx-onboard-connection`.
//! A 401 renews the token once through the vault's single flight and the call is made once
//! more, never twice. Limits per connection and instance answer 429 before Airwallex is
//! called; Airwallex's own 429 is passed back (with a `Retry-After`). Every forwarded call
//! is recorded (never a body or a query) and counted by status class.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use futures::Stream;

use awx_onboard::platform::keys::Scope;
use awx_onboard::platform::proxy_calls::{ProxyCall, ProxyCalls};
use awx_onboard::secret::AccessToken;

use super::caller::{Caller, ExternalId, MerchantPath};
use super::errors::{internal, ApiError, KeyAnswers, ProxyAnswers};
use super::tokens::refusal;
use crate::rate_limit::InFlight;
use crate::state::AppState;

/// The largest request body forwarded.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// What the answer says it came through.
pub const CONNECTION_HEADER: &str = "awx-onboard-connection";

/// Request headers that pass to Airwallex (besides `authorization` and `x-api-version`,
/// which the proxy sets).
const PASSED_UP: [HeaderName; 3] = [header::CONTENT_TYPE, header::ACCEPT, header::ACCEPT_LANGUAGE];
/// Response headers that come back.
const PASSED_DOWN: [&str; 3] = ["content-type", "x-request-id", "retry-after"];

/// The upstream path if it may be forwarded: under `api/v1/`, with no `.` or `..`
/// segment, no empty segment but a trailing slash, no `;`, and nothing percent-encoded that
/// could hide a slash, a backslash, a dot or another percent sign.
pub fn upstream_path(raw: &str) -> Result<&str, &'static str> {
    const REFUSED: &str = "Only paths under api/v1/ are forwarded to Airwallex.";
    if !raw.starts_with("api/v1/") {
        return Err(REFUSED);
    }
    let lower = raw.to_ascii_lowercase();
    // `%25` too: a server that decodes twice would read `%252e` as a dot. And no `;`: some
    // servers read `..;` as `..`.
    if ["%2f", "%5c", "%2e", "%00", "%25"]
        .iter()
        .any(|encoded| lower.contains(encoded))
        || raw.contains(['\\', ';'])
    {
        return Err(
            "Encoded slashes, backslashes, dots or percent signs, and semicolons, are not forwarded to Airwallex.",
        );
    }
    let segments: Vec<&str> = raw.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." || (segment.is_empty() && i + 1 != segments.len()) {
            return Err(REFUSED);
        }
    }
    Ok(raw)
}

/// The part of the request's path after `…/airwallex/`, as it arrived (still encoded).
fn raw_rest(request: &Request, merchant_segments: usize) -> Option<String> {
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map(|uri| uri.0.path().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let relative = path.strip_prefix(super::PREFIX).unwrap_or(&path);
    // "/merchants/{id}/airwallex/rest" or "/merchants/external/{id}/airwallex/rest"
    let pieces: Vec<&str> = relative.splitn(merchant_segments + 3, '/').collect();
    match pieces.as_slice() {
        [.., "airwallex", rest] if pieces.len() == merchant_segments + 3 => Some(rest.to_string()),
        _ => None,
    }
}

/// `…/merchants/{merchant_id}/airwallex/{path}`
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/platform/v1/merchants/{merchant_id}/airwallex/{path}",
    params(
        ("merchant_id" = i64, Path, description = "The merchant's id in awx-onboard"),
        ("path" = String, Path, description = "Airwallex's path, under `api/v1/` (e.g. `api/v1/balances/current`); the query string is passed as sent"),
    ),
    responses(
        ProxyAnswers,
        KeyAnswers,
    ),
    security(("bearer" = [])),
    tag = "airwallex"
)]
pub async fn by_merchant_id(
    State(state): State<AppState>,
    caller: Caller,
    MerchantPath(merchant_id): MerchantPath,
    request: Request,
) -> Response {
    answered(proxy(&state, &caller, merchant_id, request, 2).await)
}

/// `…/merchants/external/{external_id}/airwallex/{path}`
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/platform/v1/merchants/external/{external_id}/airwallex/{path}",
    params(
        ("external_id" = String, Path, description = "The platform's id for the merchant"),
        ("path" = String, Path, description = "Airwallex's path, under `api/v1/`"),
    ),
    responses(
        ProxyAnswers,
        KeyAnswers,
    ),
    security(("bearer" = [])),
    tag = "airwallex"
)]
pub async fn by_external_id(
    State(state): State<AppState>,
    caller: Caller,
    external: ExternalId,
    request: Request,
) -> Response {
    let merchant = match caller.require(Scope::AirwallexProxy) {
        Ok(()) => external.merchant(&state).await,
        Err(error) => Err(error),
    };
    answered(match merchant {
        Ok(merchant_id) => proxy(&state, &caller, merchant_id, request, 3).await,
        Err(error) => Err(error),
    })
}

/// The answer, counted by status class.
fn answered(result: Result<Response, ApiError>) -> Response {
    let response = match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    awx_onboard::metrics::record_proxy(response.status().as_u16());
    response
}

async fn proxy(
    state: &AppState,
    caller: &Caller,
    merchant_id: i64,
    request: Request,
    merchant_segments: usize,
) -> Result<Response, ApiError> {
    caller.require(Scope::AirwallexProxy)?;
    if !matches!(
        *request.method(),
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        // (axum answers HEAD with the GET route; Airwallex is not asked.)
        return Err(ApiError::MethodNotAllowed);
    }
    let rest = raw_rest(&request, merchant_segments).ok_or(ApiError::PathNotAllowed(
        "Only paths under api/v1/ are forwarded to Airwallex.",
    ))?;
    let path = upstream_path(&rest).map_err(ApiError::PathNotAllowed)?.to_string();
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_string);
    let headers = request.headers().clone();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::BodyTooLarge);
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BodyTooLarge)?;

    let services = &state.services;
    // The limits first (a merchant has one connection): a call past them costs nothing,
    // not even a token renewal.
    let limits = &state.config.airwallex.proxy;
    let in_flight = state
        .proxy_limiter
        .admit(merchant_id, limits.rate_per_second, limits.concurrency)
        .map_err(|retry_after| ApiError::ProxyRateLimited { retry_after })?;
    let grant = match services.vault.access_token_for(merchant_id).await {
        Ok(grant) => grant,
        Err(error) => return Err(refusal(state, merchant_id, error).await),
    };

    let call = Upstream {
        state,
        method: &method,
        path: &path,
        query: query.as_deref(),
        headers: &headers,
        body: &body,
    };
    let started = Instant::now();
    let audit = |status: u16, response_bytes: i64| ProxyCall {
        key_id: caller.0.id.clone(),
        connection_id: grant.connection_id,
        method: method.to_string(),
        path: path.clone(),
        status,
        duration_ms: started.elapsed().as_millis() as i64,
        request_bytes: body.len() as i64,
        response_bytes,
        at: services.proxy_calls.now(),
    };
    let mut upstream = match call.send(&grant.token).await {
        Ok(upstream) => upstream,
        Err(error) => {
            services.proxy_calls.record(audit(failure_status(&error), 0));
            return Err(error);
        }
    };
    let mut connection_id = grant.connection_id;
    if upstream.status() == reqwest::StatusCode::UNAUTHORIZED {
        // Once: a token Airwallex refused is renewed (shared by every caller it was
        // refused to) and the call made again. Whatever comes back then is the answer.
        drop(upstream);
        tracing::info!(connection_id, "Airwallex refused the access token; renewing it once");
        let renewed = match services.vault.renew_rejected(&grant).await {
            Ok(renewed) => renewed,
            Err(error) => {
                services.proxy_calls.record(audit(401, 0));
                return Err(refusal(state, merchant_id, error).await);
            }
        };
        connection_id = renewed.connection_id;
        upstream = match call.send(&renewed.token).await {
            Ok(upstream) => upstream,
            Err(error) => {
                services.proxy_calls.record(audit(failure_status(&error), 0));
                return Err(error);
            }
        };
    }
    let status = upstream.status();
    let mut response = Response::builder().status(status.as_u16());
    let answer_headers = response.headers_mut().expect("a fresh builder");
    for name in PASSED_DOWN {
        if let Some(value) = upstream.headers().get(name) {
            answer_headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS && !answer_headers.contains_key(header::RETRY_AFTER) {
        answer_headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
    }
    answer_headers.insert(CONNECTION_HEADER, HeaderValue::from(connection_id));
    let record = audit(status.as_u16(), 0);
    let stream = Audited {
        inner: Box::pin(upstream.bytes_stream()),
        bytes: 0,
        ending: Some((services.proxy_calls.clone(), record, in_flight, started)),
    };
    response.body(Body::from_stream(stream)).map_err(internal)
}

/// The status recorded for a call that got no answer.
fn failure_status(error: &ApiError) -> u16 {
    match error {
        ApiError::AirwallexTimeout => 504,
        _ => 502,
    }
}

/// One upstream call, to be made with a token (twice at most).
struct Upstream<'a> {
    state: &'a AppState,
    method: &'a Method,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

impl Upstream<'_> {
    async fn send(&self, token: &AccessToken) -> Result<reqwest::Response, ApiError> {
        let mut url = format!("{}/{}", self.state.airwallex.api_url, self.path);
        if let Some(query) = self.query {
            url.push('?');
            url.push_str(query);
        }
        let version = self.headers.get("x-api-version").cloned().unwrap_or_else(|| {
            HeaderValue::from_str(&self.state.config.airwallex.api_version).unwrap_or(HeaderValue::from_static(""))
        });
        let mut request = self
            .state
            .proxy_client
            .request(self.method.clone(), url)
            .bearer_auth(token.expose())
            .header("x-api-version", version);
        for name in &PASSED_UP {
            if let Some(value) = self.headers.get(name) {
                request = request.header(name, value);
            }
        }
        if !self.body.is_empty() || matches!(*self.method, Method::POST | Method::PUT | Method::PATCH) {
            request = request.body(self.body.clone());
        }
        request.send().await.map_err(|error| {
            if error.is_timeout() {
                ApiError::AirwallexTimeout
            } else {
                tracing::warn!(error = %error.without_url(), "Airwallex could not be reached through the proxy");
                ApiError::AirwallexUnreachable
            }
        })
    }
}

/// The upstream body on its way back: counts its bytes, and when it ends (or the caller
/// goes away) records the call and frees its place in the connection's limit.
struct Audited {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    bytes: i64,
    ending: Option<(ProxyCalls, ProxyCall, InFlight, Instant)>,
}

impl Audited {
    fn end(&mut self) {
        if let Some((calls, mut call, in_flight, started)) = self.ending.take() {
            call.response_bytes = self.bytes;
            call.duration_ms = started.elapsed().as_millis() as i64;
            calls.record(call);
            drop(in_flight);
        }
    }
}

impl Stream for Audited {
    type Item = reqwest::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => self.bytes += chunk.len() as i64,
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.end(),
            Poll::Pending => {}
        }
        next
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::upstream_path;

    #[test]
    fn only_paths_under_api_v1_pass() {
        for allowed in [
            "api/v1/balances/current",
            "api/v1/account/",
            "api/v1/beneficiaries",
            "api/v1/beneficiaries/ben_1%20x",
        ] {
            assert_eq!(upstream_path(allowed), Ok(allowed), "{allowed}");
        }
        for refused in [
            "oauth/token",
            "api/v2/x",
            "api/v1/../../oauth/token",
            "api/v1/./account",
            "api/v1//account",
            "api/v1/%2e%2e/%2e%2e/oauth/token",
            "api/v1/..%2f..%2foauth/token",
            "api/v1/%2F..%2Foauth",
            "api/v1/..;/oauth/token",
            "api/v1/%252e%252e/oauth/token",
            "api/v1/x\\..\\oauth",
            "api%2fv1/account",
            "",
        ] {
            assert!(upstream_path(refused).is_err(), "{refused}");
        }
    }
}
