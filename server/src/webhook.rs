//! `POST /webhooks/airwallex`: signed disconnection events from Airwallex.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde_json::json;

use awx_onboard::webhooks::{self, WebhookOutcome, WebhookRejection};

use crate::state::AppState;

/// Webhook bodies are small JSON events.
pub const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

pub async fn airwallex(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let services = &state.services;
    let Some(secret) = services.webhook_secret.as_ref() else {
        // Without a secret nothing can be verified: the endpoint does not exist.
        return StatusCode::NOT_FOUND.into_response();
    };
    if body.len() > MAX_WEBHOOK_BYTES {
        return (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"error": "body too large"}))).into_response();
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let result = webhooks::handle(
        services.store(),
        secret.expose_secret().as_bytes(),
        header("x-timestamp"),
        header("x-signature"),
        &body,
        services.clock.now(),
    )
    .await;
    match result {
        Ok(outcome) => {
            match &outcome {
                WebhookOutcome::Revoked(ids) => tracing::info!(connections = ids.len(), "webhook: connections revoked"),
                WebhookOutcome::Ignored(name) => tracing::info!(event = %name, "webhook: event not acted on"),
                WebhookOutcome::UnknownAccount => {
                    tracing::warn!("webhook: no connection belongs to the account; acknowledged")
                }
                other => tracing::info!(outcome = other.as_str(), "webhook: nothing to change"),
            }
            Json(json!({"status": outcome.as_str()})).into_response()
        }
        Err(rejection) => {
            let status = match rejection {
                WebhookRejection::MissingHeaders
                | WebhookRejection::BadSignature
                | WebhookRejection::StaleTimestamp => StatusCode::UNAUTHORIZED,
                WebhookRejection::Malformed => StatusCode::BAD_REQUEST,
                WebhookRejection::Database => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::warn!(%rejection, status = status.as_u16(), "webhook rejected");
            (status, Json(json!({"error": rejection.to_string()}))).into_response()
        }
    }
}
