use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{form_feedback, EmailField};
use crate::paths;

#[component]
pub fn SignupPage() -> impl IntoView {
    let feedback = form_feedback();
    view! {
        <Title text="Sign up" />
        <section class="card narrow">
            <h1>"Create your account"</h1>
            <p class="muted">"Then connect your Airwallex account in one click."</p>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let feedback = feedback.await;
                    let email = feedback.as_ref().and_then(|f| f.email.clone()).unwrap_or_default();
                    view! {
                        {feedback.map(|f| view! { <p class="notice bad" role="alert">{f.message}</p> })}
                        <form class="stack" method="post" action=paths::SIGNUP>
                            <EmailField autocomplete="email" value=email />
                            <label>
                                "Password"
                                <input type="password" name="password" autocomplete="new-password" required minlength="12" />
                                <small class="muted">"At least 12 characters. A few unrelated words work well."</small>
                            </label>
                            <button type="submit" class="button">"Create account"</button>
                        </form>
                    }
                })}
            </Suspense>
            <p class="muted">"Already have an account? " <a href=paths::LOGIN>"Log in"</a></p>
        </section>
    }
}
