use leptos::prelude::*;
use leptos_meta::Title;

use crate::paths;

/// Shown for any path the router does not know; answers with HTTP 404.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }

    view! {
        <Title text="Page not found" />
        <section class="card narrow center">
            <p class="eyebrow">"404"</p>
            <h1>"We could not find that page"</h1>
            <p class="muted">"The link may be old, or the address mistyped."</p>
            <a class="button" href=paths::HOME>"Back to the home page"</a>
        </section>
    }
}
