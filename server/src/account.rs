//! A merchant's account, whole: the verification link and sending it again, "Forgot your
//! password?" and the reset link's page, changing the password, and deleting the account
//! (also by an operator, logged). Plain pages in the app's style; they work the same
//! without JavaScript.

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use app::paths::{self, Notice};
use awx_onboard::accounts::lifecycle::Requested;
use awx_onboard::accounts::{Account, AccountError, Password, Role};
use awx_onboard::html::escape;
use awx_onboard::security_log::SecurityEventKind;
use awx_onboard::sessions::{stored_id, SessionState};

use crate::access::{CurrentUser, Sessions, SignedIn};
use crate::error::AppError;
use crate::form::FormFields;
use crate::net::ClientAddr;
use crate::reauth::OperatorPost;
use crate::state::AppState;

fn page(status: StatusCode, eyebrow: &str, title: &str, body: &str) -> Response {
    let mut response = crate::problem::page_with_eyebrow(status, eyebrow, title, body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn problem(text: Option<&str>) -> String {
    text.map(|p| format!("<p class=\"notice bad\" role=\"alert\">{}</p>", escape(p)))
        .unwrap_or_default()
}

fn status_of(error: &AccountError) -> StatusCode {
    match error {
        AccountError::InvalidCredentials => StatusCode::UNAUTHORIZED,
        AccountError::Throttled => StatusCode::TOO_MANY_REQUESTS,
        AccountError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A form post about the signed-in account itself (its password, its second factor, deleting
/// it): whose, their session, where from, and the fields.
pub struct AccountPost {
    pub account: Account,
    pub session: SessionState,
    pub client: ClientAddr,
    pub form: FormFields,
}

impl AccountPost {
    /// Checks the form's `password` against the account: `None` when it is right, else why it
    /// was refused (a failure on our side is the error).
    pub async fn refused_password(&self, state: &AppState) -> Result<Option<AccountError>, AppError> {
        let password = Password::new(self.form.first("password").to_string());
        let ip = self.client.ip.to_string();
        match state
            .services
            .accounts
            .confirm_password(&self.account, &password, &ip)
            .await
        {
            Ok(()) => Ok(None),
            Err(AccountError::Internal) => Err(AppError::internal("password check")),
            Err(error) => Ok(Some(error)),
        }
    }
}

impl FromRequest<AppState> for AccountPost {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let (mut parts, body) = request.into_parts();
        let SignedIn(account) = SignedIn::from_request_parts(&mut parts, state).await?;
        let Sessions(session) = Sessions::from_request_parts(&mut parts, state).await?;
        let client = ClientAddr::from_request_parts(&mut parts, state)
            .await
            .map_err(|_| AppError::internal("no client address"))?;
        let form = FormFields::from_request(Request::from_parts(parts, body), state).await?;
        Ok(AccountPost {
            account,
            session,
            client,
            form,
        })
    }
}

fn verify_gone() -> Response {
    crate::problem::plain_page(
        StatusCode::GONE,
        "This link cannot be used",
        "It was used already, has expired (it works for 24 hours), or never existed. Log in and ask for a new \
         one on your connection page.",
    )
}

/// `GET /verify-email/{secret}`: only asks (mail scanners fetch links); the button's POST
/// verifies.
pub async fn verify_page(State(state): State<AppState>, Path(secret): Path<String>) -> Result<Response, AppError> {
    let Some(email) = state.services.links.verification_target(&secret).await? else {
        return Ok(verify_gone());
    };
    let body = format!(
        "<p>Confirm that <strong>{email}</strong> is your address: we will then tell you there when your Airwallex \
         connection needs you.</p><form method=\"post\" action=\"/verify-email/{secret}\">\
         <button type=\"submit\" class=\"button\" autofocus>Confirm my email address</button></form>",
        email = escape(&email),
        secret = escape(&secret),
    );
    Ok(page(
        StatusCode::OK,
        "Your account",
        "Confirm your email address",
        &body,
    ))
}

/// `POST /verify-email/{secret}`: the address is proven (once).
pub async fn verify(
    State(state): State<AppState>,
    CurrentUser(account): CurrentUser,
    Path(secret): Path<String>,
) -> Result<Response, AppError> {
    match state.services.links.verify(&secret).await? {
        Some(id) => {
            tracing::info!(account_id = id, "email address verified");
            let home = match account {
                Some(account) if account.id == id => paths::CONNECTION,
                _ => paths::LOGIN,
            };
            Ok(Redirect::to(&paths::with_notice(home, Notice::EmailVerified)).into_response())
        }
        None => Ok(verify_gone()),
    }
}

/// `POST /connection/verify-email`: the verification link again (at most once a minute).
pub async fn send_verification(
    State(state): State<AppState>,
    SignedIn(account): SignedIn,
) -> Result<Response, AppError> {
    let notice = match state.services.links.send_verification(account.id).await? {
        Requested::TooSoon => Notice::VerificationTooSoon,
        Requested::Sent => Notice::VerificationSent,
        Requested::Nobody => Notice::EmailVerified,
    };
    Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, notice)).into_response())
}

fn reset_request_page(status: StatusCode, sent: bool) -> Response {
    let body = if sent {
        "<p role=\"status\">If an account has that address, a link to choose a new password is on its way. It \
         works once, for 30 minutes.</p><p><a href=\"/login\">Back to log in</a></p>"
            .to_string()
    } else {
        format!(
            "<p>Enter the address you log in with: we email it a link to choose a new password.</p>\
             <form class=\"stack\" method=\"post\" action=\"{}\">\
             <label for=\"email\">Email</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required maxlength=\"254\" autofocus>\
             <button type=\"submit\" class=\"button\">Send the link</button></form>\
             <p><a href=\"/login\">Back to log in</a></p>",
            paths::PASSWORD_RESET
        )
    };
    page(status, "Log in", "Forgot your password?", &body)
}

/// `GET /password-reset`.
pub async fn reset_form() -> Response {
    reset_request_page(StatusCode::OK, false)
}

/// `POST /password-reset`: always the same answer, whether or not the address has an
/// account (and within the limits per address and per account).
pub async fn request_reset(
    State(state): State<AppState>,
    client: ClientAddr,
    form: FormFields,
) -> Result<Response, AppError> {
    let ip = client.ip.to_string();
    let email = form.first("email").to_string();
    let links = state.services.links.clone();
    // Answered at once, the same for every address: the work (and how long it takes for an
    // address that has an account) happens after the answer.
    tokio::spawn(async move {
        match links.request_reset(&email, &ip).await {
            Ok(Requested::TooSoon) => tracing::warn!(%ip, "password reset requests throttled"),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "a password reset request failed"),
        }
    });
    Ok(reset_request_page(StatusCode::OK, true))
}

