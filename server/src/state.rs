//! What every handler and server function shares.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use awx_onboard::services::Services;
use awx_onboard::simulator::Simulator;

use crate::config::Config;

/// Where Airwallex (or the simulator) answers, resolved at start-up.
#[derive(Debug, Clone)]
pub struct AirwallexUrls {
    pub authorize_url: String,
    /// Base URL without a trailing slash.
    pub api_url: String,
}

/// What every handler shares, behind one `Arc`: extractors, middleware and each page's
/// render clone it many times a request, and a clone is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub config: Arc<Config>,
    pub services: Arc<Services>,
    pub airwallex: AirwallexUrls,
    /// The embedded simulator, in `sim` mode.
    pub simulator: Option<Simulator>,
    pub leptos_options: LeptosOptions,
    pub authorize_origin: app::csp::AuthorizeOrigin,
    /// Set on shutdown: `/readyz` answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// The Content-Security-Policy of responses that are not pages (no script nonce),
    /// computed once.
    pub default_csp: http::HeaderValue,
    /// The platform API's per-key request budget on this instance.
    pub rate_limiter: crate::rate_limit::SharedRateLimiter,
    /// The Airwallex proxy's HTTP client (its timeout is `AIRWALLEX_PROXY_TIMEOUT_SECONDS`).
    pub proxy_client: reqwest::Client,
    /// The proxy's limits per connection on this instance.
    pub proxy_limiter: Arc<crate::rate_limit::ConnectionLimiter>,
}

impl AppState {
    /// Appends to the security log what `account` did from `client`.
    pub async fn log_security(
        &self,
        kind: awx_onboard::security_log::SecurityEventKind,
        account: &awx_onboard::accounts::Account,
        client: &crate::net::ClientAddr,
        subject: Option<&str>,
    ) {
        let ip = client.ip.to_string();
        let actor = awx_onboard::security_log::Actor::of(account, Some(&ip));
        self.services.security_log.record(kind, &actor, subject).await;
    }

    pub fn new(
        config: Config,
        services: Services,
        airwallex: AirwallexUrls,
        simulator: Option<Simulator>,
        leptos_options: LeptosOptions,
    ) -> AppState {
        let authorize_origin = app::csp::AuthorizeOrigin(
            url::Url::parse(&airwallex.authorize_url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default(),
        );
        let default_csp = http::HeaderValue::from_str(&app::csp::policy(None, &authorize_origin.0))
            .expect("the policy is plain ASCII");
        let proxy_client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(config.airwallex.proxy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .expect("the proxy's HTTP client");
        AppState(Arc::new(Shared {
            proxy_client,
            proxy_limiter: Arc::default(),
            default_csp,
            authorize_origin,
            config: Arc::new(config),
            services: Arc::new(services),
            airwallex,
            simulator,
            leptos_options,
            draining: Arc::default(),
            rate_limiter: Arc::default(),
        }))
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
