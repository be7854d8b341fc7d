//! Operators managing operators (form posts from `/operator/team`), and the invitation
//! link an invitee opens: choose a password, then enrol a second factor like any operator.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use app::paths::{self, Notice};
use awx_onboard::accounts::{AccountError, Password};
use awx_onboard::html::escape;
use awx_onboard::operator::team::{Invitation, TeamError};
use awx_onboard::security_log::SecurityEventKind;
use awx_onboard::sessions::PendingSignIn;

use crate::access::{ActingOperator, Sessions};
use crate::error::AppError;
use crate::form::FormFields;
use crate::net::ClientAddr;
use crate::reauth::OperatorPost;
use crate::state::AppState;

fn team_with(notice: Notice) -> Response {
    Redirect::to(&paths::with_notice(paths::OPERATOR_TEAM, notice)).into_response()
}

/// `POST /operator/team/invite`: a single-use link by email (after a fresh code).
pub async fn invite(State(state): State<AppState>, post: OperatorPost) -> Result<Response, AppError> {
    if let Some(ask) = post.confirm(&state, paths::OPERATOR_TEAM_INVITE).await? {
        return Ok(ask);
    }
    let operator = &post.operator;
    match state.services.team.invite(post.form.first("email"), operator).await {
        Ok(invitation) => {
            tracing::info!(invitation = invitation.id, by = %operator.email, "operator invited");
            let what = format!(
                "{} invited {} to become an operator (the link works for 24 hours)",
                operator.email, invitation.email
            );
            if let Err(error) = state.services.team.alert_others(operator, &what).await {
                tracing::error!(%error, "the other operators could not be alerted");
            }
            post.log(&state, SecurityEventKind::OperatorInvited, &invitation.email)
                .await;
            Ok(team_with(Notice::Invited))
        }
        Err(TeamError::Database) => Err(AppError::internal("operator invitation")),
        Err(error) => {
            let refused = Ok(Err(error.to_string()));
            crate::operator_platform::show_outcome(&state, post.page, paths::OPERATOR_TEAM, refused).await
        }
    }
}

/// `POST /operator/team/{id}/remove`: never the last operator (after a fresh code).
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    post: OperatorPost,
) -> Result<Response, AppError> {
    let action = paths::operator_team_remove(id);
    if let Some(ask) = post.confirm(&state, &action).await? {
        return Ok(ask);
    }
    match state.services.team.remove(id).await {
        Ok(email) => {
            tracing::info!(operator = id, by = %post.operator.email, "operator removed");
            post.log(&state, SecurityEventKind::OperatorRemoved, &email).await;
            if id == post.operator.id {
                return Ok(Redirect::to(&paths::with_notice(paths::LOGIN, Notice::SignedOut)).into_response());
            }
            Ok(team_with(Notice::OperatorRemoved))
        }
        Err(TeamError::NotFound) => Err(AppError::NotFound("There is no operator with that number.")),
        Err(TeamError::LastOperator) => Err(AppError::Conflict(TeamError::LastOperator.to_string())),
        Err(error) => Err(AppError::internal(error)),
    }
}

/// `POST /operator/team/{id}/log-out-everywhere`: ends every session of an operator, the
/// one asking included.
pub async fn log_out_everywhere(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    post: OperatorPost,
) -> Result<Response, AppError> {
    // Ending one's own sessions is always allowed; another operator's, with a fresh code.
    if id != post.operator.id {
        let action = paths::operator_team_log_out(id);
        if let Some(ask) = post.confirm(&state, &action).await? {
            return Ok(ask);
        }
    }
    let team = &state.services.team;
    let Some(email) = team.member_email(id).await.map_err(AppError::internal)? else {
        return Err(AppError::NotFound("There is no operator with that number."));
    };
    let ended = team.end_sessions(id).await.map_err(AppError::internal)?;
    tracing::info!(operator = id, ended, by = %post.operator.email, "sessions ended");
    let subject = format!("{email} ({ended} sessions)");
    post.log(&state, SecurityEventKind::SessionsEnded, &subject).await;
    if id == post.operator.id {
        return Ok(Redirect::to(&paths::with_notice(paths::LOGIN, Notice::SignedOut)).into_response());
    }
    Ok(team_with(Notice::SessionsEnded))
}

