//! Small pieces shared by pages.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::dto::FormFeedback;
use crate::paths::Notice;

/// The feedback of a failed form post, rendered by the server and carried into hydration
/// as a resource (so the browser shows exactly what the server rendered).
pub fn form_feedback() -> Resource<Option<FormFeedback>> {
    #[cfg(feature = "ssr")]
    let initial = use_context::<FormFeedback>();
    #[cfg(not(feature = "ssr"))]
    let initial: Option<FormFeedback> = None;
    Resource::new(
        || (),
        move |_| {
            let initial = initial.clone();
            async move { initial }
        },
    )
}

/// A one-line message chosen by the `notice` query parameter, among those this page shows.
#[component]
pub fn QueryNotice(notices: &'static [Notice]) -> impl IntoView {
    let query = use_query_map();
    move || {
        let notice = query.with(|q| q.get("notice")).as_deref().and_then(Notice::parse);
        notice.filter(|n| notices.contains(n)).map(|notice| {
            let (tone, text) = notice.message();
            view! { <p class=format!("notice {tone}") role="status">{text}</p> }
        })
    }
}

/// A labelled row of a details list, skipped when there is no value.
#[component]
pub fn Detail(label: &'static str, value: Option<String>) -> impl IntoView {
    value.map(|value| {
        view! {
            <dt>{label}</dt>
            <dd>{value}</dd>
        }
    })
}
