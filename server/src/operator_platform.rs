//! The operator's side of the platform API: service keys (created, shown once, revoked),
//! webhook endpoints (registered with a secret shown once, disabled), deliveries sent
//! again, and the token-read audit as CSV.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::dto::{FormFeedback, Revealed};
use app::paths::{self, Notice};
use awx_onboard::platform::connect_sessions::{SessionError, SessionRequest};
use awx_onboard::platform::keys::{parse_scopes, KeyError};
use awx_onboard::platform::outbox::{parse_events, EndpointError};

use crate::access::OperatorUser;
use crate::error::AppError;
use crate::form::{FormFields, PageRequest};
use crate::pages::render_page_with;
use crate::state::AppState;

/// `POST /operator/api-keys`: creates a key and shows it, once, on the keys page.
pub async fn create_key(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    page: PageRequest,
    form: FormFields,
) -> Result<Response, AppError> {
    let name = form.first("name");
    let scopes = parse_scopes(form.all("scope"));
    let created = match scopes {
        Ok(scopes) => state.services.api_keys.create(name, &scopes, &operator.email).await,
        Err(error) => Err(error),
    };
    let outcome = match created {
        Ok((key, secret)) => {
            tracing::info!(key = %key.id, by = %operator.email, "API key created");
            let revealed = Revealed {
                label: format!("The new key “{}”", key.name),
                secret: secret.expose().to_string(),
            };
            Ok(Ok(revealed))
        }
        Err(KeyError::Database) => Err(AppError::internal("api keys")),
        Err(error) => Ok(Err(error.to_string())),
    };
    show_outcome(&state, page, paths::OPERATOR_API_KEYS, outcome).await
}

/// `POST /operator/connect-links`: a connect link for one of the platform's merchants (by
/// its external id), shown once, for support to send by hand.
pub async fn create_connect_link(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    page: PageRequest,
    form: FormFields,
) -> Result<Response, AppError> {
    let email = form.first("email").trim();
    let request = SessionRequest {
        external_id: form.first("external_id").trim().to_string(),
        email: (!email.is_empty()).then(|| email.to_string()),
        return_url: form.first("return_url").trim().to_string(),
        ..SessionRequest::default()
    };
    let created_by = format!("operator:{}", operator.id);
    let outcome = match state.services.connect_sessions.create(&request, &created_by).await {
        Ok(created) => {
            tracing::info!(connect_session = %created.id, by = %operator.email, "connect link created by an operator");
            Ok(Ok(Revealed {
                label: format!(
                    "A connect link for “{}”, usable once until {}",
                    created.external_id,
                    awx_onboard::time::human_datetime(created.expires_at)
                ),
                secret: created.url.expose().to_string(),
            }))
        }
        Err(SessionError::Database) => Err(AppError::internal("connect sessions")),
        Err(error) => Ok(Err(error.to_string())),
    };
    show_outcome(&state, page, paths::OPERATOR_API_KEYS, outcome).await
}

/// `POST /operator/api-keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    match state.services.api_keys.revoke(&id, &operator.email).await {
        Ok(()) => {
            tracing::info!(key = %id, by = %operator.email, "API key revoked");
            Ok(Redirect::to(&paths::with_notice(paths::OPERATOR_API_KEYS, Notice::KeyRevoked)).into_response())
        }
        Err(KeyError::NotFound) => Err(AppError::NotFound("There is no key with that id.")),
        Err(error) => Err(AppError::internal(error)),
    }
}

/// `POST /operator/webhooks`: registers an endpoint and shows its signing secret, once.
pub async fn create_endpoint(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    page: PageRequest,
    form: FormFields,
) -> Result<Response, AppError> {
    let url = form.first("url");
    let created = match parse_events(form.all("event")) {
        Ok(events) => state.services.webhooks.create(url, &events, &operator.email).await,
        Err(error) => Err(error),
    };
    let outcome = match created {
        Ok((id, secret)) => {
            tracing::info!(endpoint = id, by = %operator.email, "webhook endpoint registered");
            let revealed = Revealed {
                label: "The endpoint's signing secret (verify deliveries with a Standard Webhooks library)".into(),
                secret: secret.expose().to_string(),
            };
            Ok(Ok(revealed))
        }
        Err(EndpointError::Database) => Err(AppError::internal("webhook endpoints")),
        Err(error) => Ok(Err(error.to_string())),
    };
    show_outcome(&state, page, paths::OPERATOR_WEBHOOKS, outcome).await
}

