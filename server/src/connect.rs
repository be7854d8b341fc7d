//! Connecting Airwallex: starting the authorization, the OAuth callback, disconnecting.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use awx_onboard::accounts::Account;
use awx_onboard::oauth::{CallbackParams, CallbackProblem};

use crate::auth::{current_account, read_form};
use crate::state::AppState;

const LOGIN_FIRST: &str = "/login?next=/connection&notice=login_required";

/// The signed-in account, or the response sending the visitor to log in first.
async fn signed_in_or_login(session: &Session) -> Result<Account, Response> {
    match current_account(session).await {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(Redirect::to(LOGIN_FIRST).into_response()),
        Err(status) => Err(status.into_response()),
    }
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    mode: String,
}

/// `POST /oauth/start`: a fresh state and PKCE verifier, then 303 to Airwallex.
pub async fn start(State(state): State<AppState>, session: Session, request: Request<Body>) -> Response {
    let (_, form) = match read_form::<StartForm>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let account = match signed_in_or_login(&session).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    let Some(session_id) = session.id() else {
        return Redirect::to(LOGIN_FIRST).into_response();
    };
    match state
        .services
        .start_authorization(account.id, &session_id.to_string(), form.mode == "signup")
        .await
    {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(error) => {
            tracing::error!(%error, "could not start an authorization");
            Redirect::to("/connect/problem?reason=internal").into_response()
        }
    }
}

/// `GET /oauth/callback`: completes the authorization, then sends the merchant to their
/// connection page, or to a page that explains what went wrong (nothing stored then).
pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<CallbackParams>,
) -> Response {
    let account = match current_account(&session).await {
        Ok(Some(account)) => account,
        Ok(None) => return Redirect::to("/login?next=/connection&notice=login_to_connect").into_response(),
        Err(status) => return status.into_response(),
    };
    let session_id = session.id().map(|id| id.to_string());
    match state
        .services
        .complete_authorization(account.id, session_id.as_deref(), &params)
        .await
    {
        Ok((connection_id, _)) => {
            tracing::info!(account_id = account.id, connection_id, "Airwallex connected");
            Redirect::to("/connection?notice=connected").into_response()
        }
        Err(problem) => {
            tracing::info!(
                account_id = account.id,
                problem = problem.slug(),
                "authorization not completed"
            );
            let mut location = format!("/connect/problem?reason={}", problem.slug());
            if let CallbackProblem::AirwallexError(code) = &problem {
                location.push_str("&code=");
                location.extend(url::form_urlencoded::byte_serialize(code.as_bytes()));
            }
            Redirect::to(&location).into_response()
        }
    }
}

#[derive(Deserialize)]
struct DisconnectForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /connection/disconnect` (confirmed): deletes the tokens, keeps the history.
pub async fn disconnect(State(state): State<AppState>, session: Session, request: Request<Body>) -> Response {
    let (_, form) = match read_form::<DisconnectForm>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let account = match signed_in_or_login(&session).await {
        Ok(account) => account,
        Err(response) => return response,
    };
    if form.confirm != "yes" {
        return Redirect::to("/connection?confirm=disconnect").into_response();
    }
    let services = &state.services;
    let row = match services.store().by_merchant(account.id).await {
        Ok(row) => row,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if let Some(row) = row {
        let actor = format!("merchant:{}", account.id);
        if services
            .store()
            .disconnect(row.id, &actor, services.clock.now())
            .await
            .is_err()
        {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        tracing::info!(
            account_id = account.id,
            connection_id = row.id,
            "merchant disconnected Airwallex"
        );
    }
    Redirect::to("/connection?notice=disconnected").into_response()
}
