//! Connect sessions over the API: the platform's backend creates a one-use link for one of
//! its own merchants (named by its own id) and reads how it ended.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use awx_onboard::platform::connect_sessions::{ConnectSession, SessionError, SessionRequest, Tags};
use awx_onboard::platform::keys::Scope;
use awx_onboard::time::rfc3339;

use super::caller::Caller;
use super::errors::{internal, ApiError, ErrorBody, KeyAnswers};
use crate::state::AppState;

/// What a platform sends to start a connection for one of its merchants.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // documents the body; it is read field by field to name the bad one
pub struct NewConnectSession {
    /// The platform's id for this merchant: 1 to 200 printable ASCII characters, unique.
    /// A new one creates the merchant; a known one reuses it.
    pub external_id: String,
    /// Required the first time; a different one updates the merchant's email.
    pub email: Option<String>,
    /// Where the browser goes afterwards; its origin must be in `PLATFORM_RETURN_ORIGINS`.
    /// `connect_session`, `status` (and `reason`) are added to its query.
    pub return_url: String,
    /// How the merchant is greeted on the landing page.
    pub business_name: Option<String>,
    /// At most 10 string pairs (key ≤ 64, value ≤ 255 characters), kept on the merchant and
    /// echoed in connections and webhooks. Given, they replace the merchant's tags.
    pub tags: Option<Tags>,
    /// Lead with "Create an Airwallex account".
    pub sign_up: Option<bool>,
    /// Accept a consent for another Airwallex account than the merchant's last one.
    pub allow_account_change: Option<bool>,
}

/// A new connect session: send the merchant's browser to `url` (it works once).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedConnectSession {
    /// `cs_…`
    pub id: String,
    /// The link, with its secret: usable once, until `expires_at`.
    pub url: String,
    /// RFC 3339.
    pub expires_at: String,
    pub merchant_id: i64,
    pub external_id: String,
}

/// A connect session and how it ended.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConnectSessionOut {
    pub id: String,
    pub external_id: Option<String>,
    pub merchant_id: i64,
    /// `pending`, `opened`, `completed` or `expired`.
    pub status: String,
    /// `connected`, `reconnected`, `declined` or `failed`; null until completed.
    pub outcome: Option<String>,
    /// With `failed`: why (`account_mismatch`, `exchange_failed`, `unreachable`, …).
    pub reason: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339.
    pub completed_at: Option<String>,
}

pub fn session_out(session: &ConnectSession, now: i64) -> ConnectSessionOut {
    ConnectSessionOut {
        id: session.id.clone(),
        external_id: session.external_id.clone(),
        merchant_id: session.merchant_id,
        status: session.status(now).as_str().to_string(),
        outcome: session.outcome.map(|o| o.as_str().to_string()),
        reason: session.reason.clone(),
        created_at: rfc3339(session.created_at),
        expires_at: rfc3339(session.expires_at),
        completed_at: session.completed_at.map(rfc3339),
    }
}

const FIELDS: [&str; 7] = [
    "external_id",
    "email",
    "return_url",
    "business_name",
    "tags",
    "sign_up",
    "allow_account_change",
];

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::InvalidField {
        field: field.to_string(),
        message: message.to_string(),
    }
}

fn text(body: &Map<String, Value>, field: &'static str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn flag(body: &Map<String, Value>, field: &'static str) -> Result<bool, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(field, "must be true or false")),
    }
}

/// Reads the body field by field, so that a bad one is named.
fn parse_request(body: &[u8]) -> Result<SessionRequest, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| ApiError::BadRequest("The body must be a JSON object.".into()))?;
    let Value::Object(body) = value else {
        return Err(ApiError::BadRequest("The body must be a JSON object.".into()));
    };
    if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(unknown, "is not a field of a connect session"));
    }
    let tags = match body.get("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Object(pairs)) => Some(
            pairs
                .iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k.clone(), v.clone())),
                    _ => Err(bad("tags", "each value must be a string")),
                })
                .collect::<Result<Tags, ApiError>>()?,
        ),
        Some(_) => return Err(bad("tags", "must be an object of string pairs")),
    };
    Ok(SessionRequest {
        external_id: text(&body, "external_id")?.ok_or_else(|| bad("external_id", "is required"))?,
        email: text(&body, "email")?,
        return_url: text(&body, "return_url")?.ok_or_else(|| ApiError::InvalidReturnUrl("is required".into()))?,
        business_name: text(&body, "business_name")?,
        tags,
        sign_up: flag(&body, "sign_up")?,
        allow_account_change: flag(&body, "allow_account_change")?,
    })
}

