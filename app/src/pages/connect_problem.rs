use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::paths;

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
    let code = move || query.with(|q| q.get("code"));
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
