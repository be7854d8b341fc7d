//! The part of Airwallex's API a platform commonly calls with a merchant's token, with the
//! same token rules as `GET /api/v1/account/`: `GET /api/v1/balances/current`,
//! `POST /api/v1/beneficiaries/create` (its JSON validated: a bad body is 400
//! `{"code": "validation_error", "message", "source"}`) and `GET /api/v1/beneficiaries`
//! (what was created for the account, paged with `page_num` / `page_size`).
// A ready-made response is passed as the error; its size does not matter here.
#![allow(clippy::result_large_err)]

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::accounts::SimAccount;
use super::api::authorized;
use super::state::Endpoint;
use super::Simulator;
use crate::secret::random_urlsafe;

/// Airwallex's answers carry a request id (and, behind its load balancer, a cookie that a
/// proxy must not pass on).
fn answered(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Ok(id) = axum::http::HeaderValue::from_str(&format!("req_{}", random_urlsafe(12))) {
        headers.insert("x-request-id", id);
    }
    headers.insert(
        axum::http::header::SET_COOKIE,
        axum::http::HeaderValue::from_static("awx_lb=sim-node-1; Path=/; HttpOnly"),
    );
    response
}

fn count(sim: &Simulator, request: &Parts) {
    let key = format!("{} {}", request.method, request.uri.path());
    *sim.inner.lock().counters.api_calls.entry(key).or_default() += 1;
}

/// A data call whose token was accepted: the account it reaches.
struct Call {
    sim: Simulator,
    account: SimAccount,
    parts: Parts,
    body: Body,
}

/// Every data call: counted, its token checked with the rules of `GET /api/v1/account/`
/// (a refusal answered as Airwallex does), then `answer` for the account it reaches; with
/// the headers of Airwallex's answers either way.
async fn data_call<F, Fut>(sim: Simulator, request: Request, answer: F) -> Response
where
    F: FnOnce(Call) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let (parts, body) = request.into_parts();
    count(&sim, &parts);
    let account = match authorized(&sim, Endpoint::Api, &parts).await {
        Ok(account) => account,
        Err(refused) => return answered(refused),
    };
    let call = Call {
        sim,
        account,
        parts,
        body,
    };
    answered(answer(call).await)
}

fn validation_error(message: &str, source: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "code": "validation_error", "message": message, "source": source })),
    )
        .into_response()
}

/// A stable, account-specific figure (so each account has balances of its own).
fn amount(account_id: &str, salt: u32) -> f64 {
    let seed = account_id.bytes().fold(salt.wrapping_mul(2_654_435_761), |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    f64::from(seed % 10_000_000) / 100.0
}

pub async fn balances(State(sim): State<Simulator>, request: Request) -> Response {
    data_call(sim, request, balances_of).await
}

async fn balances_of(Call { account, .. }: Call) -> Response {
    let balances: Vec<Value> = ["AUD", "USD", "SGD"]
        .iter()
        .zip(1u32..)
        .map(|(currency, salt)| {
            let available = amount(&account.id, salt);
            let pending = amount(&account.id, salt + 10) / 10.0;
            let reserved = amount(&account.id, salt + 20) / 100.0;
            json!({
                "currency": currency,
                "available_amount": available,
                "pending_amount": pending,
                "reserved_amount": reserved,
                "total_amount": ((available + pending + reserved) * 100.0).round() / 100.0,
            })
        })
        .collect();
    Json(balances).into_response()
}

/// Checks a beneficiary as the simulator requires it; `Err((message, source))`.
fn check_beneficiary(body: &Value) -> Result<(), (String, &'static str)> {
    let Some(object) = body.as_object() else {
        return Err(("The request body must be a JSON object.".into(), "body"));
    };
    let beneficiary = object
        .get("beneficiary")
        .and_then(Value::as_object)
        .ok_or(("beneficiary is required.".to_string(), "beneficiary"))?;
    match beneficiary.get("entity_type").and_then(Value::as_str) {
        Some("COMPANY" | "PERSONAL") => {}
        _ => {
            return Err((
                "entity_type must be COMPANY or PERSONAL.".into(),
                "beneficiary.entity_type",
            ))
        }
    }
    let bank = beneficiary
        .get("bank_details")
        .and_then(Value::as_object)
        .ok_or(("bank_details is required.".to_string(), "beneficiary.bank_details"))?;
    let text = |name: &str| {
        bank.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
    };
    if text("account_name").is_empty() {
        return Err((
            "account_name is required.".into(),
            "beneficiary.bank_details.account_name",
        ));
    }
    if text("account_currency").len() != 3 || !text("account_currency").bytes().all(|b| b.is_ascii_uppercase()) {
        return Err((
            "account_currency must be a three-letter ISO 4217 code.".into(),
            "beneficiary.bank_details.account_currency",
        ));
    }
    if text("bank_country_code").len() != 2 || !text("bank_country_code").bytes().all(|b| b.is_ascii_uppercase()) {
        return Err((
            "bank_country_code must be a two-letter ISO 3166 code.".into(),
            "beneficiary.bank_details.bank_country_code",
        ));
    }
    if let Some(methods) = object.get("payment_methods") {
        let valid = methods
            .as_array()
            .is_some_and(|m| m.iter().all(|v| matches!(v.as_str(), Some("LOCAL" | "SWIFT"))));
        if !valid {
            return Err((
                "payment_methods must be a list of LOCAL and SWIFT.".into(),
                "payment_methods",
            ));
        }
    }
    Ok(())
}

pub async fn create_beneficiary(State(sim): State<Simulator>, request: Request) -> Response {
    data_call(sim, request, create).await
}

async fn create(Call { sim, account, body, .. }: Call) -> Response {
    let Ok(bytes) = to_bytes(body, 1 << 20).await else {
        return validation_error("The request body could not be read.", "body");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return validation_error("The request body must be JSON.", "body");
    };
    if let Err((message, source)) = check_beneficiary(&body) {
        return validation_error(&message, source);
    }
    let mut created = body;
    created["beneficiary_id"] = json!(format!("ben_{}", random_urlsafe(12)));
    created["created_at"] = json!(crate::time::rfc3339(sim.inner.now()));
    sim.inner
        .lock()
        .beneficiaries
        .entry(account.id.clone())
        .or_default()
        .push(created.clone());
    (StatusCode::CREATED, Json(created)).into_response()
}

pub async fn beneficiaries(State(sim): State<Simulator>, request: Request) -> Response {
    data_call(sim, request, list).await
}

async fn list(
    Call {
        sim, account, parts, ..
    }: Call,
) -> Response {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let number = |name: &str, default: usize| -> Result<usize, Response> {
        match query.iter().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v
                .parse::<usize>()
                .map_err(|_| validation_error(&format!("{name} must be a whole number."), name)),
        }
    };
    let (page_num, page_size) = match (number("page_num", 0), number("page_size", 100)) {
        (Ok(n), Ok(s)) if (1..=1000).contains(&s) => (n, s),
        (Ok(_), Ok(_)) => return validation_error("page_size must be from 1 to 1000.", "page_size"),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let all = sim
        .inner
        .lock()
        .beneficiaries
        .get(&account.id)
        .cloned()
        .unwrap_or_default();
    let items: Vec<Value> = all.iter().skip(page_num * page_size).take(page_size).cloned().collect();
    let has_more = all.len() > (page_num + 1) * page_size;
    Json(json!({ "items": items, "has_more": has_more })).into_response()
}
