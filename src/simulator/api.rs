//! Airwallex's API as the simulator serves it: `GET /api/v1/account/`, and the token rules
//! every API endpoint shares ([`authorized`]). The rest of the API a platform calls is in
//! [`super::data`].

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::accounts::SimAccount;
use super::answers::api_error;
use super::faults::{drop_response, plan_fault};
use super::serve::ConnectionKill;
use super::state::{Endpoint, SeenRequest, SEEN_REQUESTS};
use super::Simulator;

pub async fn account(State(sim): State<Simulator>, request: Request) -> Response {
    sim.inner.lock().counters.account_calls += 1;
    let (parts, _) = request.into_parts();
    match authorized(&sim, Endpoint::Account, &parts).await {
        Ok(account) => Json(account.to_json()).into_response(),
        Err(response) => response,
    }
}

/// Remembers the request line and headers, meets any injected fault, then checks the
/// bearer token as Airwallex does: `Ok` with the token's account, or the answer to give.
pub async fn authorized(sim: &Simulator, endpoint: Endpoint, request: &Parts) -> Result<SimAccount, Response> {
    remember(sim, request);
    let kill = request.extensions.get::<ConnectionKill>().cloned();
    let plan = plan_fault(sim, endpoint)?;
    if let Some(delay) = plan.delay {
        tokio::time::sleep(delay).await;
    }
    let result = match bearer(&request.headers) {
        None => Err(api_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "A bearer access token is required.",
        )),
        Some(token) => sim.inner.authenticate(token).map_err(|(code, message)| {
            let status = if code == "insufficient_scope" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            api_error(status, code, message)
        }),
    };
    if plan.drop_response {
        return Err(drop_response(kill).await);
    }
    result
}

fn remember(sim: &Simulator, request: &Parts) {
    let seen = SeenRequest {
        method: request.method.to_string(),
        path: request.uri.path().to_string(),
        query: request.uri.query().map(str::to_string),
        headers: request
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).to_string(),
                )
            })
            .collect(),
    };
    let mut data = sim.inner.lock();
    if data.requests.len() >= SEEN_REQUESTS {
        data.requests.pop_front();
    }
    data.requests.push_back(seen);
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}
