//! The awx-onboard user interface: the HTML shell, the router and every page.
//!
//! Server-only code (calls into the core library) lives behind the `ssr` feature; the
//! browser bundle is built with `hydrate`.

pub mod api;
pub mod charts;
pub mod components;
#[cfg(feature = "ssr")]
pub mod csp;
pub mod dto;
pub mod layout;
pub mod operator_api;
pub mod pages;
pub mod paths;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode, StaticSegment};

use crate::layout::Layout;
use crate::pages::{
    connect_problem::ConnectProblemPage, connection::ConnectionPage, home::HomePage, login::LoginPage,
    not_found::NotFound, operator::OperatorPage, operator_api_keys::OperatorApiKeysPage,
    operator_connection::OperatorConnectionPage, operator_emails::OperatorEmailsPage, operator_team::OperatorTeamPage,
    operator_webhooks::OperatorWebhookPage, operator_webhooks::OperatorWebhooksPage, signup::SignupPage,
};

/// The whole HTML document rendered on the server around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    csp::set_for_this_response();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="icon" href="/favicon.ico" />
                // The stylesheet's name carries its hash in release builds (cached for a year).
                <HashedStylesheet options=options.clone() id="leptos" />
                // Islands: the browser hydrates only the interactive parts (the `#[island]`s); every
                // other part of a page stays the HTML the server sent.
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Title formatter=|text: String| {
            if text.is_empty() { "awx-onboard".to_string() } else { format!("{text} · awx-onboard") }
        } />
        <Router>
            <Layout>
                // Async rendering: every page arrives complete, so it works without JavaScript.
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage ssr=SsrMode::Async />
                    <Route path=StaticSegment("signup") view=SignupPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("connection") view=ConnectionPage ssr=SsrMode::Async />
                    <Route path=path!("/connect/problem") view=ConnectProblemPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("operator") view=OperatorPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/connections/:id") view=OperatorConnectionPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/api-keys") view=OperatorApiKeysPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/team") view=OperatorTeamPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/emails") view=OperatorEmailsPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/webhooks") view=OperatorWebhooksPage ssr=SsrMode::Async />
                    <Route path=path!("/operator/webhooks/:id") view=OperatorWebhookPage ssr=SsrMode::Async />
                </Routes>
            </Layout>
        </Router>
    }
}

/// Entry point of the browser bundle: hydrates the page's islands, and nothing else (the
/// rest of every page works as the server sent it, links and forms included).
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
