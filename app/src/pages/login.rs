use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{EmailField, FeedbackForm, QueryNotice};
use crate::paths::{self, LocalPath, Notice};

const NOTICES: &[Notice] = &[
    Notice::SignedOut,
    Notice::LoginToConnect,
    Notice::LoginRequired,
    Notice::PasswordReset,
    Notice::AccountDeleted,
    Notice::EmailVerified,
];

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || {
        query
            .with(|q| q.get("next"))
            .and_then(|n| LocalPath::parse(&n))
            .map(|n| n.as_str().to_string())
    };
    view! {
        <Title text="Log in" />
        <section class="card narrow">
            <h1>"Log in"</h1>
            <QueryNotice notices=NOTICES />
            <FeedbackForm form=move |email: String| {
                view! {
                    <form class="stack" method="post" action=paths::LOGIN>
                        <input type="hidden" name="next" value=next />
                        <EmailField autocomplete="username" value=email />
                        <label>
                            "Password"
                            <input type="password" name="password" autocomplete="current-password" required />
                        </label>
                        <button type="submit" class="button">"Log in"</button>
                    </form>
                }
                .into_any()
            } />
            <p class="muted">
                <a rel="external" href=paths::PASSWORD_RESET>"Forgot your password?"</a>
                " · New here? "
                <a href=paths::SIGNUP>"Create an account"</a>
            </p>
        </section>
    }
}
