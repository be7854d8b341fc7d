//! Connecting Airwallex: starting the authorization, the OAuth callback, disconnecting.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::paths::{self, LocalPath, Notice};
use awx_onboard::oauth::{CallbackParams, CallbackProblem};

use crate::access::{CurrentUser, Sessions, SignedIn};
use crate::error::AppError;
use crate::form::HtmlForm;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct StartForm {
    #[serde(default)]
    mode: String,
}

fn login_first(notice: Notice) -> AppError {
    AppError::LoginRequired {
        next: LocalPath::trusted(paths::CONNECTION),
        notice,
    }
}

/// `POST /oauth/start`: a fresh state and PKCE verifier, then 303 to Airwallex.
pub async fn start(
    State(state): State<AppState>,
    SignedIn(account): SignedIn,
    Sessions(session): Sessions,
    HtmlForm(form): HtmlForm<StartForm>,
) -> Result<Response, AppError> {
    let session_id = session.id().ok_or_else(|| login_first(Notice::LoginRequired))?;
    match state
        .services
        .authorization
        .start(account.id, &session_id, form.mode == "signup")
        .await
    {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(error) => {
            tracing::error!(%error, "could not start an authorization");
            Ok(problem_redirect(&CallbackProblem::Internal))
        }
    }
}

fn problem_redirect(problem: &CallbackProblem) -> Response {
    let mut location = format!("{}?reason={}", paths::CONNECT_PROBLEM, problem.slug());
    // Only a code of RFC 6749 is passed on: the page never shows text someone else chose.
    if let CallbackProblem::AirwallexError(code) = problem {
        if let Some(code) = app::pages::connect_problem::shown_error_code(code) {
            location.push_str("&code=");
            location.push_str(code);
        }
    }
    Redirect::to(&location).into_response()
}

/// `GET /oauth/callback`: completes the authorization, then sends the merchant to their
/// connection page, or to a page that explains what went wrong (nothing stored then).
pub async fn callback(
    State(state): State<AppState>,
    CurrentUser(account): CurrentUser,
    Sessions(session): Sessions,
    Query(params): Query<CallbackParams>,
) -> Result<Response, AppError> {
    let account = account.ok_or_else(|| login_first(Notice::LoginToConnect))?;
    let session_id = session.id();
    match state
        .services
        .authorization
        .complete(account.id, session_id.as_deref(), &params)
        .await
    {
        Ok((connection_id, _)) => {
            tracing::info!(account_id = account.id, connection_id, "Airwallex connected");
            Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, Notice::Connected)).into_response())
        }
        Err(problem) => {
            tracing::info!(
                account_id = account.id,
                problem = problem.slug(),
                "authorization not completed"
            );
            Ok(problem_redirect(&problem))
        }
    }
}

#[derive(Deserialize)]
pub struct DisconnectForm {
    #[serde(default)]
    confirm: String,
}

/// `POST /connection/disconnect` (confirmed): deletes the tokens, keeps the history.
pub async fn disconnect(
    State(state): State<AppState>,
    SignedIn(account): SignedIn,
    HtmlForm(form): HtmlForm<DisconnectForm>,
) -> Result<Response, AppError> {
    if form.confirm != "yes" {
        return Ok(Redirect::to(&format!("{}?confirm=disconnect", paths::CONNECTION)).into_response());
    }
    if let Some(connection_id) = state.services.connections.disconnect(account.id).await? {
        tracing::info!(
            account_id = account.id,
            connection_id,
            "merchant disconnected Airwallex"
        );
    }
    Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, Notice::Disconnected)).into_response())
}
