//! `GET /oauth/authorize` (the consent screen) and its form's decision.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::accounts::SimAccount;
use super::answers::{error_page, redirect_with};
use super::authorize_request::{check_authorize, AuthorizeFailure, AuthorizeParams, ValidAuthorize};
use super::pages;
use super::Simulator;

/// The consent page again, with what to correct.
fn consent_again(sim: &Simulator, params: &AuthorizeParams, valid: &ValidAuthorize, problem: &str) -> Response {
    let accounts = sim.inner.lock().accounts.clone();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Html(pages::consent_with_error(params, valid, &accounts, problem)),
    )
        .into_response()
}

/// The answer to a refused request: an error page, or the error at the client.
fn refusal(params: &AuthorizeParams, failure: AuthorizeFailure) -> Response {
    match failure {
        AuthorizeFailure::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        AuthorizeFailure::Redirect { error, description } => redirect_with(
            params.redirect_uri.as_deref().unwrap_or_default(),
            &[("error", error), ("error_description", description)],
            params.state.as_deref(),
        ),
    }
}

pub async fn authorize_page(State(sim): State<Simulator>, Query(params): Query<AuthorizeParams>) -> Response {
    match check_authorize(&sim, &params) {
        Ok(valid) => {
            let accounts = sim.inner.lock().accounts.clone();
            Html(pages::consent(&params, &valid, &accounts)).into_response()
        }
        Err(failure) => refusal(&params, failure),
    }
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(flatten)]
    params: AuthorizeParams,
    decision: Option<String>,
    account: Option<String>,
    new_business_name: Option<String>,
    new_email: Option<String>,
}

pub async fn authorize_decision(State(sim): State<Simulator>, Form(form): Form<Decision>) -> Response {
    let valid = match check_authorize(&sim, &form.params) {
        Ok(valid) => valid,
        Err(failure) => return refusal(&form.params, failure),
    };
    let params = &form.params;
    let redirect_uri = params.redirect_uri.as_deref().unwrap_or_default();
    let state = params.state.as_deref();
    if form.decision.as_deref() != Some("authorize") {
        return redirect_with(
            redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user declined access"),
            ],
            state,
        );
    }
    let account_id = match form.account.as_deref() {
        Some("new") if params.sign_up() => {
            let name = form.new_business_name.as_deref().unwrap_or_default().trim();
            let email = form.new_email.as_deref().unwrap_or_default().trim();
            if name.is_empty() || !email.contains('@') {
                return consent_again(
                    &sim,
                    params,
                    &valid,
                    "Enter a business name and an email address to create your Airwallex account.",
                );
            }
            let account = SimAccount::signed_up(name, email, sim.inner.now());
            let id = account.id.clone();
            sim.inner.lock().accounts.push(account);
            id
        }
        Some(id) if sim.inner.lock().accounts.iter().any(|a| a.id == id) => id.to_string(),
        _ => return consent_again(&sim, params, &valid, "Choose the account to connect."),
    };
    let code = sim.inner.issue_code(
        params.client_id.as_deref().unwrap_or_default(),
        redirect_uri,
        &account_id,
        valid.scopes,
        params.code_challenge.clone(),
    );
    redirect_with(redirect_uri, &[("code", &code)], state)
}