fn new_password_page(status: StatusCode, secret: &str, email: &str, error: Option<&str>) -> Response {
    let body = format!(
        "<p>Choose a new password for <strong>{email}</strong>. Every session of this account ends when it is \
         set.</p>{problem}<form class=\"stack\" method=\"post\" action=\"/password-reset/{secret}\">\
         <label for=\"password\">New password (at least 12 characters)</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required \
         minlength=\"12\" maxlength=\"256\" autofocus>\
         <button type=\"submit\" class=\"button\">Set the password</button></form>",
        email = escape(email),
        secret = escape(secret),
        problem = problem(error),
    );
    page(status, "Log in", "Choose a new password", &body)
}

fn reset_gone() -> Response {
    crate::problem::plain_page(
        StatusCode::GONE,
        "This link cannot be used",
        "It was used already, has expired (it works for 30 minutes), or never existed. Ask for a new one from the \
         log-in page.",
    )
}

/// `GET /password-reset/{secret}`.
pub async fn reset_page(State(state): State<AppState>, Path(secret): Path<String>) -> Result<Response, AppError> {
    match state.services.links.reset_target(&secret).await? {
        Some((_, email)) => Ok(new_password_page(StatusCode::OK, &secret, &email, None)),
        None => Ok(reset_gone()),
    }
}

/// `POST /password-reset/{secret}`: the new password (the same rules as at sign-up);
/// every session of the account ends.
pub async fn reset(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    form: FormFields,
) -> Result<Response, AppError> {
    let links = &state.services.links;
    let Some((_, email)) = links.reset_target(&secret).await? else {
        return Ok(reset_gone());
    };
    let password = Password::new(form.first("password").to_string());
    let hash = match state.services.accounts.hash_new_password(&email, &password).await {
        Ok(hash) => hash,
        Err(AccountError::Busy) => return Err(AppError::Unavailable("password hashing".into())),
        Err(AccountError::Internal) => return Err(AppError::internal("password hashing")),
        Err(error) => {
            return Ok(new_password_page(
                status_of(&error),
                &secret,
                &email,
                Some(&error.to_string()),
            ))
        }
    };
    match links.reset_password(&secret, &hash).await? {
        Some(id) => {
            tracing::info!(account_id = id, "password reset");
            Ok(Redirect::to(&paths::with_notice(paths::LOGIN, Notice::PasswordReset)).into_response())
        }
        None => Ok(reset_gone()),
    }
}

