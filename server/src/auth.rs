//! Sign-up, log-in and log-out: plain form posts, the same with and without JavaScript.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use app::dto::FormFeedback;
use awx_onboard::accounts::{Account, AccountError, CurrentAccount, Password, Role};

use crate::pages::render_with_feedback;
use crate::sessions::SIGNED_IN;
use crate::state::AppState;

/// Largest form body read.
const MAX_FORM_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Splits a form post into its request parts and its parsed body.
pub async fn read_form<T: serde::de::DeserializeOwned>(
    request: Request<Body>,
) -> Result<(axum::http::request::Parts, T), Response> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response())?;
    let form = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| (StatusCode::BAD_REQUEST, "malformed form").into_response())?;
    Ok((parts, form))
}

/// Signs `account` in on this session: a new session id (no fixation), then the account.
async fn sign_in(session: &Session, account: &Account) -> Result<(), Response> {
    let failed = |_| StatusCode::INTERNAL_SERVER_ERROR.into_response();
    session.cycle_id().await.map_err(failed)?;
    session.insert(SIGNED_IN, account).await.map_err(failed)?;
    // Save now so the session has an id for OAuth state binding in this same response.
    session.save().await.map_err(failed)?;
    Ok(())
}

fn status_for(error: &AccountError) -> StatusCode {
    match error {
        AccountError::InvalidCredentials => StatusCode::UNAUTHORIZED,
        AccountError::Throttled => StatusCode::TOO_MANY_REQUESTS,
        AccountError::EmailTaken => StatusCode::CONFLICT,
        AccountError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

pub async fn sign_up(State(state): State<AppState>, session: Session, request: Request<Body>) -> Response {
    let (parts, form) = match read_form::<Credentials>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    match state
        .services
        .accounts
        .sign_up(&form.email, &Password::new(form.password))
        .await
    {
        Ok(account) => {
            if let Err(response) = sign_in(&session, &account).await {
                return response;
            }
            tracing::info!(account_id = account.id, "merchant signed up");
            Redirect::to("/connection?notice=welcome").into_response()
        }
        Err(error) => {
            let feedback = FormFeedback {
                message: error.to_string(),
                email: Some(form.email.trim().to_string()),
            };
            render_with_feedback(&state, parts, "/signup", feedback, status_for(&error)).await
        }
    }
}

/// A local path to continue to after logging in, never another site.
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
}

pub async fn log_in(
    State(state): State<AppState>,
    session: Session,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    let (parts, form) = match read_form::<Credentials>(request).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let ip = peer.ip().to_string();
    match state
        .services
        .accounts
        .log_in(&form.email, &Password::new(form.password), &ip)
        .await
    {
        Ok(account) => {
            if let Err(response) = sign_in(&session, &account).await {
                return response;
            }
            let home = if account.role == Role::Operator {
                "/operator"
            } else {
                "/connection"
            };
            Redirect::to(safe_next(form.next.as_deref()).unwrap_or(home)).into_response()
        }
        Err(error) => {
            if error == AccountError::Throttled {
                tracing::warn!(%ip, "log-in throttled");
            }
            let feedback = FormFeedback {
                message: error.to_string(),
                email: Some(form.email.trim().to_string()),
            };
            let path = match safe_next(form.next.as_deref()) {
                Some(next) => format!(
                    "/login?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                ),
                None => "/login".to_string(),
            };
            render_with_feedback(&state, parts, &path, feedback, status_for(&error)).await
        }
    }
}

pub async fn log_out(session: Session) -> Response {
    // Deletes the session on the server, not just the cookie.
    if session.flush().await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    Redirect::to("/login?notice=signed_out").into_response()
}

/// Session key of the last time the session's expiry was pushed forward.
const LAST_SEEN: &str = "last_seen";
/// Push a session's inactivity expiry forward at most this often (each push is a write).
const TOUCH_EVERY_SECONDS: i64 = 600;

/// Looks the signed-in account up once per request (pages read it from the request's
/// extensions), keeps active sessions alive, and sends anonymous visitors of pages that
/// need an account to the login page first.
pub async fn load_account(session: Session, mut request: Request<Body>, next: axum::middleware::Next) -> Response {
    let account = match current_account(&session).await {
        Ok(account) => account,
        Err(status) => return status.into_response(),
    };
    if account.is_some() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let last_seen = session.get::<i64>(LAST_SEEN).await.ok().flatten().unwrap_or(0);
        if now - last_seen > TOUCH_EVERY_SECONDS {
            // Marks the session modified: it is saved with a new expiry and cookie.
            let _ = session.insert(LAST_SEEN, now).await;
        }
    }
    let path = request.uri().path();
    let operator_only = path == "/operator"
        || path.starts_with("/operator/")
        || path == "/api/operator"
        || path.starts_with("/api/operator/");
    let needs_account = operator_only || path == "/connection" || path == "/connect/problem";
    if needs_account && account.is_none() {
        let next = if request.method() == axum::http::Method::GET {
            path
        } else {
            "/operator"
        };
        let next = url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
        return Redirect::to(&format!("/login?next={next}&notice=login_required")).into_response();
    }
    if operator_only && account.as_ref().is_some_and(|a| a.role != Role::Operator) {
        return crate::pages::plain_page(
            StatusCode::FORBIDDEN,
            "Operators only",
            "This part of awx-onboard is for the people who run it. Your connection is on the Connection page.",
        );
    }
    request.extensions_mut().insert(CurrentAccount(account));
    next.run(request).await
}

/// The signed-in account, if any. It is kept in the server-side session from sign-in on,
/// so a request costs no extra query (accounts are neither renamed nor re-roled).
pub async fn current_account(session: &Session) -> Result<Option<Account>, StatusCode> {
    session
        .get::<Account>(SIGNED_IN)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/connection")), Some("/connection"));
        assert_eq!(safe_next(Some("//evil.example")), None);
        assert_eq!(safe_next(Some("https://evil.example")), None);
        assert_eq!(safe_next(Some("/\\evil.example")), None);
        assert_eq!(safe_next(None), None);
    }
}
