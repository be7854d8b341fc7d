//! The second step of a log-in: after the password, the second factor (an operator's is
//! required: one without it enrols here first, and reaches nothing else until it is done),
//! then the recovery codes, shown once. Plain pages in the app's style; they work the same
//! without JavaScript.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::paths::{self, LocalPath};
use awx_onboard::accounts::second_factor::{Enrolment, FactorStatus, FactorUsed};
use awx_onboard::accounts::{Account, AccountError, Role, THROTTLE_WINDOW_SECONDS};
use awx_onboard::html::escape;
use awx_onboard::security_log::{Actor, SecurityEventKind};
use awx_onboard::sessions::{SessionState, PENDING_SECONDS};

use crate::access::{CurrentUser, Sessions};
use crate::error::AppError;
use crate::form::HtmlForm;
use crate::proxy::ClientAddr;
use crate::state::AppState;

pub const SECOND_FACTOR: &str = "/login/second-factor";
pub const RECOVERY_CODES: &str = "/login/recovery-codes";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    crate::problem::page_with_eyebrow(status, "Log in", title, body)
}

pub(crate) fn code_form(action: &str, problem: Option<&str>) -> String {
    code_form_with(action, problem, "")
}

/// [`code_form`] with `before` (trusted HTML: more fields) ahead of the code.
pub(crate) fn code_form_with(action: &str, problem: Option<&str>, before: &str) -> String {
    format!(
        "{problem}<form class=\"stack\" method=\"post\" action=\"{action}\">{before}\
         <label for=\"code\">Code</label>\
         <input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
         required maxlength=\"20\" autofocus>\
         <button type=\"submit\" class=\"button\">Continue</button></form>",
        problem = problem
            .map(|p| format!("<p class=\"notice bad\" role=\"alert\">{}</p>", escape(p)))
            .unwrap_or_default()
    )
}

fn enrol_page(status: StatusCode, enrolment: &Enrolment, problem: Option<&str>) -> Response {
    let form = EnrolForm {
        eyebrow: "Log in",
        why: "Operator accounts sign in with a second factor.",
        action: SECOND_FACTOR,
        before: "",
    };
    enrolment_page(status, &form, enrolment, problem)
}

/// Where an enrolment's page is, and what its form asks besides the first code.
pub(crate) struct EnrolForm<'a> {
    pub eyebrow: &'a str,
    /// Why a second factor, in a sentence.
    pub why: &'a str,
    /// Where the form posts.
    pub action: &'a str,
    /// More fields ahead of the code (trusted HTML).
    pub before: &'a str,
}