fn account_page(status: StatusCode, account: &Account, error: Option<&str>) -> Response {
    let leave = if account.role == Role::Merchant {
        "<h2>Delete your account</h2><p>Your Airwallex connection is disconnected (the platform is told), and \
         your address and business name are erased; the history of the connection is kept without them. This \
         cannot be undone.</p>\
         <form class=\"stack\" method=\"post\" action=\"/connection/delete\">\
         <label for=\"delete_password\">Your password</label>\
         <input id=\"delete_password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" class=\"button danger\">Delete my account</button></form>"
    } else {
        ""
    };
    let body = format!(
        "{problem}<h2>Change your password</h2>\
         <form class=\"stack\" method=\"post\" action=\"{change}\">\
         <label for=\"current_password\">Current password</label>\
         <input id=\"current_password\" name=\"current_password\" type=\"password\" autocomplete=\"current-password\" required>\
         <label for=\"new_password\">New password (at least 12 characters)</label>\
         <input id=\"new_password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" required \
         minlength=\"12\" maxlength=\"256\">\
         <button type=\"submit\" class=\"button\">Change password</button></form>{leave}\
         <p><a href=\"{back}\">Back to your connection</a></p>",
        problem = problem(error),
        change = paths::CONNECTION_PASSWORD,
        back = paths::CONNECTION,
    );
    page(status, "Your account", "Password and account", &body)
}

/// `GET /connection/account`.
pub async fn account(SignedIn(account): SignedIn) -> Response {
    account_page(StatusCode::OK, &account, None)
}

/// `POST /connection/password`: the current password first; other sessions end.
pub async fn change_password(State(state): State<AppState>, post: AccountPost) -> Result<Response, AppError> {
    let account = &post.account;
    let keep = post.session.id().map(|id| stored_id(&id));
    let changed = state
        .services
        .accounts
        .change_password(
            account,
            &Password::new(post.form.first("current_password").to_string()),
            &Password::new(post.form.first("new_password").to_string()),
            &post.client.ip.to_string(),
            keep.as_deref(),
        )
        .await;
    match changed {
        Ok(()) => {
            tracing::info!(account_id = account.id, "password changed");
            Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, Notice::PasswordChanged)).into_response())
        }
        Err(AccountError::Internal) => Err(AppError::internal("password change")),
        Err(error) => Ok(account_page(status_of(&error), account, Some(&error.to_string()))),
    }
}

/// Disconnects and erases a merchant's account; `actor` names who did it in the
/// connection's history.
async fn delete_merchant(state: &AppState, merchant_id: i64, actor: &str) -> Result<Option<String>, AppError> {
    state.services.connections.disconnect_as(merchant_id, actor).await?;
    Ok(state.services.links.erase(merchant_id).await?)
}

/// `POST /connection/delete`: confirmed with the password.
pub async fn delete(State(state): State<AppState>, post: AccountPost) -> Result<Response, AppError> {
    let account = &post.account;
    if account.role != Role::Merchant {
        return Err(AppError::Conflict(
            "An operator's account is removed by another operator, on the team page.".into(),
        ));
    }
    if let Some(error) = post.refused_password(&state).await? {
        return Ok(account_page(status_of(&error), account, Some(&error.to_string())));
    }
    delete_merchant(&state, account.id, "merchant").await?;
    tracing::info!(account_id = account.id, "merchant deleted their account");
    post.session.sign_out().await?;
    Ok(Redirect::to(&paths::with_notice(paths::LOGIN, Notice::AccountDeleted)).into_response())
}

/// `POST /operator/connections/{id}/delete-merchant`: asks first, then (with a fresh
/// code) deletes the merchant's account as the merchant could; logged.
pub async fn operator_delete(
    State(state): State<AppState>,
    Path(connection_id): Path<i64>,
    post: OperatorPost,
) -> Result<Response, AppError> {
    let Some(row) = state.services.store().by_id(connection_id).await? else {
        return Err(AppError::NotFound("There is no connection with that number."));
    };
    if !state.services.links.is_live_merchant(row.merchant_id).await? {
        return Err(AppError::NotFound(
            "That account is not a merchant's, or is deleted already.",
        ));
    }
    let action = paths::operator_delete_merchant(connection_id);
    if post.form.first("confirm") != "yes" {
        let body = format!(
            "<p>The merchant's Airwallex connection is disconnected (the platform is told), and their address and \
             business name are erased everywhere; the history is kept with the merchant's number only. This cannot \
             be undone.</p><form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"confirm\" \
             value=\"yes\"><div class=\"actions\"><button type=\"submit\" class=\"button danger\">Delete the \
             account</button><a class=\"button secondary\" href=\"{back}\">Cancel</a></div></form>",
            action = escape(&action),
            back = escape(&paths::operator_connection(connection_id)),
        );
        return Ok(page(
            StatusCode::OK,
            "Operator",
            "Delete this merchant's account?",
            &body,
        ));
    }
    if let Some(ask) = post.confirm(&state, &action).await? {
        return Ok(ask);
    }
    let actor = format!("operator:{}", post.operator.email);
    let Some(_) = delete_merchant(&state, row.merchant_id, &actor).await? else {
        return Err(AppError::NotFound(
            "That account is not a merchant's, or is deleted already.",
        ));
    };
    let subject = format!("merchant {}", row.merchant_id);
    post.log(&state, SecurityEventKind::MerchantDeleted, &subject).await;
    Ok(Redirect::to(&paths::with_notice(
        &paths::operator_connection(connection_id),
        Notice::MerchantDeleted,
    ))
    .into_response())
}
