//! The operator's side of the platform API: service keys (created, shown once, revoked),
//! webhook endpoints (registered with a secret shown once, disabled), deliveries sent
//! again, and the token-read audit as CSV.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::dto::{FormFeedback, Revealed};
use app::paths::{self, Notice};
use awx_onboard::accounts::Account;
use awx_onboard::platform::connect_sessions::{SessionError, SessionRequest};
use awx_onboard::platform::keys::{parse_expiry_days, parse_scopes, KeyError, Scope};
use awx_onboard::platform::outbox::{parse_events, EndpointError};
use awx_onboard::security_log::SecurityEventKind;

use crate::access::{ActingOperator, OperatorUser, Sessions};
use crate::error::AppError;
use crate::form::PageRequest;
use crate::pages::render_page_with;
use crate::reauth::{confirm_get, OperatorPost};
use crate::state::AppState;

/// Tells every other operator, by email, what `operator` did.
async fn alert_others(state: &AppState, operator: &Account, what: String) {
    if let Err(error) = state.services.team.alert_others(operator, &what).await {
        tracing::error!(%error, "the other operators could not be alerted");
    }
}

/// What a new key can take out, for the other operators' alert (None: nothing sensitive).
fn reach_of(scopes: &[Scope]) -> Option<&'static str> {
    match (
        scopes.contains(&Scope::TokensRead),
        scopes.contains(&Scope::AirwallexProxy),
    ) {
        (true, true) => Some("can read every merchant's token and call Airwallex for every merchant"),
        (true, false) => Some("can read every merchant's token"),
        (false, true) => Some("can call Airwallex for every merchant"),
        (false, false) => None,
    }
}

