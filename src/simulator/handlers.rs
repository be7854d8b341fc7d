//! Airwallex's endpoints as the simulator serves them.
// Handlers pass ready-made responses around as errors; their size does not matter here.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::json;

use super::accounts::SimAccount;
use super::pages;
use super::serve::ConnectionKill;
use super::state::{
    grants_account_details, ConnectionStatus, Endpoint, FaultKind, Revocation, SentWebhook, TokenError,
};
use super::{Simulator, MAX_BODY_BYTES};
use crate::webhook_signature;

/// Query of `GET /oauth/authorize`, and the hidden fields of the consent form.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub sign_up: Option<String>,
}

impl AuthorizeParams {
    pub fn sign_up(&self) -> bool {
        self.sign_up.as_deref() == Some("true")
    }
}

/// A checked authorization request.
pub struct ValidAuthorize {
    pub app_name: String,
    pub scopes: Vec<String>,
}

enum AuthorizeFailure {
    /// The client or redirect URI cannot be trusted: show an error, never redirect.
    Page(String),
    /// The redirect URI is registered: report the error to the client.
    Redirect(Response),
}

fn check_authorize(sim: &Simulator, params: &AuthorizeParams) -> Result<ValidAuthorize, AuthorizeFailure> {
    let client_id = params.client_id.as_deref().unwrap_or_default();
    let Some(client) = sim.inner.client(client_id) else {
        return Err(AuthorizeFailure::Page(format!(
            "Unknown client_id {client_id:?}. The app that sent you here is not registered with Airwallex."
        )));
    };
    let redirect_uri = params.redirect_uri.as_deref().unwrap_or_default();
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(AuthorizeFailure::Page(format!(
            "The redirect_uri {redirect_uri:?} is not registered for this app."
        )));
    }
    let fail = |error: &str, description: &str| {
        AuthorizeFailure::Redirect(redirect_with(
            redirect_uri,
            &[("error", error), ("error_description", description)],
            params.state.as_deref(),
        ))
    };
    if params.response_type.as_deref() != Some("code") {
        return Err(fail("unsupported_response_type", "response_type must be code"));
    }
    if params.state.as_deref().unwrap_or_default().is_empty() {
        return Err(fail("invalid_request", "state is required"));
    }
    let scopes: Vec<String> = params
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() || !scopes.iter().all(|s| grants_account_details(s)) {
        return Err(fail("invalid_scope", "unknown or missing scope"));
    }
    match (
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    ) {
        (None, None) => {}
        (Some(challenge), Some("S256")) if challenge.len() >= 43 => {}
        _ => {
            return Err(fail(
                "invalid_request",
                "PKCE needs a code_challenge with code_challenge_method=S256",
            ))
        }
    }
    Ok(ValidAuthorize {
        app_name: client.app_name.clone(),
        scopes,
    })
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(url) => url,
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "The redirect_uri is not a valid URL."),
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in pairs {
            query.append_pair(key, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

fn error_page(status: StatusCode, message: &str) -> Response {
    (status, Html(pages::error(message))).into_response()
}

pub async fn index() -> Html<String> {
    Html(pages::index())
}

pub async fn authorize_page(State(sim): State<Simulator>, Query(params): Query<AuthorizeParams>) -> Response {
    match check_authorize(&sim, &params) {
        Ok(valid) => {
            let accounts = sim.inner.lock().accounts.clone();
            Html(pages::consent(&params, &valid, &accounts)).into_response()
        }
        Err(AuthorizeFailure::Page(message)) => error_page(StatusCode::BAD_REQUEST, &message),
        Err(AuthorizeFailure::Redirect(response)) => response,
    }
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(flatten)]
    params: AuthorizeParams,
    decision: Option<String>,
    account: Option<String>,
    new_business_name: Option<String>,
    new_email: Option<String>,
}

pub async fn authorize_decision(State(sim): State<Simulator>, Form(form): Form<Decision>) -> Response {
    let valid = match check_authorize(&sim, &form.params) {
        Ok(valid) => valid,
        Err(AuthorizeFailure::Page(message)) => return error_page(StatusCode::BAD_REQUEST, &message),
        Err(AuthorizeFailure::Redirect(response)) => return response,
    };
    let params = &form.params;
    let redirect_uri = params.redirect_uri.as_deref().unwrap_or_default();
    let state = params.state.as_deref();
    if form.decision.as_deref() != Some("authorize") {
        return redirect_with(
            redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user declined access"),
            ],
            state,
        );
    }
    let account_id = match form.account.as_deref() {
        Some("new") if params.sign_up() => {
            let name = form.new_business_name.as_deref().unwrap_or_default().trim();
            let email = form.new_email.as_deref().unwrap_or_default().trim();
            if name.is_empty() || !email.contains('@') {
                let accounts = sim.inner.lock().accounts.clone();
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Html(pages::consent_with_error(
                        params,
                        &valid,
                        &accounts,
                        "Enter a business name and an email address to create your Airwallex account.",
                    )),
                )
                    .into_response();
            }
            let account = SimAccount::signed_up(name, email, sim.inner.now());
            let id = account.id.clone();
            sim.inner.lock().accounts.push(account);
            id
        }
        Some(id) if sim.inner.lock().accounts.iter().any(|a| a.id == id) => id.to_string(),
        _ => {
            let accounts = sim.inner.lock().accounts.clone();
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(pages::consent_with_error(
                    params,
                    &valid,
                    &accounts,
                    "Choose the account to connect.",
                )),
            )
                .into_response();
        }
    };
    let code = sim.inner.issue_code(
        params.client_id.as_deref().unwrap_or_default(),
        redirect_uri,
        &account_id,
        valid.scopes,
        params.code_challenge.clone(),
    );
    redirect_with(redirect_uri, &[("code", &code)], state)
}

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

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        match self {
            TokenError::InvalidRequest(description) => {
                token_error(StatusCode::BAD_REQUEST, "invalid_request", &description)
            }
            TokenError::InvalidClient => token_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ),
            TokenError::InvalidGrant(description) => token_error(StatusCode::BAD_REQUEST, "invalid_grant", description),
            TokenError::UnsupportedGrantType => token_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type is not supported",
            ),
            // Airwallex reports this one in its API error shape.
            TokenError::ConcurrentRefresh => (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({
                    "code": "too_many_requests",
                    "message": "Concurrent token refresh is not allowed.",
                })),
            )
                .into_response(),
        }
    }
}

