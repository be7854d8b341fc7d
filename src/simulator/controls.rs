//! Test controls: the clock, fault injection, revocation, counters and reset.
//! Mounted under `/__sim`; they exist only in the simulator.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::state::{ConnectionStatus, Endpoint, FaultKind, RandomFaults};
use super::webhooks::spawn_webhook;
use super::Simulator;

pub fn router() -> Router<Simulator> {
    Router::new()
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance_clock))
        .route("/faults", post(add_faults))
        .route("/faults/random", post(set_random_faults))
        .route("/revoke", post(revoke))
        .route("/counters", get(counters))
        .route("/requests", get(requests))
        .route("/connections", get(connections))
        .route("/webhooks", get(webhooks))
        .route("/webhooks/redeliver", post(redeliver))
        .route("/reset", post(reset))
}

async fn clock(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    let clock = sim.clock();
    Json(json!({ "now": clock.now(), "offset": clock.offset() }))
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(sim): State<Simulator>, Json(body): Json<Advance>) -> Response {
    if body.seconds < 0 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "the clock only moves forward"})),
        )
            .into_response();
    }
    sim.clock().advance(body.seconds);
    clock(State(sim)).await.into_response()
}

#[derive(Deserialize)]
struct AddFaults {
    endpoint: Endpoint,
    fault: FaultKind,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

async fn add_faults(State(sim): State<Simulator>, Json(body): Json<AddFaults>) -> Response {
    if body.count > 100_000 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "count is at most 100000"})),
        )
            .into_response();
    }
    sim.inner.add_faults(body.endpoint, body.fault, body.count);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct SetRandomFaults {
    endpoint: Endpoint,
    #[serde(flatten)]
    faults: RandomFaults,
}

/// Every later call of the endpoint fails at random with these probabilities.
async fn set_random_faults(State(sim): State<Simulator>, Json(body): Json<SetRandomFaults>) -> Response {
    let RandomFaults { error500, drop } = body.faults;
    if !(0.0..=1.0).contains(&error500) || !(0.0..=1.0).contains(&drop) || error500 + drop > 1.0 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"message": "probabilities must be between 0 and 1"})),
        )
            .into_response();
    }
    sim.inner.set_random_faults(body.endpoint, body.faults);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Revoke {
    connection_id: Option<String>,
    account_id: Option<String>,
}

/// Revokes one connection, or every active connection of an account.
async fn revoke(State(sim): State<Simulator>, Json(body): Json<Revoke>) -> Response {
    let ids: Vec<String> = {
        let data = sim.inner.lock();
        data.connections
            .values()
            .filter(|c| c.status == ConnectionStatus::Active)
            .filter(|c| {
                body.connection_id.as_deref() == Some(c.id.as_str())
                    || body.account_id.as_deref() == Some(c.account_id.as_str())
            })
            .map(|c| c.id.clone())
            .collect()
    };
    if ids.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "no active connection matches"})),
        )
            .into_response();
    }
    for id in &ids {
        if let Some(revocation) = sim.inner.revoke(id) {
            spawn_webhook(sim.clone(), revocation);
        }
    }
    Json(json!({ "revoked": ids })).into_response()
}

async fn counters(State(sim): State<Simulator>) -> Json<super::Counters> {
    Json(sim.counters())
}

async fn connections(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    let data = sim.inner.lock();
    let list: Vec<_> = data
        .connections
        .values()
        .map(|c| {
            json!({
                "id": c.id,
                "client_id": c.client_id,
                "account_id": c.account_id,
                "scopes": c.scopes,
                "status": if c.status == ConnectionStatus::Active { "ACTIVE" } else { "REVOKED" },
                "created_at": c.created_at,
            })
        })
        .collect();
    Json(json!(list))
}

/// The webhook events sent so far (ids, names, accounts, bodies), oldest first.
async fn webhooks(State(sim): State<Simulator>) -> Json<Vec<super::SentWebhook>> {
    Json(sim.sent_webhooks())
}

#[derive(Deserialize)]
struct Redeliver {
    event_id: String,
}

/// Sends an earlier webhook event again now, as a late retry of Airwallex would.
async fn redeliver(State(sim): State<Simulator>, Json(body): Json<Redeliver>) -> Response {
    match sim.redeliver(&body.event_id).await {
        Ok(status) => Json(json!({"delivered": true, "status": status.as_u16()})).into_response(),
        Err(error) if error.starts_with("no webhook event") => {
            (StatusCode::NOT_FOUND, Json(json!({"message": error}))).into_response()
        }
        Err(error) => (StatusCode::BAD_GATEWAY, Json(json!({"message": error}))).into_response(),
    }
}

async fn reset(State(sim): State<Simulator>) -> StatusCode {
    sim.inner.reset();
    StatusCode::NO_CONTENT
}

/// `GET /__sim/requests`: the API requests received (line and headers), oldest first.
async fn requests(State(sim): State<Simulator>) -> Json<Vec<super::SeenRequest>> {
    Json(sim.requests())
}
