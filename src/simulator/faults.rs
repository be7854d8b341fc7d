//! Injected faults as a call meets them: a 500 at once, a delay, or the answer dropped.
// A ready-made response is passed as the error; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::answers::{api_error, token_error};
use super::serve::ConnectionKill;
use super::state::{Endpoint, FaultKind};
use super::Simulator;

/// What an injected fault asks of the call it hit.
#[derive(Default)]
pub struct FaultPlan {
    pub delay: Option<Duration>,
    pub drop_response: bool,
}

/// Takes the next fault for an endpoint. `Err` is the response to give at once (HTTP 500).
pub fn plan_fault(sim: &Simulator, endpoint: Endpoint) -> Result<FaultPlan, Response> {
    match sim.inner.take_fault(endpoint) {
        None => Ok(FaultPlan::default()),
        Some(FaultKind::Error500) => Err(match endpoint {
            Endpoint::Token => token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error"),
            Endpoint::Account | Endpoint::Api => {
                api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal error")
            }
        }),
        Some(FaultKind::Error401) => Err(match endpoint {
            Endpoint::Token => token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            Endpoint::Account | Endpoint::Api => api_error(
                StatusCode::UNAUTHORIZED,
                "credentials_invalid",
                "The access token is invalid.",
            ),
        }),
        Some(FaultKind::Error429) => Err(match endpoint {
            Endpoint::Token => token_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", "slow down"),
            Endpoint::Account | Endpoint::Api => api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests; slow down.",
            ),
        }),
        Some(FaultKind::Delay { ms }) => Ok(FaultPlan {
            delay: Some(Duration::from_millis(ms)),
            drop_response: false,
        }),
        Some(FaultKind::Drop) => Ok(FaultPlan {
            delay: None,
            drop_response: true,
        }),
    }
}

pub async fn pause(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => tokio::task::yield_now().await,
    }
}

/// Resets the client's connection instead of answering. Never returns when served by
/// [`super::serve`]; elsewhere (no connection to kill) it answers 502.
pub async fn drop_response(kill: Option<ConnectionKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.trigger();
            std::future::pending::<()>().await;
            unreachable!("pending never completes")
        }
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
}
