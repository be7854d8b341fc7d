use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{EmailField, FeedbackForm};
use crate::paths;

#[component]
pub fn SignupPage() -> impl IntoView {
    view! {
        <Title text="Sign up" />
        <section class="card narrow">
            <h1>"Create your account"</h1>
            <p class="muted">"Then connect your Airwallex account in one click."</p>
            <FeedbackForm form=|email: String| {
                view! {
                    <form class="stack" method="post" action=paths::SIGNUP>
                        <EmailField autocomplete="email" value=email />
                        <label>
                            "Password"
                            <input
                                type="password"
                                name="password"
                                autocomplete="new-password"
                                required
                                minlength="12"
                            />
                            <small class="muted">"At least 12 characters. A few unrelated words work well."</small>
                        </label>
                        <button type="submit" class="button">"Create account"</button>
                    </form>
                }
                .into_any()
            } />
            <p class="muted">"Already have an account? " <a href=paths::LOGIN>"Log in"</a></p>
        </section>
    }
}