/// `POST /operator/team/invitations/{id}/cancel`: the link stops working.
pub async fn cancel_invitation(
    State(state): State<AppState>,
    acting: ActingOperator,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    match state.services.team.cancel_invitation(id).await {
        Ok(email) => {
            acting.log(&state, SecurityEventKind::InvitationCancelled, &email).await;
            Ok(team_with(Notice::InvitationCancelled))
        }
        Err(TeamError::NotFound) => Err(AppError::NotFound("There is no open invitation with that number.")),
        Err(error) => Err(AppError::internal(error)),
    }
}

fn invitation_page(status: StatusCode, secret: &str, invitation: &Invitation, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=\"notice bad\" role=\"alert\">{}</p>", escape(p)))
        .unwrap_or_default();
    let body = format!(
        "<p>{by} invited you to become an operator of awx-onboard. Choose a password for \
         <strong>{email}</strong>; next you set up a second factor (an authenticator app).</p>{problem}\
         <form class=\"stack\" method=\"post\" action=\"/invitation/{secret}\">\
         <label for=\"password\">Password (at least 12 characters)</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required \
         minlength=\"12\" maxlength=\"128\" autofocus>\
         <button type=\"submit\" class=\"button\">Set password and continue</button></form>",
        by = escape(&invitation.invited_by),
        email = escape(&invitation.email),
        secret = escape(secret),
    );
    let mut response = crate::problem::page_with_eyebrow(status, "Invitation", "Join the operators", &body);
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn gone() -> Response {
    crate::problem::plain_page(
        StatusCode::GONE,
        "This invitation cannot be used",
        "The link was used already, has expired (it works for 24 hours), or never existed. Ask an operator \
         for a new invitation.",
    )
}

/// `GET /invitation/{secret}`: the invitation, if it can still be used.
pub async fn landing(State(state): State<AppState>, Path(secret): Path<String>) -> Result<Response, AppError> {
    match state
        .services
        .team
        .invitation(&secret)
        .await
        .map_err(AppError::internal)?
    {
        Some(invitation) => Ok(invitation_page(StatusCode::OK, &secret, &invitation, None)),
        None => Ok(gone()),
    }
}

/// `POST /invitation/{secret}`: sets the password and uses the invitation (once); the new
/// operator then enrols a second factor.
pub async fn accept(
    State(state): State<AppState>,
    Sessions(session): Sessions,
    client: ClientAddr,
    Path(secret): Path<String>,
    form: FormFields,
) -> Result<Response, AppError> {
    let services = &state.services;
    let Some(invitation) = services.team.invitation(&secret).await.map_err(AppError::internal)? else {
        return Ok(gone());
    };
    let password = Password::new(form.first("password").to_string());
    let hash = match services.accounts.hash_new_password(&invitation.email, &password).await {
        Ok(hash) => hash,
        Err(AccountError::Busy) => return Err(AppError::Unavailable("password hashing".into())),
        Err(AccountError::Internal) => return Err(AppError::internal("password hashing")),
        Err(error) => {
            return Ok(invitation_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &secret,
                &invitation,
                Some(&error.to_string()),
            ))
        }
    };
    let account = match services.team.accept(&secret, &hash).await {
        Ok(account) => account,
        Err(TeamError::InvitationGone) => return Ok(gone()),
        Err(TeamError::Database) => return Err(AppError::internal("invitation")),
        Err(error) => return Err(AppError::Conflict(error.to_string())),
    };
    tracing::info!(account_id = account.id, "invitation accepted");
    let what = format!(
        "{} accepted the invitation of {} and is an operator now",
        account.email, invitation.invited_by
    );
    if let Err(error) = services.team.alert_others(&account, &what).await {
        tracing::error!(%error, "the other operators could not be alerted");
    }
    state
        .log_security(
            SecurityEventKind::InvitationAccepted,
            &account,
            &client,
            Some(&format!("invited by {}", invitation.invited_by)),
        )
        .await;
    let pending = PendingSignIn {
        account,
        since: services.clock.now(),
        next: None,
    };
    session.await_second_factor(&pending).await?;
    Ok(Redirect::to(crate::second_factor::SECOND_FACTOR).into_response())
}
