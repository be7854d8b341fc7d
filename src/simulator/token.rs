//! `POST /oauth/token`: the authorization-code exchange and the rotating refresh.
// Handlers pass ready-made responses around as errors; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::answers::token_error;
use super::faults::{drop_response, pause, plan_fault};
use super::serve::ConnectionKill;
use super::state::{Endpoint, TokenError};
use super::webhooks::spawn_webhook;
use super::{Simulator, MAX_BODY_BYTES};
use axum::http::StatusCode;

/// Body of `POST /oauth/token`: every field optional so that missing ones get a proper error.
#[derive(Debug, Default, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

pub async fn token(State(sim): State<Simulator>, request: Request) -> Response {
    let kill = request.extensions().get::<ConnectionKill>().cloned();
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            sim.inner.count_token_call("other");
            return token_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body is too large",
            );
        }
    };
    let request: TokenRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            sim.inner.count_token_call("other");
            return TokenError::InvalidRequest("the body must be a JSON object".into()).into_response();
        }
    };
    let grant_type = request.grant_type.clone().unwrap_or_default();
    sim.inner.count_token_call(&grant_type);
    let plan = match plan_fault(&sim, Endpoint::Token) {
        Ok(plan) => plan,
        Err(response) => return response,
    };
    let result = handle_token(&sim, request, plan.delay).await;
    if plan.drop_response && result.is_ok() {
        return drop_response(kill).await;
    }
    match result {
        Ok(grant) => ([(header::CACHE_CONTROL, "no-store")], Json(grant)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn handle_token(
    sim: &Simulator,
    request: TokenRequest,
    delay: Option<Duration>,
) -> Result<super::state::TokenGrant, TokenError> {
    let grant_type = match request.grant_type.as_deref() {
        None | Some("") => return Err(TokenError::InvalidRequest("grant_type is required".into())),
        Some(g @ ("authorization_code" | "refresh_token")) => g,
        Some(_) => return Err(TokenError::UnsupportedGrantType),
    };
    let (Some(client_id), Some(client_secret)) = (request.client_id.as_deref(), request.client_secret.as_deref())
    else {
        return Err(TokenError::InvalidRequest(
            "client_id and client_secret are required".into(),
        ));
    };
    let client = sim.inner.client(client_id).ok_or(TokenError::InvalidClient)?;
    if !crate::secret::constant_time_eq(client.client_secret.as_bytes(), client_secret.as_bytes()) {
        return Err(TokenError::InvalidClient);
    }
    match grant_type {
        "authorization_code" => {
            let code = non_empty(&request.code, "code")?;
            let redirect_uri = non_empty(&request.redirect_uri, "redirect_uri")?;
            pause(delay).await;
            sim.inner
                .exchange_code(client_id, code, redirect_uri, request.code_verifier.as_deref())
        }
        _ => {
            let refresh_token = non_empty(&request.refresh_token, "refresh_token")?;
            let connection_id = sim.inner.begin_refresh(client_id, refresh_token)?;
            // Rotation takes a moment; a second refresh of the connection meanwhile gets 429.
            pause(delay).await;
            let (result, revocation) = sim.inner.finish_refresh(&connection_id, refresh_token);
            if let Some(revocation) = revocation {
                spawn_webhook(sim.clone(), revocation);
            }
            result
        }
    }
}

fn non_empty<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, TokenError> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(TokenError::InvalidRequest(format!("{name} is required"))),
    }
}
