//! A merchant's own second factor, from `/connection`: set up like an operator's (QR code,
//! key as text, a first code, recovery codes shown once), and turned off with a code.
//! Once on, every log-in of that merchant asks for it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use app::paths::{self, Notice};
use awx_onboard::accounts::second_factor::FactorStatus;
use awx_onboard::accounts::{Account, AccountError, Role};
use awx_onboard::security_log::SecurityEventKind;

use crate::access::SignedIn;
use crate::account::AccountPost;
use crate::error::AppError;
use crate::form::FormFields;
use crate::net::ClientAddr;
use crate::second_factor::{code_form, enrolment_page, EnrolForm, RECOVERY_CODES};
use crate::state::AppState;

const EYEBROW: &str = "Your account";
const WHY: &str = "A second factor keeps your connection yours even if your password leaks.";

fn on_page(status: StatusCode, problem: Option<&str>) -> Response {
    let body = format!(
        "<p data-second-factor=\"on\">Your second factor is on: each log-in asks for a code from your \
         authenticator app (or a recovery code). To turn it off, enter a code.</p>{}\
         <p><a href=\"{}\">Back to your connection</a></p>",
        code_form(paths::CONNECTION_SECOND_FACTOR_OFF, problem),
        paths::CONNECTION
    );
    crate::problem::page_with_eyebrow(status, EYEBROW, "Second factor", &body)
}

/// Whether the account's second factor is on.
async fn is_on(state: &AppState, account: &Account) -> Result<bool, AppError> {
    let factors = &state.services.second_factors;
    Ok(factors.status(account.id).await.map_err(AppError::internal)? == FactorStatus::On)
}

/// The page for the account's state: the enrolment, or the way to turn it off.
async fn show_for(
    state: &AppState,
    account: &Account,
    status: StatusCode,
    problem: Option<&str>,
) -> Result<Response, AppError> {
    if is_on(state, account).await? {
        return Ok(on_page(status, problem));
    }
    let enrolment = state
        .services
        .second_factors
        .enrolment(account.id, &account.email)
        .await
        .map_err(AppError::internal)?
        .ok_or_else(|| AppError::internal("no enrolment for an account without a second factor"))?;
    let form = EnrolForm {
        eyebrow: EYEBROW,
        why: WHY,
        action: paths::CONNECTION_SECOND_FACTOR,
        // Someone with this session alone cannot lock the owner out: the password first.
        before:
            "<label for=\"password\">Your password</label>\
                 <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>",
    };
    Ok(enrolment_page(status, &form, &enrolment, problem))
}

/// Operators enrol at log-in only (and never turn it off).
fn operators_elsewhere(account: &Account) -> Result<(), AppError> {
    if account.role == Role::Operator {
        return Err(AppError::Conflict(
            "An operator's second factor is set up at log-in and cannot be turned off here. If a device is lost, \
             another operator removes and invites you again."
                .into(),
        ));
    }
    Ok(())
}

/// `GET /connection/second-factor`.
pub async fn show(State(state): State<AppState>, SignedIn(account): SignedIn) -> Result<Response, AppError> {
    operators_elsewhere(&account)?;
    show_for(&state, &account, StatusCode::OK, None).await
}

/// A code checked against the log-in's limits; `Ok(None)` when it was right, else the page.
async fn attempt(
    state: &AppState,
    account: &Account,
    client: &ClientAddr,
    check: impl std::future::Future<Output = Result<bool, sqlx::Error>>,
) -> Result<Option<Response>, AppError> {
    let ip = client.ip.to_string();
    match state
        .services
        .accounts
        .second_factor_attempt(&account.email, &ip, check)
        .await
    {
        Ok(()) => Ok(None),
        Err(error @ (AccountError::WrongCode | AccountError::Throttled)) => {
            let status = if error == AccountError::Throttled {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                state
                    .log_security(
                        SecurityEventKind::SecondFactorFailed,
                        account,
                        client,
                        Some("merchant settings"),
                    )
                    .await;
                StatusCode::UNAUTHORIZED
            };
            Ok(Some(show_for(state, account, status, Some(&error.to_string())).await?))
        }
        Err(error) => Err(AppError::internal(error)),
    }
}

/// `POST /connection/second-factor`: the first code confirms the enrolment; the recovery
/// codes are shown next, once.
pub async fn enrol(State(state): State<AppState>, post: AccountPost) -> Result<Response, AppError> {
    let account = &post.account;
    operators_elsewhere(account)?;
    if is_on(&state, account).await? {
        return Ok(Redirect::to(paths::CONNECTION_SECOND_FACTOR).into_response());
    }
    let factors = &state.services.second_factors;
    if let Some(error) = post.refused_password(&state).await? {
        let status = if error == AccountError::Throttled {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNAUTHORIZED
        };
        return show_for(&state, account, status, Some(&error.to_string())).await;
    }
    let mut codes = None;
    let check = async {
        codes = factors.confirm(account.id, post.form.first("code")).await?;
        Ok(codes.is_some())
    };
    if let Some(page) = attempt(&state, account, &post.client, check).await? {
        return Ok(page);
    }
    let codes = codes.ok_or_else(|| AppError::internal("a confirmed enrolment without codes"))?;
    state
        .log_security(SecurityEventKind::SecondFactorEnrolled, account, &post.client, None)
        .await;
    post.session.confirmed(state.services.clock.now()).await?;
    post.session
        .keep_recovery_codes(&factors.seal_for_display(account.id, &codes))
        .await?;
    Ok(Redirect::to(RECOVERY_CODES).into_response())
}

/// `POST /connection/second-factor/off`: a code (or a recovery code) turns it off.
pub async fn turn_off(
    State(state): State<AppState>,
    SignedIn(account): SignedIn,
    client: ClientAddr,
    form: FormFields,
) -> Result<Response, AppError> {
    operators_elsewhere(&account)?;
    if !is_on(&state, &account).await? {
        return Ok(Redirect::to(paths::CONNECTION_SECOND_FACTOR).into_response());
    }
    let factors = &state.services.second_factors;
    let check = async { Ok(factors.verify(account.id, form.first("code")).await?.is_some()) };
    if let Some(page) = attempt(&state, &account, &client, check).await? {
        return Ok(page);
    }
    factors.reset(account.id).await.map_err(AppError::internal)?;
    state
        .log_security(SecurityEventKind::SecondFactorRemoved, &account, &client, None)
        .await;
    Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, Notice::SecondFactorOff)).into_response())
}
