use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{form_feedback, QueryNotice};

const NOTICES: &[(&str, &str, &str)] = &[
    ("signed_out", "ok", "You are logged out."),
    (
        "login_to_connect",
        "warn",
        "Log in to finish connecting Airwallex, then start the connection again.",
    ),
    ("login_required", "warn", "Log in to continue."),
];

#[component]
pub fn LoginPage() -> impl IntoView {
    let feedback = form_feedback();
    let query = use_query_map();
    let next = move || {
        query
            .with(|q| q.get("next"))
            .filter(|n| n.starts_with('/') && !n.starts_with("//"))
    };
    view! {
        <Title text="Log in" />
        <section class="card narrow">
            <h1>"Log in"</h1>
            <QueryNotice messages=NOTICES />
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let feedback = feedback.await;
                    let email = feedback.as_ref().and_then(|f| f.email.clone()).unwrap_or_default();
                    view! {
                        {feedback.map(|f| view! { <p class="notice bad" role="alert">{f.message}</p> })}
                        <form class="stack" method="post" action="/login">
                            <input type="hidden" name="next" value=next />
                            <label>
                                "Email"
                                <input type="email" name="email" autocomplete="username" required value=email />
                            </label>
                            <label>
                                "Password"
                                <input type="password" name="password" autocomplete="current-password" required />
                            </label>
                            <button type="submit" class="button">"Log in"</button>
                        </form>
                    }
                })}
            </Suspense>
            <p class="muted">"New here? " <a href="/signup">"Create an account"</a></p>
        </section>
    }
}
