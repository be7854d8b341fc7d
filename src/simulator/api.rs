//! Airwallex's API as the simulator serves it: `GET /api/v1/account/`, with the token rules
//! every API endpoint shares.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::answers::api_error;
use super::faults::{drop_response, plan_fault};
use super::serve::ConnectionKill;
use super::state::Endpoint;
use super::Simulator;

pub async fn account(State(sim): State<Simulator>, request: Request) -> Response {
    let kill = request.extensions().get::<ConnectionKill>().cloned();
    sim.inner.lock().counters.account_calls += 1;
    let plan = match plan_fault(&sim, Endpoint::Account) {
        Ok(plan) => plan,
        Err(response) => return response,
    };
    if let Some(delay) = plan.delay {
        tokio::time::sleep(delay).await;
    }
    let token = bearer(request.headers());
    let result = match token {
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
        return drop_response(kill).await;
    }
    match result {
        Ok(account) => Json(account.to_json()).into_response(),
        Err(response) => response,
    }
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}
