use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::current_user;
use crate::paths;

/// Header, navigation and footer shared by every page.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    view! {
        <header class="site-header">
            <div class="container header-inner">
                <A href=paths::HOME attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"⇄"</span>
                    <span class="brand-name">"awx-onboard"</span>
                </A>
                <nav class="main-nav" aria-label="Main">
                    <A href=paths::HOME>"Home"</A>
                    <Suspense fallback=|| ()>
                        {move || Suspend::new(async move {
                            match user.await.ok().flatten() {
                                Some(user) => view! {
                                    // Operators run the platform; merchants have a connection.
                                    <Show
                                        when=move || user.is_operator
                                        fallback=|| view! { <A href=paths::CONNECTION>"Connection"</A> }
                                    >
                                        <A href=paths::OPERATOR>"Operator"</A>
                                    </Show>
                                    <span class="muted signed-in" title="Signed in">{user.email.clone()}</span>
                                    <form method="post" action=paths::LOGOUT>
                                        <button type="submit" class="link-button">"Log out"</button>
                                    </form>
                                }
                                .into_any(),
                                None => view! {
                                    <A href=paths::LOGIN>"Log in"</A>
                                    <A href=paths::SIGNUP attr:class="button small">"Sign up"</A>
                                }
                                .into_any(),
                            }
                        })}
                    </Suspense>
                </nav>
            </div>
        </header>
        <main class="container main">{children()}</main>
        <footer class="site-footer">
            <div class="container">
                "awx-onboard connects your Airwallex account securely through OAuth. "
                "We never see your Airwallex password."
            </div>
        </footer>
    }
}