/// `POST /operator/api-keys`: creates a key and shows it, once, on the keys page.
pub async fn create_key(State(state): State<AppState>, post: OperatorPost) -> Result<Response, AppError> {
    if let Some(ask) = post.confirm(&state, paths::OPERATOR_API_KEYS).await? {
        return Ok(ask);
    }
    let (form, operator) = (&post.form, &post.operator);
    let name = form.first("name");
    let created = match (
        parse_scopes(form.all("scope")),
        parse_expiry_days(form.first("expires_in_days")),
    ) {
        (Ok(scopes), Ok(days)) => {
            state
                .services
                .api_keys
                .create(name, &scopes, &operator.email, days)
                .await
        }
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    let outcome = match created {
        Ok((key, secret)) => {
            tracing::info!(key = %key.id, by = %operator.email, "API key created");
            let scopes = key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
            let subject = format!("key {} “{}” ({scopes})", key.id, key.name);
            post.log(&state, SecurityEventKind::ApiKeyCreated, &subject).await;
            if let Some(reach) = reach_of(&key.scopes) {
                let what = format!(
                    "{} created key “{}” ({}) that {reach}",
                    operator.email, key.name, key.id
                );
                alert_others(&state, operator, what).await;
            }
            let revealed = Revealed {
                label: format!("The new key “{}”", key.name),
                secret: secret.expose().to_string(),
            };
            Ok(Ok(revealed))
        }
        Err(KeyError::Database) => Err(AppError::internal("api keys")),
        Err(error) => Ok(Err(error.to_string())),
    };
    show_outcome(&state, post.page, paths::OPERATOR_API_KEYS, outcome).await
}

/// `POST /operator/connect-links`: a connect link for one of the platform's merchants (by
/// its external id), shown once, for support to send by hand.
pub async fn create_connect_link(State(state): State<AppState>, post: OperatorPost) -> Result<Response, AppError> {
    if let Some(ask) = post.confirm(&state, paths::OPERATOR_CONNECT_LINKS).await? {
        return Ok(ask);
    }
    let (form, operator) = (&post.form, &post.operator);
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
            let subject = format!("{} for external id {}", created.id, created.external_id);
            post.log(&state, SecurityEventKind::ConnectLinkCreated, &subject).await;
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
    show_outcome(&state, post.page, paths::OPERATOR_API_KEYS, outcome).await
}

/// `POST /operator/api-keys/{id}/revoke`.
pub async fn revoke_key(
    State(state): State<AppState>,
    acting: ActingOperator,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    match state.services.api_keys.revoke(&id, &acting.operator.email).await {
        Ok(()) => {
            tracing::info!(key = %id, by = %acting.operator.email, "API key revoked");
            acting
                .log(&state, SecurityEventKind::ApiKeyRevoked, &format!("key {id}"))
                .await;
            Ok(Redirect::to(&paths::with_notice(paths::OPERATOR_API_KEYS, Notice::KeyRevoked)).into_response())
        }
        Err(KeyError::NotFound) => Err(AppError::NotFound("There is no key with that id.")),
        Err(error) => Err(AppError::internal(error)),
    }
}

/// `POST /operator/webhooks`: registers an endpoint and shows its signing secret, once.
pub async fn create_endpoint(State(state): State<AppState>, post: OperatorPost) -> Result<Response, AppError> {
    if let Some(ask) = post.confirm(&state, paths::OPERATOR_WEBHOOKS).await? {
        return Ok(ask);
    }
    let (form, operator) = (&post.form, &post.operator);
    let url = form.first("url");
    let created = match parse_events(form.all("event")) {
        Ok(events) => state.services.webhooks.create(url, &events, &operator.email).await,
        Err(error) => Err(error),
    };
    let outcome = match created {
        Ok((id, secret)) => {
            tracing::info!(endpoint = id, by = %operator.email, "webhook endpoint registered");
            let subject = format!("endpoint {id} {}", url.trim());
            post.log(&state, SecurityEventKind::WebhookEndpointRegistered, &subject)
                .await;
            let what = format!(
                "{} registered the webhook endpoint {} (number {id}), which receives merchants' emails and connection events",
                operator.email,
                url.trim()
            );
            alert_others(&state, operator, what).await;
            let revealed = Revealed {
                label: "The endpoint's signing secret (verify deliveries with a Standard Webhooks library)".into(),
                secret: secret.expose().to_string(),
            };
            Ok(Ok(revealed))
        }
        Err(EndpointError::Database) => Err(AppError::internal("webhook endpoints")),
        Err(error) => Ok(Err(error.to_string())),
    };
    show_outcome(&state, post.page, paths::OPERATOR_WEBHOOKS, outcome).await
}

/// Renders `path` after a creating form post: `201` with the new secret shown once, or
/// `422` with what was wrong.
pub(crate) async fn show_outcome(
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
    acting: ActingOperator,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    match state.services.webhooks.disable(id).await {
        Ok(()) => {
            tracing::info!(endpoint = id, by = %acting.operator.email, "webhook endpoint disabled");
            let subject = format!("endpoint {id}");
            acting
                .log(&state, SecurityEventKind::WebhookEndpointDisabled, &subject)
                .await;
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

fn csv_response(name: &str, body: axum::body::Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
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

/// An export's request: who, from where, the session that must be fresh, and what it
/// covers: one connection (`…/connections/{id}/…`), or every connection from `?days=N` back.
pub struct ExportRequest {
    acting: ActingOperator,
    session: awx_onboard::sessions::SessionState,
    uri: axum::http::Uri,
    connection: Option<i64>,
    days: Option<i64>,
}

impl FromRequestParts<AppState> for ExportRequest {
    /// A refused path or query is answered as axum answers it.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, Response> {
        let acting = ActingOperator::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Sessions(session) = Sessions::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let connection = Option::<Path<i64>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?
            .map(|Path(id)| id);
        // One connection's export reads no query.
        let days = match connection {
            Some(_) => None,
            None => {
                let Query(query) = Query::<CsvQuery>::from_request_parts(parts, state)
                    .await
                    .map_err(IntoResponse::into_response)?;
                query.days
            }
        };
        Ok(ExportRequest {
            acting,
            session,
            uri: parts.uri.clone(),
            connection,
            days,
        })
    }
}

/// An audit as CSV, for every connection or one, from `days` back (all by default), once
/// the operator's second factor is fresh.
async fn export(state: &AppState, request: ExportRequest, audit: Audit) -> Result<Response, AppError> {
    if let Some(ask) = confirm_get(state, &request.session, &request.uri).await {
        return Ok(ask);
    }
    let (connection, days) = (request.connection, request.days);
    let since = days.map(|days| state.services.clock.now() - days.clamp(0, 3650) * 86_400);
    // Streamed a page at a time: an export of every row is never whole in memory.
    fn streamed(
        name: &'static str,
        chunks: impl futures::Stream<Item = Result<String, sqlx::Error>> + Send + 'static,
    ) -> axum::body::Body {
        use futures::TryStreamExt;
        axum::body::Body::from_stream(chunks.map_err(move |error| {
            tracing::error!(%error, export = name, "an export broke off");
            std::io::Error::other("the export could not be read")
        }))
    }
    let (name, csv) = match audit {
        Audit::TokenReads => (
            "token-reads",
            streamed("token-reads", state.services.token_reads.csv_stream(connection, since)),
        ),
        Audit::ProxyCalls => (
            "proxy-calls",
            streamed("proxy-calls", state.services.proxy_calls.csv_stream(connection, since)),
        ),
    };
    let file = match connection {
        Some(id) => format!("{name}-connection-{id}.csv"),
        None => format!("{name}.csv"),
    };
    request.acting.log(state, SecurityEventKind::CsvExported, &file).await;
    Ok(csv_response(&file, csv))
}

/// `GET /operator/token-reads.csv?days=N` and `GET /operator/connections/{id}/token-reads.csv`:
/// every access-token read, per key, connection and minute.
pub async fn token_reads_csv(State(state): State<AppState>, request: ExportRequest) -> Result<Response, AppError> {
    export(&state, request, Audit::TokenReads).await
}

/// `GET /operator/proxy-calls.csv?days=N` and `GET /operator/connections/{id}/proxy-calls.csv`:
/// every call through the Airwallex proxy.
pub async fn proxy_calls_csv(State(state): State<AppState>, request: ExportRequest) -> Result<Response, AppError> {
    export(&state, request, Audit::ProxyCalls).await
}
