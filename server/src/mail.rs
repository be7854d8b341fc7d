//! Email choices over HTTP: the merchant's switch on `/connection`, the RFC 8058 one-click
//! unsubscribe that every message links to (authenticated by the message's token, not a
//! session), and the operator's Resend.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use app::paths::{self, Notice};
use awx_onboard::html::escape;

use crate::access::{OperatorUser, SignedIn};
use crate::error::AppError;
use crate::form::HtmlForm;
use crate::net::ClientAddr;
use crate::problem::{page_with_body, plain_page};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct EmailsForm {
    #[serde(default)]
    emails: String,
}

/// `POST /connection/emails` (`emails=on|off`).
pub async fn set_emails(
    State(state): State<AppState>,
    SignedIn(account): SignedIn,
    HtmlForm(form): HtmlForm<EmailsForm>,
) -> Result<Response, AppError> {
    let on = match form.emails.as_str() {
        "on" => true,
        "off" => false,
        _ => return Err(AppError::BadForm("emails must be on or off")),
    };
    state
        .services
        .mail
        .set_emails(account.id, on)
        .await
        .map_err(AppError::internal)?;
    tracing::info!(account_id = account.id, on, "email choice changed");
    let notice = if on { Notice::EmailsOn } else { Notice::EmailsOff };
    Ok(Redirect::to(&paths::with_notice(paths::CONNECTION, notice)).into_response())
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    t: String,
}

fn unknown_link() -> Response {
    plain_page(
        StatusCode::NOT_FOUND,
        "This link does not work",
        "We do not know this unsubscribe link. Log in and choose on your connection page whether we email you.",
    )
}

/// `GET /email/unsubscribe?t=…`: asks first (a GET never changes anything; mail scanners
/// follow links).
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, AppError> {
    let Some((_, email, on)) = state
        .services
        .mail
        .unsubscribe_target(&query.t)
        .await
        .map_err(AppError::internal)?
    else {
        return Ok(unknown_link());
    };
    if !on {
        return Ok(done_page(&email));
    }
    let action = format!("{}?t={}", paths::EMAIL_UNSUBSCRIBE, query.t);
    Ok(page_with_body(
        StatusCode::OK,
        "Stop these emails?",
        &format!(
            "<p class=\"muted\">We write to <strong>{}</strong> when its Airwallex connection needs attention. \
             Without these emails, check your connection page yourself.</p>\
             <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\" class=\"button\">Stop these emails</button></form>",
            escape(&email),
            escape(&action)
        ),
    ))
}

/// `POST /email/unsubscribe?t=…`: RFC 8058 one-click (mail providers post
/// `List-Unsubscribe=One-Click` without cookies), and the confirmation page's button.
pub async fn unsubscribe(State(state): State<AppState>, Query(query): Query<TokenQuery>) -> Result<Response, AppError> {
    match state
        .services
        .mail
        .unsubscribe(&query.t)
        .await
        .map_err(AppError::internal)?
    {
        Some(email) => {
            tracing::info!("a recipient turned emails off through an unsubscribe link");
            Ok(done_page(&email))
        }
        None => Ok(unknown_link()),
    }
}

fn done_page(email: &str) -> Response {
    page_with_body(
        StatusCode::OK,
        "Emails turned off",
        &format!(
            "<p class=\"muted\">We will not email <strong>{}</strong> about its Airwallex connection. \
             Turn them back on at any time on your connection page.</p>\
             <a class=\"button\" href=\"{}\">Your connection</a>",
            escape(email),
            paths::CONNECTION
        ),
    )
}

/// `POST /operator/emails/{id}/resend`.
pub async fn resend(
    State(state): State<AppState>,
    OperatorUser(operator): OperatorUser,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    if !state.services.mail.resend(id).await.map_err(AppError::internal)? {
        return Err(AppError::NotFound("There is no such email, or it is queued already."));
    }
    tracing::info!(message = id, by = %operator.email, "email queued again");
    Ok(Redirect::to(&paths::with_notice(paths::OPERATOR_EMAILS, Notice::Resent)).into_response())
}

/// Links in a message's text, clickable (the text escaped first).
fn linked(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped.as_str();
    while let Some(at) = rest.find("http://").into_iter().chain(rest.find("https://")).min() {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '<' || c == '"')
            .unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches(['.', ',', ')']);
        out.push_str(&format!("<a href=\"{url}\">{url}</a>"));
        rest = &tail[url.len()..];
    }
    out.push_str(rest);
    out
}

/// `GET /mailbox`: in the embedded mode without `SMTP_URL`, what would have been sent
/// (newest first), so that a newcomer can follow every link; to this machine only.
pub async fn mailbox(State(state): State<AppState>, client: ClientAddr) -> Result<Response, AppError> {
    let Some(kept) = state.services.mailer.mailbox() else {
        return Err(AppError::NotFound(
            "There is no local mailbox: emails go through SMTP_URL.",
        ));
    };
    // On a developer's machine only: the app's own address and the visitor both loopback.
    if !client.ip.is_loopback() || !state.config.public_url_is_loopback() {
        return Err(AppError::NotFound("The local mailbox is shown on this machine only."));
    }
    let items: String = kept
        .iter()
        .rev()
        .map(|m| {
            format!(
                "<article class=\"card mail\" data-to=\"{to}\"><h2>{subject}</h2><p class=\"muted\">To {to}, \
                 {at}</p><pre class=\"mail-text\">{text}</pre></article>",
                to = escape(&m.to),
                subject = escape(&m.subject),
                at = awx_onboard::time::human_datetime(m.at),
                text = linked(&m.text),
            )
        })
        .collect();
    let body = format!(
        "<p>No SMTP server is configured (SMTP_URL), so in the embedded mode emails land here instead: the newest \
         first, the latest {}.</p>{}",
        awx_onboard::mail::mailbox::MAILBOX_SIZE,
        if items.is_empty() {
            "<p class=\"muted\">Nothing yet.</p>".to_string()
        } else {
            items
        }
    );
    let mut response =
        crate::problem::page_with_eyebrow(StatusCode::OK, "Local mailbox", "What would have been sent", &body);
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
