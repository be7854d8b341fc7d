//! Sign-up, log-in and log-out: plain form posts, the same with and without JavaScript.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::dto::FormFeedback;
use app::paths::{self, LocalPath, Notice};
use awx_onboard::accounts::second_factor::FactorStatus;
use awx_onboard::accounts::{AccountError, Password, Role, SIGN_UP_WINDOW_SECONDS, THROTTLE_WINDOW_SECONDS};
use awx_onboard::sessions::PendingSignIn;

use crate::access::Sessions;
use crate::error::AppError;
use crate::form::{HtmlForm, PageRequest};
use crate::pages::render_with_feedback;
use crate::proxy::ClientAddr;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

fn status_for(error: &AccountError) -> StatusCode {
    match error {
        AccountError::InvalidCredentials => StatusCode::UNAUTHORIZED,
        AccountError::Throttled | AccountError::SignUpThrottled => StatusCode::TOO_MANY_REQUESTS,
        AccountError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        AccountError::EmailTaken => StatusCode::CONFLICT,
        AccountError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The form's page again, with what went wrong and what was typed (never the password).
/// A full hashing queue is answered with a small page at once: rendering the whole form
/// for each refusal would cost the very CPU the queue protects.
async fn refused(
    state: &AppState,
    page: PageRequest,
    path: &str,
    form: &Credentials,
    error: AccountError,
) -> Result<Response, AppError> {
    if error == AccountError::Busy {
        let mut response = crate::problem::plain_page(StatusCode::SERVICE_UNAVAILABLE, "Busy", &error.to_string());
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
        return Ok(response);
    }
    let feedback = FormFeedback {
        message: error.to_string(),
        email: Some(form.email.trim().to_string()),
    };
    let mut response = render_with_feedback(state, page.0, path, feedback, status_for(&error)).await?;
    let retry_after = match error {
        AccountError::Throttled => Some(THROTTLE_WINDOW_SECONDS),
        AccountError::SignUpThrottled => Some(SIGN_UP_WINDOW_SECONDS),
        _ => None,
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    Ok(response)
}

pub async fn sign_up(
    State(state): State<AppState>,
    Sessions(session): Sessions,
    client: ClientAddr,
    page: PageRequest,
    HtmlForm(form): HtmlForm<Credentials>,
) -> Result<Response, AppError> {
    let password = Password::new(form.password.clone());
    let ip = client.ip.to_string();
    match state.services.accounts.sign_up(&form.email, &password, &ip).await {
        Ok(account) => {
            session.sign_in(&account).await?;
            tracing::info!(account_id = account.id, "merchant signed up");
            // The address is proven by a link; signing up and connecting go on meanwhile.
            state.services.links.send_verification(account.id).await?;
            Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, Notice::Welcome)).into_response())
        }
        Err(error) => refused(&state, page, paths::SIGNUP, &form, error).await,
    }
}

pub async fn log_in(
    State(state): State<AppState>,
    Sessions(session): Sessions,
    client: ClientAddr,
    page: PageRequest,
    HtmlForm(form): HtmlForm<Credentials>,
) -> Result<Response, AppError> {
    let ip = client.ip.to_string();
    let next = form.next.as_deref().and_then(LocalPath::parse);
    let password = Password::new(form.password.clone());
    match state.services.accounts.log_in(&form.email, &password, &ip).await {
        Ok(account) => {
            // Operators always give a second factor (enrolling first); merchants who turned
            // one on give theirs.
            let factor = state
                .services
                .second_factors
                .status(account.id)
                .await
                .map_err(AppError::internal)?;
            if account.role == Role::Operator || factor == FactorStatus::On {
                let pending = PendingSignIn {
                    account,
                    since: state.services.clock.now(),
                    next: next.as_ref().map(|n| n.as_str().to_string()),
                };
                session.await_second_factor(&pending).await?;
                return Ok(Redirect::to(crate::second_factor::SECOND_FACTOR).into_response());
            }
            session.sign_in(&account).await?;
            state
                .services
                .accounts
                .record_login(account.id)
                .await
                .map_err(AppError::internal)?;
            let home = if account.role == Role::Operator {
                paths::OPERATOR
            } else {
                paths::CONNECTION
            };
            let target = next.as_ref().map(LocalPath::as_str).unwrap_or(home);
            Ok(Redirect::to(target).into_response())
        }
        Err(error) => {
            if error == AccountError::Throttled {
                tracing::warn!(%ip, "log-in throttled");
            }
            let path = match &next {
                Some(next) => paths::login_then(next, None),
                None => paths::LOGIN.to_string(),
            };
            refused(&state, page, &path, &form, error).await
        }
    }
}

pub async fn log_out(Sessions(session): Sessions) -> Result<Response, AppError> {
    session.sign_out().await?;
    Ok(Redirect::to(&paths::with_notice(paths::LOGIN, Notice::SignedOut)).into_response())
}
