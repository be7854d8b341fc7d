//! Sign-up, log-in and log-out: plain form posts, the same with and without JavaScript.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::dto::FormFeedback;
use app::paths::{self, LocalPath, Notice};
use awx_onboard::accounts::second_factor::FactorStatus;
use awx_onboard::accounts::{AccountError, Password, Role, SIGN_UP_WINDOW_SECONDS, THROTTLE_WINDOW_SECONDS};
use awx_onboard::sessions::{PendingSignIn, SessionState};

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

/// A sign-up or log-in form as posted: the session it signs in to, the client's address,
/// the request's head (to render the form again if refused), what was typed, and the
/// password typed.
pub struct CredentialsPost {
    session: SessionState,
    ip: String,
    page: PageRequest,
    form: Credentials,
    password: Password,
}

impl FromRequest<AppState> for CredentialsPost {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let (mut parts, body) = request.into_parts();
        let Sessions(session) = Sessions::from_request_parts(&mut parts, state).await?;
        let client = ClientAddr::from_request_parts(&mut parts, state)
            .await
            .map_err(|_| AppError::internal("no client address"))?;
        let page = PageRequest(parts.clone());
        let HtmlForm(form) = HtmlForm::<Credentials>::from_request(Request::from_parts(parts, body), state).await?;
        let password = Password::new(form.password.clone());
        Ok(CredentialsPost {
            session,
            ip: client.ip.to_string(),
            page,
            form,
            password,
        })
    }
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
    post: CredentialsPost,
    path: &str,
    error: AccountError,
) -> Result<Response, AppError> {
    if error == AccountError::Busy {
        let mut response = crate::problem::plain_page(StatusCode::SERVICE_UNAVAILABLE, "Busy", &error.to_string());
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(5));
        return Ok(response);
    }
    let feedback = FormFeedback {
        message: error.to_string(),
        email: Some(post.form.email.trim().to_string()),
    };
    let mut response = render_with_feedback(state, post.page.0, path, feedback, status_for(&error)).await?;
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

pub async fn sign_up(State(state): State<AppState>, post: CredentialsPost) -> Result<Response, AppError> {
    let accounts = &state.services.accounts;
    match accounts.sign_up(&post.form.email, &post.password, &post.ip).await {
        Ok(account) => {
            post.session.sign_in(&account).await?;
            tracing::info!(account_id = account.id, "merchant signed up");
            // The address is proven by a link; signing up and connecting go on meanwhile.
            state.services.links.send_verification(account.id).await?;
            Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, Notice::Welcome)).into_response())
        }
        Err(error) => refused(&state, post, paths::SIGNUP, error).await,
    }
}

pub async fn log_in(State(state): State<AppState>, post: CredentialsPost) -> Result<Response, AppError> {
    let next = post.form.next.as_deref().and_then(LocalPath::parse);
    let accounts = &state.services.accounts;
    match accounts.log_in(&post.form.email, &post.password, &post.ip).await {
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
                post.session.await_second_factor(&pending).await?;
                return Ok(Redirect::to(crate::second_factor::SECOND_FACTOR).into_response());
            }
            post.session.sign_in(&account).await?;
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
                tracing::warn!(ip = %post.ip, "log-in throttled");
            }
            let path = match &next {
                Some(next) => paths::login_then(next, None),
                None => paths::LOGIN.to_string(),
            };
            refused(&state, post, &path, error).await
        }
    }
}

pub async fn log_out(Sessions(session): Sessions) -> Result<Response, AppError> {
    session.sign_out().await?;
    Ok(Redirect::to(&paths::with_notice(paths::LOGIN, Notice::SignedOut)).into_response())
}
