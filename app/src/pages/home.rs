use leptos::prelude::*;
use leptos_meta::Title;

use crate::paths;

const QUESTIONS: [(&str, &str); 3] = [
    (
        "What does awx-onboard see?",
        "Only what you approve on Airwallex's consent screen: by default your account details. \
         You can disconnect at any time, here or in Airwallex.",
    ),
    (
        "Do you store my Airwallex password?",
        "Never. You sign in on Airwallex itself; we receive a token that Airwallex lets us \
         renew, and we keep it encrypted.",
    ),
    (
        "What if the connection stops working?",
        "We notice when Airwallex revokes access and show a Reconnect button on your \
         connection page. Your history stays.",
    ),
];

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <Title text="" />
        <section class="hero">
            <p class="eyebrow">"Airwallex onboarding"</p>
            <h1>"Connect your Airwallex account in a minute"</h1>
            <p class="lead">
                "Sign up, click Connect Airwallex, approve on Airwallex, and you are done. "
                "We keep the connection alive for you and tell you if it ever needs attention."
            </p>
            <div class="actions">
                <a class="button" href=paths::SIGNUP>"Create your account"</a>
                <a class="button secondary" href=paths::CONNECTION>"Go to your connection"</a>
            </div>
        </section>
        <section class="steps" aria-label="How it works">
            <ol>
                <li><strong>"Create your account"</strong><span>"An email and a strong password."</span></li>
                <li><strong>"Connect Airwallex"</strong><span>"Approve access on Airwallex's own page."</span></li>
                <li><strong>"See your account"</strong><span>"Your Airwallex business details, always fresh."</span></li>
            </ol>
        </section>
        <Faq />
    }
}

/// Questions and answers. Without JavaScript every answer is shown; once the page has
/// hydrated, answers fold away and each question toggles its own: the one island of the
/// site, so the only code in the browser's bundle.
#[island]
fn Faq() -> impl IntoView {
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <section class="faq" aria-labelledby="faq-title">
            <h2 id="faq-title">"Questions"</h2>
            {QUESTIONS
                .iter()
                .enumerate()
                .map(|(index, (question, answer))| {
                    let open = RwSignal::new(false);
                    let answer_id = format!("faq-answer-{index}");
                    view! {
                        <div class="faq-item">
                            <button
                                type="button"
                                class="faq-question"
                                aria-controls=answer_id.clone()
                                aria-expanded=move || (!hydrated.get() || open.get()).to_string()
                                on:click=move |_| open.update(|open| *open = !*open)
                            >
                                {*question}
                            </button>
                            <p
                                id=answer_id
                                class="faq-answer"
                                hidden=move || hydrated.get() && !open.get()
                            >
                                {*answer}
                            </p>
                        </div>
                    }
                })
                .collect_view()}
        </section>
    }
}
