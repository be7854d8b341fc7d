//! The merchant's side of a connect session: the link's landing page (`GET`, which changes
//! nothing: mail scanners and link previews fetch links) and its button (`POST`, which uses
//! the link up, signs this browser in as the merchant and starts the authorization). Plain
//! pages in the app's style: they work the same without JavaScript.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use awx_onboard::html::escape;
use awx_onboard::oauth::AccountPin;
use awx_onboard::platform::connect_sessions::{Landing, Outcome, Unusable};
use awx_onboard::sessions::PlatformReturn;
use awx_onboard::store::ConnectionStatus;

use crate::access::Sessions;
use crate::error::AppError;
use crate::state::AppState;

/// A link's secret is 32 random bytes, URL-safe base64 without padding.
fn plausible(secret: &str) -> bool {
    secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn platform_name(state: &AppState) -> &str {
    &state.services.connect_sessions.settings().platform_name
}

/// A page of the connect flow: the platform's name above the title.
fn flow_page(state: &AppState, status: StatusCode, title: &str, body: &str) -> Response {
    crate::problem::page_with_eyebrow(
        status,
        &format!("{} · Airwallex connection", platform_name(state)),
        title,
        body,
    )
}

fn back_button(state: &AppState, href: &str) -> String {
    format!(
        "<a class=\"button secondary\" data-back href=\"{}\">Back to {}</a>",
        escape(href),
        escape(platform_name(state))
    )
}

/// The one answer for a link that cannot be used (used, expired or forged): 410, with a
/// way back to the platform.
fn gone(state: &AppState, unusable: Unusable) -> Response {
    let settings = state.services.connect_sessions.settings();
    let back = match &unusable {
        Unusable::Used { return_url } | Unusable::Expired { return_url } => return_url.clone(),
        Unusable::Unknown => settings
            .return_origins
            .first()
            .cloned()
            .unwrap_or_else(|| "/".to_string()),
    };
    let body = format!(
        "<p>Connect links work once, for a limited time. Ask {name} for a new one: it takes a click there.</p>\
         <div class=\"actions\">{back}</div>",
        name = escape(platform_name(state)),
        back = back_button(state, &back),
    );
    flow_page(state, StatusCode::GONE, "This link can no longer be used", &body)
}

fn landing_page(state: &AppState, secret: &str, landing: &Landing) -> Response {
    let name = escape(platform_name(state));
    let session = &landing.session;
    let who = escape(session.business_name.as_deref().unwrap_or(&landing.email));
    if landing.connection_status == Some(ConnectionStatus::Connected) {
        let account = landing
            .connected_business_name
            .as_deref()
            .or(landing.connected_account_id.as_deref())
            .unwrap_or("your Airwallex account");
        let body = format!(
            "<p><span class=\"badge ok\" data-status=\"connected\">Connected</span></p>\
             <p>{who}, your Airwallex account <strong>{account}</strong> is connected to {name}. \
             There is nothing to do.</p><div class=\"actions\">{back}</div>",
            account = escape(account),
            back = back_button(state, &session.return_url),
        );
        return flow_page(state, StatusCode::OK, "You are connected", &body);
    }
    let renewing = matches!(
        landing.connection_status,
        Some(ConnectionStatus::NeedsReconnect | ConnectionStatus::Disconnected)
    );
    let intro = if renewing {
        format!(
            "<p>{who}, {name} needs your Airwallex connection renewed. Approve it on Airwallex once more: \
             the same connection continues.</p>"
        )
    } else {
        format!("<p>{who}, {name} asks you to connect your Airwallex account.</p>")
    };
    let button = if session.sign_up {
        "Create an Airwallex account"
    } else {
        "Connect Airwallex"
    };
    let body = format!(
        "{intro}<p class=\"muted\">awx-onboard, which keeps this connection for {name}, will read your Airwallex \
         account details (business name, account id, status, country) and never your password. You approve it on \
         Airwallex's own page and can disconnect at any time.</p>\
         <form method=\"post\" action=\"{action}\"><button type=\"submit\" class=\"button\">{button}</button></form>\
         <div class=\"actions\">{back}</div>",
        action = escape(&format!(
            "{}{secret}",
            awx_onboard::platform::connect_sessions::LINK_PREFIX
        )),
        back = back_button(state, &session.return_url),
    );
    let title = format!("Connect Airwallex to {}", platform_name(state));
    flow_page(state, StatusCode::OK, &title, &body)
}

/// `GET /connect-link/{secret}`: what the link is for, and the button. Changes nothing.
pub async fn landing(State(state): State<AppState>, Path(secret): Path<String>) -> Result<Response, AppError> {
    if !plausible(&secret) {
        return Ok(gone(&state, Unusable::Unknown));
    }
    match state.services.connect_sessions.landing(&secret).await {
        Ok(Ok(landing)) => Ok(landing_page(&state, &secret, &landing)),
        Ok(Err(unusable)) => Ok(gone(&state, unusable)),
        Err(error) => Err(AppError::internal(format!("connect link: {error}"))),
    }
}

/// `POST /connect-link/{secret}`: uses the link up, signs this browser in as the merchant
/// (a new session id) and starts the authorization, as **Connect Airwallex** does.
pub async fn open(
    State(state): State<AppState>,
    Sessions(session): Sessions,
    Path(secret): Path<String>,
) -> Result<Response, AppError> {
    if !plausible(&secret) {
        return Ok(gone(&state, Unusable::Unknown));
    }
    let services = &state.services;
    let opened = match services.connect_sessions.consume(&secret).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(unusable)) => return Ok(gone(&state, unusable)),
        Err(error) => return Err(AppError::internal(format!("connect link: {error}"))),
    };
    let Some(account) = services
        .accounts
        .by_id(opened.merchant_id)
        .await
        .map_err(AppError::internal)?
    else {
        // The merchant's account was deleted meanwhile.
        return Ok(gone(&state, Unusable::Unknown));
    };
    session.sign_in(&account).await?;
    session
        .set_platform_return(&PlatformReturn {
            session_id: opened.id.clone(),
            return_url: opened.return_url.clone(),
            allow_account_change: opened.allow_account_change,
        })
        .await?;
    let session_id = session
        .id()
        .ok_or_else(|| AppError::internal("a signed-in session has no id"))?;
    tracing::info!(
        account_id = account.id,
        connect_session = %opened.id,
        "connect link opened"
    );
    match services
        .authorization
        .start(
            account.id,
            &session_id,
            opened.sign_up,
            Some(&opened.id),
            AccountPin::of_connect_session(opened.allow_account_change),
        )
        .await
    {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(error) => {
            tracing::error!(%error, "could not start an authorization");
            crate::connect::back_to_platform(&state, &opened.id, Outcome::Failed, Some("internal")).await
        }
    }
}