/// What an injected fault asks of the call it hit.
#[derive(Default)]
struct FaultPlan {
    delay: Option<Duration>,
    drop_response: bool,
}

/// Takes the next fault for an endpoint. `Err` is the response to give at once (HTTP 500).
fn plan_fault(sim: &Simulator, endpoint: Endpoint) -> Result<FaultPlan, Response> {
    match sim.inner.take_fault(endpoint) {
        None => Ok(FaultPlan::default()),
        Some(FaultKind::Error500) => Err(match endpoint {
            Endpoint::Token => token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error"),
            Endpoint::Account => api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal error"),
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

async fn pause(delay: Option<Duration>) {
    match delay {
        Some(delay) => tokio::time::sleep(delay).await,
        None => tokio::task::yield_now().await,
    }
}

/// Resets the client's connection instead of answering. Never returns when served by
/// [`super::serve`]; elsewhere (no connection to kill) it answers 502.
async fn drop_response(kill: Option<ConnectionKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.trigger();
            std::future::pending::<()>().await;
            unreachable!("pending never completes")
        }
        None => StatusCode::BAD_GATEWAY.into_response(),
    }
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

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[derive(Debug, Deserialize)]
pub struct AppsQuery {
    account: Option<String>,
    disconnected: Option<String>,
}

pub async fn merchant_apps(State(sim): State<Simulator>, Query(query): Query<AppsQuery>) -> Response {
    let data = sim.inner.lock();
    let Some(account_id) = query.account else {
        return Html(pages::choose_account(&data.accounts)).into_response();
    };
    let Some(account) = data.accounts.iter().find(|a| a.id == account_id) else {
        return error_page(StatusCode::NOT_FOUND, "No such Airwallex account.");
    };
    let mut connections: Vec<_> = data
        .connections
        .values()
        .filter(|c| c.account_id == account_id && c.status == ConnectionStatus::Active)
        .cloned()
        .collect();
    connections.sort_by_key(|c| c.created_at);
    let apps: Vec<(super::state::SimConnection, String)> = connections
        .into_iter()
        .map(|c| {
            let name = sim
                .inner
                .client(&c.client_id)
                .map(|client| client.app_name.clone())
                .unwrap_or_else(|| c.client_id.clone());
            (c, name)
        })
        .collect();
    Html(pages::connected_apps(account, &apps, query.disconnected.is_some())).into_response()
}

#[derive(Debug, Deserialize)]
pub struct DisconnectForm {
    connection_id: String,
}

pub async fn merchant_disconnect(State(sim): State<Simulator>, Form(form): Form<DisconnectForm>) -> Response {
    let account_id = sim
        .inner
        .lock()
        .connections
        .get(&form.connection_id)
        .map(|c| c.account_id.clone());
    let Some(account_id) = account_id else {
        return error_page(StatusCode::NOT_FOUND, "That connection does not exist.");
    };
    if let Some(revocation) = sim.inner.revoke(&form.connection_id) {
        spawn_webhook(sim.clone(), revocation);
    }
    let mut location = url::Url::parse("http://sim/merchant/apps").expect("static URL parses");
    location
        .query_pairs_mut()
        .append_pair("account", &account_id)
        .append_pair("disconnected", "1");
    Redirect::to(&format!("/merchant/apps?{}", location.query().unwrap_or_default())).into_response()
}

/// A random version-4 UUID, as Airwallex's event ids look.
fn uuid_v4() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Announces a revoked connection with a signed `connection.disconnected` webhook, in
/// Airwallex's envelope; the event is kept so that it can be redelivered later.
pub fn spawn_webhook(sim: Simulator, revocation: Revocation) {
    let (Some(url), Some(secret)) = (revocation.webhook_url.clone(), revocation.webhook_secret.clone()) else {
        return;
    };
    let connection = &revocation.connection;
    let now = sim.inner.now();
    let id = uuid_v4();
    let body = json!({
        "id": id,
        "name": "connection.disconnected",
        "account_id": connection.account_id,
        "data": {
            "id": connection.id,
            "account_id": connection.account_id,
            "status": "DISCONNECTED",
            "authorized_scopes": connection.scopes,
        },
        // Airwallex writes offsets without a colon.
        "created_at": crate::time::rfc3339(now).replace('Z', "+0000"),
        "version": "2024-09-27",
        "source_id": connection.id,
    })
    .to_string();
    let event = SentWebhook {
        id,
        name: "connection.disconnected".into(),
        account_id: connection.account_id.clone(),
        url,
        secret,
        body,
    };
    sim.inner.lock().sent_webhooks.push(event.clone());
    tokio::spawn(async move {
        let _ = deliver(&sim, &event).await;
    });
}

/// Delivers an event (up to 3 attempts), signed with a fresh timestamp as a retry would be.
pub async fn deliver(sim: &Simulator, event: &SentWebhook) -> Result<StatusCode, String> {
    let timestamp = (sim.inner.now() * 1000).to_string();
    let signature = webhook_signature::sign(event.secret.as_bytes(), &timestamp, event.body.as_bytes());
    let mut last = Err("not sent".to_string());
    for attempt in 0..3u32 {
        let sent = sim
            .inner
            .http
            .post(&event.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-timestamp", &timestamp)
            .header("x-signature", &signature)
            .body(event.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                sim.inner.lock().counters.webhooks_sent += 1;
                return Ok(StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::OK));
            }
            Ok(response) => last = Err(format!("answered {}", response.status())),
            Err(error) => last = Err(error.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt))).await;
    }
    sim.inner.lock().counters.webhooks_failed += 1;
    tracing::warn!(target: "awx_sim", url = %event.url, "webhook delivery failed after 3 attempts");
    last
}