/// Renders `path` after a creating form post: `201` with the new secret shown once, or
/// `422` with what was wrong.
async fn show_outcome(
    state: &AppState,
    page: PageRequest,
    path: &'static str,
    outcome: Result<Result<Revealed, String>, AppError>,
) -> Result<Response, AppError> {
    match outcome? {
        Ok(revealed) => render_page_with(state, page.0, path, StatusCode::CREATED, None, Some(revealed)).await,
        Err(message) => {
            let feedback = FormFeedback { message, email: None };
            render_page_with(
                state,
                page.0,
                path,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(feedback),
                None,
            )
            .await
        }
    }
}

/// `POST /operator/webhooks/{id}/disable`.
pub async fn disable_endpoint(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    match state.services.webhooks.disable(id).await {
        Ok(()) => {
            tracing::info!(endpoint = id, by = %operator.email, "webhook endpoint disabled");
            Ok(Redirect::to(&paths::with_notice(paths::OPERATOR_WEBHOOKS, Notice::EndpointDisabled)).into_response())
        }
        Err(EndpointError::NotFound) => Err(AppError::NotFound("There is no active endpoint with that number.")),
        Err(error) => Err(AppError::internal(error)),
    }
}

/// `POST /operator/webhooks/deliveries/{id}/resend`.
pub async fn resend_delivery(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    match state.services.webhooks.resend(id).await {
        Ok(endpoint) => {
            tracing::info!(delivery = id, by = %operator.email, "webhook delivery queued again");
            Ok(Redirect::to(&paths::with_notice(&paths::operator_webhook(endpoint), Notice::Resent)).into_response())
        }
        Err(EndpointError::NotFound) => Err(AppError::NotFound("There is no such delivery to an active endpoint.")),
        Err(error) => Err(AppError::internal(error)),
    }
}

#[derive(Deserialize)]
pub struct CsvQuery {
    /// Only reads from this many days back (all by default).
    days: Option<i64>,
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response()
}

/// The operators' audit exports.
#[derive(Clone, Copy)]
enum Audit {
    /// Access-token reads, per key, connection and minute.
    TokenReads,
    /// Calls through the Airwallex proxy.
    ProxyCalls,
}

/// An audit as CSV, for every connection or one, from `days` back (all by default).
async fn export(
    state: &AppState,
    audit: Audit,
    connection: Option<i64>,
    days: Option<i64>,
) -> Result<Response, AppError> {
    let since = days.map(|days| state.services.clock.now() - days.clamp(0, 3650) * 86_400);
    let (name, csv) = match audit {
        Audit::TokenReads => ("token-reads", state.services.token_reads.csv(connection, since).await?),
        Audit::ProxyCalls => ("proxy-calls", state.services.proxy_calls.csv(connection, since).await?),
    };
    let file = match connection {
        Some(id) => format!("{name}-connection-{id}.csv"),
        None => format!("{name}.csv"),
    };
    Ok(csv_response(&file, csv))
}

/// `GET /operator/token-reads.csv?days=N`: every access-token read, per key, connection and minute.
pub async fn token_reads_csv(
    State(state): State<AppState>,
    OperatorUser(_): OperatorUser,
    Query(query): Query<CsvQuery>,
) -> Result<Response, AppError> {
    export(&state, Audit::TokenReads, None, query.days).await
}

/// `GET /operator/connections/{id}/token-reads.csv`.
pub async fn connection_token_reads_csv(
    State(state): State<AppState>,
    OperatorUser(_): OperatorUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    export(&state, Audit::TokenReads, Some(id), None).await
}

/// `GET /operator/proxy-calls.csv?days=N`: every call through the Airwallex proxy.
pub async fn proxy_calls_csv(
    State(state): State<AppState>,
    OperatorUser(_): OperatorUser,
    Query(query): Query<CsvQuery>,
) -> Result<Response, AppError> {
    export(&state, Audit::ProxyCalls, None, query.days).await
}

/// `GET /operator/connections/{id}/proxy-calls.csv`.
pub async fn connection_proxy_calls_csv(
    State(state): State<AppState>,
    OperatorUser(_): OperatorUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    export(&state, Audit::ProxyCalls, Some(id), None).await
}