/// Creates a one-use link for one of the platform's merchants (created on first use of
/// its `external_id`, with no password: it signs in only through links).
#[utoipa::path(
    post,
    path = "/api/platform/v1/connect-sessions",
    request_body = NewConnectSession,
    responses(
        (status = 201, description = "The session; send the merchant's browser to its url", body = CreatedConnectSession),
        (status = 400, description = "A field is not valid (`field` names it); `invalid_return_url` for return_url", body = ErrorBody),
        (status = 403, description = "The key lacks connect:write", body = ErrorBody),
        (status = 409, description = "`email_in_use`: the email belongs to another merchant", body = ErrorBody),
        KeyAnswers,
    ),
    security(("bearer" = [])),
    tag = "connect sessions"
)]
pub async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedConnectSession>), ApiError> {
    caller.require(Scope::ConnectWrite)?;
    let request = parse_request(&body)?;
    let created = state
        .services
        .connect_sessions
        .create(&request, &caller.actor())
        .await
        .map_err(|error| match error {
            SessionError::Invalid { field, message } => bad(field, &message),
            SessionError::ReturnUrl(message) => ApiError::InvalidReturnUrl(message),
            SessionError::EmailInUse => ApiError::EmailInUse,
            error => internal(error),
        })?;
    tracing::info!(
        connect_session = %created.id,
        merchant_id = created.merchant_id,
        key = %caller.0.id,
        "connect session created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedConnectSession {
            id: created.id,
            url: created.url.expose().to_string(),
            expires_at: rfc3339(created.expires_at),
            merchant_id: created.merchant_id,
            external_id: created.external_id,
        }),
    ))
}

/// One connect session: where it stands and how it ended.
#[utoipa::path(
    get,
    path = "/api/platform/v1/connect-sessions/{id}",
    params(("id" = String, Path, description = "The session's id, `cs_…`")),
    responses(
        (status = 200, description = "The session", body = ConnectSessionOut),
        (status = 403, description = "The key lacks connect:write and connections:read", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        KeyAnswers,
    ),
    security(("bearer" = [])),
    tag = "connect sessions"
)]
pub async fn session(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ConnectSessionOut>, ApiError> {
    caller.require_any(&[Scope::ConnectWrite, Scope::ConnectionsRead])?;
    let Path(id) = id.map_err(|_| ApiError::Missing("No connect session with this id."))?;
    let found = state
        .services
        .connect_sessions
        .by_id(&id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::Missing("No connect session with this id."))?;
    Ok(Json(session_out(&found, state.services.clock.now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: ApiError) -> String {
        match error {
            ApiError::InvalidField { field, .. } => field,
            ApiError::InvalidReturnUrl(_) => "return_url".into(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases = [
            (r#"{"return_url":"https://p.example"}"#, "external_id"),
            (r#"{"external_id":7,"return_url":"https://p.example"}"#, "external_id"),
            (
                r#"{"external_id":"a","email":false,"return_url":"https://p.example"}"#,
                "email",
            ),
            (r#"{"external_id":"a"}"#, "return_url"),
            (r#"{"external_id":"a","return_url":"x","tags":[1]}"#, "tags"),
            (r#"{"external_id":"a","return_url":"x","tags":{"k":1}}"#, "tags"),
            (r#"{"external_id":"a","return_url":"x","sign_up":"yes"}"#, "sign_up"),
            (
                r#"{"external_id":"a","return_url":"x","allow_account_change":1}"#,
                "allow_account_change",
            ),
            (r#"{"external_id":"a","return_url":"x","surname":"x"}"#, "surname"),
        ];
        for (body, field) in cases {
            let error = parse_request(body.as_bytes()).expect_err(body);
            assert_eq!(field_of(error), field, "{body}");
        }
        assert!(matches!(parse_request(b"[]"), Err(ApiError::BadRequest(_))));
        let ok =
            parse_request(br#"{"external_id":"u1","return_url":"https://p.example","tags":{"plan":"gold"}}"#).unwrap();
        assert_eq!(ok.tags.unwrap()["plan"], "gold");
    }
}
