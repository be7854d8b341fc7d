//! Connecting Airwallex: starting the authorization, the OAuth callback, disconnecting.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::paths::{self, LocalPath, Notice};
use awx_onboard::oauth::{AccountPin, CallbackFailure, CallbackParams, CallbackProblem};
use awx_onboard::platform::connect_sessions::{return_to, Outcome};
use awx_onboard::store::EventKind;

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
    // A browser a connect link signed in keeps the link's pin (disconnecting first does not
    // lift it); a merchant's own session may change accounts after a disconnect.
    let pin = match session.platform_return().await {
        Some(back) => AccountPin::of_connect_session(back.allow_account_change),
        None => AccountPin::UnlessDisconnected,
    };
    match state
        .services
        .authorization
        .start(account.id, &session_id, form.mode == "signup", None, pin)
        .await
    {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(error) => {
            tracing::error!(%error, "could not start an authorization");
            Ok(problem_redirect(&CallbackProblem::Internal))
        }
    }
}

pub(crate) fn problem_redirect(problem: &CallbackProblem) -> Response {
    let mut location = format!("{}?reason={}", paths::CONNECT_PROBLEM, problem.slug());
    if let CallbackProblem::AccountMismatch { expected } = problem {
        location.push_str("&expected=");
        location.push_str(&url::form_urlencoded::byte_serialize(expected.as_bytes()).collect::<String>());
    }
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
/// connection page, or to a page that explains what went wrong (nothing stored then). An
/// authorization started from a connect session ends it and goes back to the platform.
pub async fn callback(
    State(state): State<AppState>,
    CurrentUser(account): CurrentUser,
    Sessions(session): Sessions,
    Query(params): Query<CallbackParams>,
) -> Result<Response, AppError> {
    let account = account.ok_or_else(|| login_first(Notice::LoginToConnect))?;
    let session_id = session.id();
    let result = state
        .services
        .authorization
        .complete(account.id, session_id.as_deref(), &params)
        .await;
    let (outcome, reason, connect_session) = match result {
        Ok(done) => {
            tracing::info!(
                account_id = account.id,
                connection_id = done.connection_id,
                "Airwallex connected"
            );
            let Some(connect_session) = done.connect_session else {
                return Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, Notice::Connected)).into_response());
            };
            let outcome = if done.kind == EventKind::Reconnected {
                Outcome::Reconnected
            } else {
                Outcome::Connected
            };
            (outcome, None, connect_session)
        }
        Err(CallbackFailure {
            problem,
            connect_session,
        }) => {
            tracing::info!(
                account_id = account.id,
                problem = problem.slug(),
                "authorization not completed"
            );
            let Some(connect_session) = connect_session else {
                return Ok(problem_redirect(&problem));
            };
            match problem {
                CallbackProblem::Declined => (Outcome::Declined, None, connect_session),
                problem => (Outcome::Failed, Some(problem.slug()), connect_session),
            }
        }
    };
    back_to_platform(&state, &connect_session, outcome, reason).await
}

/// Ends the connect session and sends the browser back to the platform with the outcome.
pub(crate) async fn back_to_platform(
    state: &AppState,
    connect_session: &str,
    outcome: Outcome,
    reason: Option<&str>,
) -> Result<Response, AppError> {
    let ended = state
        .services
        .connect_sessions
        .finish(connect_session, outcome, reason)
        .await
        .map_err(|error| AppError::internal(format!("a connect session could not be finished: {error}")))?;
    let Some(ended) = ended else {
        return Ok(problem_redirect(&CallbackProblem::Internal));
    };
    // What the platform hears is how the session ended (the first ending, if it had one).
    let outcome = ended.outcome.unwrap_or(outcome);
    let location = return_to(
        &ended.return_url,
        &ended.id,
        outcome.as_str(),
        ended.reason.as_deref().or(reason),
    );
    Ok(Redirect::to(&location).into_response())
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