/// The enrolment: the QR code, the key as text, and the first code's form.
pub(crate) fn enrolment_page(
    status: StatusCode,
    form: &EnrolForm<'_>,
    enrolment: &Enrolment,
    problem: Option<&str>,
) -> Response {
    let EnrolForm {
        eyebrow,
        why,
        action,
        before,
    } = form;
    let grouped: Vec<String> = enrolment
        .secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect();
    let body = format!(
        "<p>{why} Scan this code with an authenticator app \
         (or enter the key in your password manager), then type the 6 digits it shows.</p>\
         <div class=\"qr\" role=\"img\" aria-label=\"QR code of your second-factor key\">{svg}</div>\
         <p>Key: <code data-secret=\"{secret}\">{shown}</code></p>{form}",
        svg = enrolment.qr_svg,
        secret = escape(&enrolment.secret),
        shown = escape(&grouped.join(" ")),
        form = code_form_with(action, problem, before),
        why = escape(why),
    );
    let response = crate::problem::page_with_eyebrow(status, eyebrow, "Set up your second factor", &body);
    no_store(response)
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn challenge_page(status: StatusCode, problem: Option<&str>) -> Response {
    let body = format!(
        "<p>Enter the 6-digit code your authenticator app shows for awx-onboard, or one of your \
         recovery codes.</p>{}",
        code_form(SECOND_FACTOR, problem)
    );
    page(status, "Your second factor", &body)
}

/// Who owes a second factor in this session (`None`: back to the log-in page).
async fn pending(session: &SessionState, now: i64) -> Option<awx_onboard::sessions::PendingSignIn> {
    session
        .pending_second_factor()
        .await
        .filter(|p| now - p.since < PENDING_SECONDS)
}

fn back_to_login() -> Response {
    Redirect::to(paths::LOGIN).into_response()
}

/// `GET /login/second-factor`: the code, or (an operator without one) the enrolment.
pub async fn show(State(state): State<AppState>, Sessions(session): Sessions) -> Result<Response, AppError> {
    let services = &state.services;
    let Some(pending) = pending(&session, services.clock.now()).await else {
        return Ok(back_to_login());
    };
    match enrolment_of(&state, &pending.account).await? {
        Some(enrolment) => Ok(enrol_page(StatusCode::OK, &enrolment, None)),
        None => Ok(challenge_page(StatusCode::OK, None)),
    }
}

/// The enrolment to show, unless the account's second factor is already on (then nothing
/// is read or drawn for it).
async fn enrolment_of(state: &AppState, account: &Account) -> Result<Option<Enrolment>, AppError> {
    let factors = &state.services.second_factors;
    if factors.status(account.id).await.map_err(AppError::internal)? == FactorStatus::On {
        return Ok(None);
    }
    factors
        .enrolment(account.id, &account.email)
        .await
        .map_err(AppError::internal)
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

fn home_of(account: &Account) -> &'static str {
    if account.role == Role::Operator {
        paths::OPERATOR
    } else {
        paths::CONNECTION
    }
}

/// `POST /login/second-factor`: checks the code (against the same limits as passwords),
/// then signs in; after an enrolment, on to the recovery codes.
pub async fn check(
    State(state): State<AppState>,
    Sessions(session): Sessions,
    client: ClientAddr,
    HtmlForm(form): HtmlForm<CodeForm>,
) -> Result<Response, AppError> {
    let services = &state.services;
    let Some(pending) = pending(&session, services.clock.now()).await else {
        return Ok(back_to_login());
    };
    let account = pending.account.clone();
    let ip = client.ip.to_string();
    let enrolment = enrolment_of(&state, &account).await?;
    let mut recovery = None;
    let mut used = None;
    let attempt = services
        .accounts
        .second_factor_attempt(&account.email, &ip, async {
            match &enrolment {
                Some(_) => {
                    recovery = services.second_factors.confirm(account.id, &form.code).await?;
                    Ok(recovery.is_some())
                }
                None => {
                    used = services.second_factors.verify(account.id, &form.code).await?;
                    Ok(used.is_some())
                }
            }
        })
        .await;
    let actor = Actor::of(&account, Some(&ip));
    let log = &services.security_log;
    match attempt {
        Ok(()) => {
            session.second_factor_given(&account, services.clock.now()).await?;
            tracing::info!(account_id = account.id, "signed in with a second factor");
            services
                .accounts
                .record_login(account.id)
                .await
                .map_err(AppError::internal)?;
            if recovery.is_some() {
                log.record(SecurityEventKind::SecondFactorEnrolled, &actor, None).await;
            }
            if used == Some(FactorUsed::RecoveryCode) {
                log.record(SecurityEventKind::RecoveryCodeUsed, &actor, None).await;
            }
            if account.role == Role::Operator {
                log.record(SecurityEventKind::OperatorLogin, &actor, None).await;
            }
            if let Some(codes) = recovery {
                let sealed = services.second_factors.seal_for_display(account.id, &codes);
                session.keep_recovery_codes(&sealed).await?;
                return Ok(Redirect::to(RECOVERY_CODES).into_response());
            }
            let next = pending.next.as_deref().and_then(LocalPath::parse);
            let target = next.as_ref().map(LocalPath::as_str).unwrap_or(home_of(&account));
            Ok(Redirect::to(target).into_response())
        }
        Err(AccountError::WrongCode) => {
            tracing::info!(account_id = account.id, "a wrong second-factor code");
            log.record(SecurityEventKind::SecondFactorFailed, &actor, Some("log-in"))
                .await;
            let message = AccountError::WrongCode.to_string();
            Ok(match &enrolment {
                Some(enrolment) => enrol_page(StatusCode::UNAUTHORIZED, enrolment, Some(&message)),
                None => challenge_page(StatusCode::UNAUTHORIZED, Some(&message)),
            })
        }
        Err(AccountError::Throttled) => {
            tracing::warn!(%ip, "second factor throttled");
            let mut response = challenge_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some(&AccountError::Throttled.to_string()),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(THROTTLE_WINDOW_SECONDS));
            Ok(response)
        }
        Err(error) => Err(AppError::internal(error)),
    }
}

/// `GET /login/recovery-codes`: the codes of a new enrolment, shown this once.
pub async fn recovery_codes(
    State(state): State<AppState>,
    CurrentUser(account): CurrentUser,
    Sessions(session): Sessions,
) -> Result<Response, AppError> {
    let Some(account) = account else {
        return Ok(back_to_login());
    };
    let codes = session
        .take_recovery_codes()
        .await?
        .and_then(|sealed| state.services.second_factors.open_for_display(account.id, &sealed));
    let Some(codes) = codes else {
        return Ok(Redirect::to(home_of(&account)).into_response());
    };
    let items: String = codes
        .iter()
        .map(|c| format!("<li><code data-recovery-code=\"{0}\">{0}</code></li>", escape(c)))
        .collect();
    let body = format!(
        "<p>Your second factor is on. Keep these recovery codes somewhere safe: each signs you in once \
         when your device is not at hand. They are shown only this once.</p>\
         <ul class=\"recovery-codes\">{items}</ul><div class=\"actions\"><a class=\"button\" href=\"{home}\">Continue</a></div>",
        home = home_of(&account),
    );
    let mut response = page(StatusCode::OK, "Your recovery codes", &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
