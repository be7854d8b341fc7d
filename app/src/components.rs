//! Small pieces shared by pages.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dto::FormFeedback;
use crate::paths::Notice;

/// What the server put in this render's context for the page (`None` in the browser), as a
/// resource, so that it renders inside the page's `Suspense`; outside an island nothing of it
/// reaches the browser.
pub fn from_render_context<T>() -> Resource<Option<T>>
where
    T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    #[cfg(feature = "ssr")]
    let initial = use_context::<T>();
    #[cfg(not(feature = "ssr"))]
    let initial: Option<T> = None;
    Resource::new(
        || (),
        move |_| {
            let initial = initial.clone();
            async move { initial }
        },
    )
}

/// The feedback of a failed form post, as the server rendered it.
pub fn form_feedback() -> Resource<Option<FormFeedback>> {
    from_render_context()
}

/// A form the server renders again after refusing its post: what was wrong, then the form
/// that `form` draws with the email that was typed (empty at first).
#[component]
pub fn FeedbackForm<F>(form: F) -> impl IntoView
where
    F: Fn(String) -> AnyView + Clone + Send + Sync + 'static,
{
    let feedback = form_feedback();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let form = form.clone();
                Suspend::new(async move {
                    let feedback = feedback.await;
                    let email = feedback.as_ref().and_then(|f| f.email.clone()).unwrap_or_default();
                    view! {
                        {feedback.map(|f| view! { <p class="notice bad" role="alert">{f.message}</p> })}
                        {form(email)}
                    }
                })
            }}
        </Suspense>
    }
}

/// A loaded resource drawn by `view`, or the error that kept it away (announced).
pub fn loaded<T>(result: Result<T, ServerFnError>, view: impl FnOnce(T) -> AnyView) -> AnyView {
    match result {
        Ok(data) => view(data),
        Err(error) => view! { <p class="notice bad" role="alert">{crate::pages::error_text(&error)}</p> }.into_any(),
    }
}

/// An operator's table: its caption, column headings (an empty heading is an action column,
/// named for screen readers only) and rows; `empty` instead when there are no rows.
#[component]
pub fn DataTable(
    caption: &'static str,
    columns: &'static [&'static str],
    empty: &'static str,
    rows: Vec<AnyView>,
) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="muted">{empty}</p> }.into_any();
    }
    let headings = columns
        .iter()
        .map(|column| match *column {
            "" => view! { <th scope="col"><span class="visually-hidden">"Action"</span></th> }.into_any(),
            heading => view! { <th scope="col">{heading}</th> }.into_any(),
        })
        .collect_view();
    view! {
        <table class="data">
            <caption>{caption}</caption>
            <thead>
                <tr>{headings}</tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// The email field of an account form, filled in again after a refusal.
#[component]
pub fn EmailField(autocomplete: &'static str, value: String) -> impl IntoView {
    view! {
        <label>
            "Email"
            <input type="email" name="email" autocomplete=autocomplete required value=value />
        </label>
    }
}

/// A group of checkboxes named `name`, one per `(value, label)`.
#[component]
pub fn Checkboxes(
    legend: &'static str,
    name: &'static str,
    options: &'static [(&'static str, &'static str)],
    #[prop(optional)] checked: bool,
) -> impl IntoView {
    view! {
        <fieldset>
            <legend>{legend}</legend>
            {options
                .iter()
                .map(|(value, label)| view! {
                    <label class="check">
                        <input type="checkbox" name=name value=*value checked=checked />
                        {*label}
                    </label>
                })
                .collect_view()}
        </fieldset>
    }
}

/// A card holding one form that posts to `action`: its heading (`id` ties it to the card for
/// screen readers), the fields, then the button labelled `submit`.
#[component]
pub fn FormCard(
    id: &'static str,
    heading: &'static str,
    action: &'static str,
    submit: &'static str,
    children: Children,
) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby=id>
            <h2 id=id>{heading}</h2>
            <form class="stack" method="post" action=action>
                {children()}
                <button type="submit" class="button">{submit}</button>
            </form>
        </section>
    }
}

/// A small button that posts to `action` (Resend, Revoke, Disable): `tone` is `secondary`
/// or `danger`; `name` tells screen readers what it acts on.
#[component]
pub fn PostButton(
    action: String,
    label: &'static str,
    tone: &'static str,
    #[prop(optional)] name: Option<String>,
) -> impl IntoView {
    view! {
        <form method="post" action=action>
            <button type="submit" class=format!("button small {tone}") aria-label=name>
                {label}
            </button>
        </form>
    }
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

/// The top of an operator's section: its title (also the page's) and the operator's
/// sections, `current` marked.
#[component]
pub fn OperatorHeading(title: &'static str, current: &'static str) -> impl IntoView {
    view! {
        <Title text=title />
        <OperatorNav current=current />
        <h1>{title}</h1>
    }
}

/// The operator's sections.
#[component]
pub fn OperatorNav(current: &'static str) -> impl IntoView {
    use crate::paths;
    let link = move |href: &'static str, label: &'static str| {
        let current = (href == current).then_some("page");
        view! { <a href=href aria-current=current>{label}</a> }
    };
    view! {
        <nav class="subnav" aria-label="Operator">
            {link(paths::OPERATOR, "Connections")}
            {link(paths::OPERATOR_API_KEYS, "API keys")}
            {link(paths::OPERATOR_WEBHOOKS, "Webhooks")}
            {link(paths::OPERATOR_EMAILS, "Emails")}
            {link(paths::OPERATOR_TEAM, "Team")}
        </nav>
    }
}

/// What the form post that rendered this page left: a secret shown once, or what was
/// wrong with the input.
#[component]
pub fn PostOutcome() -> impl IntoView {
    let feedback = form_feedback();
    let secret = crate::operator_api::revealed();
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let feedback = feedback.await;
                let secret = secret.await;
                view! {
                    {secret.map(|revealed| view! { <RevealedSecret revealed /> })}
                    {feedback.map(|f| view! { <p class="notice bad" role="alert">{f.message}</p> })}
                }
            })}
        </Suspense>
    }
}

/// A secret shown once, with a warning that it will not be shown again.
#[component]
pub fn RevealedSecret(revealed: crate::dto::Revealed) -> impl IntoView {
    view! {
        <div class="notice ok revealed" role="status">
            <p><strong>{revealed.label}</strong></p>
            <p>"Copy it now: it is shown only this once and cannot be seen again."</p>
            <input
                class="secret"
                type="text"
                readonly
                aria-label="The new secret"
                value=revealed.secret
            />
        </div>
    }
}
