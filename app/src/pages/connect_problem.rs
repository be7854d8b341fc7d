use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::paths;

/// The error codes of an authorization response (RFC 6749 §4.1.2.1). Only these are ever
/// shown: anything else in the URL may have been written by someone else.
pub const OAUTH_ERROR_CODES: [&str; 7] = [
    "invalid_request",
    "unauthorized_client",
    "access_denied",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
];

/// `code` if it is an OAuth error code, to show; `None` otherwise.
pub fn shown_error_code(code: &str) -> Option<&'static str> {
    OAUTH_ERROR_CODES.into_iter().find(|known| *known == code)
}

/// `id` if it looks like an Airwallex account id (letters, digits, `_` and `-`), to show:
/// the page shows no other text from its URL.
pub fn shown_account_id(id: &str) -> Option<&str> {
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        .then_some(id)
}

/// The HTTP status of each problem page: 4xx, so monitoring can count failed connections.
pub fn status_for(reason: &str) -> u16 {
    match reason {
        "declined" | "other_session" => 403,
        "reused_state" | "account_mismatch" => 409,
        "expired_state" => 410,
        // The authorization depended on Airwallex, which failed.
        "unreachable" => 424,
        "internal" => 500,
        _ => 400,
    }
}

/// Title and explanation for each way the OAuth callback can fail.
fn describe(reason: &str) -> (&'static str, &'static str) {
    match reason {
        "declined" => (
            "You declined access",
            "Airwallex did not share your account because access was declined. \
             You can try again whenever you are ready.",
        ),
        "missing_state" | "unknown_state" => (
            "This link is not valid",
            "The answer from Airwallex did not match a connection you started here. \
             Start the connection again from this page.",
        ),
        "reused_state" => (
            "This link was already used",
            "Each Airwallex approval link works once. Start the connection again.",
        ),
        "expired_state" => (
            "The connection attempt timed out",
            "More than 10 minutes passed between starting the connection and approving it. Start again.",
        ),
        "other_session" => (
            "Started in another session",
            "This approval belongs to a different login session. For your safety we did not use it. \
             Start the connection again here.",
        ),
        "airwallex_error" => (
            "Airwallex reported a problem",
            "Airwallex could not complete the approval. Try again; if it keeps happening, contact support.",
        ),
        "exchange_failed" => (
            "We could not finish connecting",
            "Airwallex did not accept the approval we received. Nothing was saved. Try again.",
        ),
        "account_mismatch" => (
            "That is a different Airwallex account",
            "Your connection belongs to another Airwallex account, so nothing was changed. Approve again with \
             that account, or disconnect first if you mean to connect a different one.",
        ),
        "unreachable" => (
            "Airwallex is not reachable right now",
            "We could not reach Airwallex to finish connecting. Nothing was saved. Try again in a minute.",
        ),
        _ => (
            "Something went wrong",
            "The connection could not be completed. Nothing was saved. Try again.",
        ),
    }
}

#[component]
pub fn ConnectProblemPage() -> impl IntoView {
    let query = use_query_map();
    let reason = move || query.with(|q| q.get("reason")).unwrap_or_default();
    let code = move || query.with(|q| q.get("code")).as_deref().and_then(shown_error_code);
    let expected = move || {
        query
            .with(|q| q.get("expected"))
            .filter(|id| shown_account_id(id).is_some())
    };
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let status = status_for(&reason());
        response.set_status(http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST));
    }
    view! {
        <Title text="Connection not completed" />
        {move || {
            let reason = reason();
            let (title, text) = describe(&reason);
            let try_again = if reason == "declined" { "Try again" } else { "Start again" };
            view! {
                <section class="card narrow" data-reason=reason.clone()>
                    <p class="eyebrow">"Airwallex connection"</p>
                    <h1>{title}</h1>
                    <p>{text}</p>
                    {code().map(|code| view! { <p class="muted">"Airwallex said: " <code>{code}</code></p> })}
                    {expected().map(|id| view! { <p class="muted" data-expected>"Expected account: " <code>{id}</code></p> })}
                    <div class="actions">
                        <form method="post" action=paths::OAUTH_START>
                            <input type="hidden" name="mode" value="existing" />
                            <button type="submit" class="button">{try_again}</button>
                        </form>
                        <a class="button secondary" href=paths::CONNECTION>"Back to your connection"</a>
                    </div>
                </section>
            }
        }}
    }
}
