use leptos::prelude::*;
use leptos_router::components::A;

/// Header, navigation and footer shared by every page.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <header class="site-header">
            <div class="container header-inner">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"⇄"</span>
                    <span class="brand-name">"awx-onboard"</span>
                </A>
                <nav class="main-nav" aria-label="Main">
                    <A href="/">"Home"</A>
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
