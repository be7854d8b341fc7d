//! An Airwallex stand-in that follows the rules stated in [`crate::airwallex`]: the
//! authorize page, the token endpoint with rotation and its grace minute, reuse detection,
//! `429` on concurrent refresh, `GET /api/v1/account/`, merchant-side revocation and signed
//! disconnection webhooks. Test controls live under [`CONTROL_PREFIX`] and exist only here.
//! Built only with the `simulator` feature.

mod accounts;
mod answers;
mod api;
mod authorize;
mod authorize_request;
mod controls;
mod data;
mod faults;
mod merchant;
mod pages;
mod serve;
mod state;
mod token;
mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use accounts::{SimAccount, HARBOUR_COFFEE, LIM_WEI_LING, MAPLE_FINCH};
pub use serve::serve;
pub use state::{Counters, Endpoint, FaultKind, RandomFaults, SeenRequest, SentWebhook};

use crate::time::Clock;

/// Every test control sits under this path.
pub const CONTROL_PREFIX: &str = "/__sim";
/// The simulator's own client, used when no credentials are configured in `sim` mode.
pub const DEFAULT_CLIENT_ID: &str = "awx_sim_client_3f9a";
pub const DEFAULT_CLIENT_SECRET: &str = "awx_sim_secret_not_for_production";
pub const DEFAULT_WEBHOOK_SECRET: &str = "awx_sim_webhook_secret";
pub const ACCESS_TOKEN_TTL: i64 = 300;
pub const GRACE_SECONDS: i64 = 60;
pub const CODE_TTL: i64 = 600;
pub const DEFAULT_REFRESH_TOKEN_TTL: i64 = 60 * 24 * 3600;
/// Largest request body the simulator reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A partner app registered with the simulated Airwallex.
#[derive(Clone)]
pub struct SimClient {
    pub client_id: String,
    pub client_secret: String,
    pub app_name: String,
    pub redirect_uris: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for SimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimClient")
            .field("client_id", &self.client_id)
            .field("app_name", &self.app_name)
            .field("redirect_uris", &self.redirect_uris)
            .field("webhook_url", &self.webhook_url)
            .finish_non_exhaustive()
    }
}

impl SimClient {
    /// The simulator's default client with one registered redirect URI.
    pub fn default_with_redirect(redirect_uri: impl Into<String>) -> SimClient {
        SimClient {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            app_name: "awx-onboard".into(),
            redirect_uris: vec![redirect_uri.into()],
            webhook_url: None,
            webhook_secret: Some(DEFAULT_WEBHOOK_SECRET.into()),
        }
    }
}

/// How the simulated Airwallex behaves.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub clients: Vec<SimClient>,
    /// `refresh_token_expires_in` for every issued refresh token (60 days by default).
    pub refresh_token_ttl: i64,
    pub clock: Clock,
}

impl SimConfig {
    pub fn new(clients: Vec<SimClient>) -> SimConfig {
        SimConfig {
            clients,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            clock: Clock::system(),
        }
    }
}

/// A running simulator's state, shared by its handlers.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<state::SimState>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Simulator {
        Simulator {
            inner: Arc::new(state::SimState::new(config)),
        }
    }

    /// The clock the simulator issues and checks tokens by.
    pub fn clock(&self) -> &Clock {
        &self.inner.config.clock
    }

    /// Queues `count` faults for the next calls of an endpoint (as `POST /__sim/faults`).
    pub fn inject(&self, endpoint: Endpoint, fault: FaultKind, count: usize) {
        self.inner.add_faults(endpoint, fault, count);
    }

    /// Random faults on every call of an endpoint (as `POST /__sim/faults/random`).
    pub fn set_random_faults(&self, endpoint: Endpoint, faults: RandomFaults) {
        self.inner.set_random_faults(endpoint, faults);
    }

    /// Revokes every active connection of an account, announcing each by webhook.
    pub fn revoke_account(&self, account_id: &str) -> usize {
        let ids: Vec<String> = self
            .inner
            .lock()
            .connections
            .values()
            .filter(|c| c.account_id == account_id && c.status == state::ConnectionStatus::Active)
            .map(|c| c.id.clone())
            .collect();
        for id in &ids {
            if let Some(revocation) = self.inner.revoke(id) {
                webhooks::spawn_webhook(self.clone(), revocation);
            }
        }
        ids.len()
    }

    /// Issues an authorization code as if the merchant of `account_id` had consented
    /// (tests that are not about the consent page use this).
    pub fn approve(
        &self,
        client_id: &str,
        redirect_uri: &str,
        account_id: &str,
        code_challenge: Option<String>,
    ) -> String {
        self.inner.issue_code(
            client_id,
            redirect_uri,
            account_id,
            vec!["account_details:read".into()],
            code_challenge,
        )
    }

    /// The ids of the preset accounts (plus any created by sign-up).
    pub fn account_ids(&self) -> Vec<String> {
        self.inner.lock().accounts.iter().map(|a| a.id.clone()).collect()
    }

    /// Adds a simulated account (tests that need many distinct accounts).
    pub fn add_account(&self, business_name: &str, email: &str) -> String {
        let account = SimAccount::signed_up(business_name, email, self.clock().now());
        let id = account.id.clone();
        self.inner.lock().accounts.push(account);
        id
    }

    /// The webhook events sent so far, oldest first (also at `GET /__sim/webhooks`).
    pub fn sent_webhooks(&self) -> Vec<SentWebhook> {
        self.inner.lock().sent_webhooks.clone()
    }

    /// Sends an earlier event again, now, as Airwallex's retries do (also at
    /// `POST /__sim/webhooks/redeliver`). Returns the receiver's status.
    pub async fn redeliver(&self, event_id: &str) -> Result<axum::http::StatusCode, String> {
        let event = self
            .inner
            .lock()
            .sent_webhooks
            .iter()
            .find(|e| e.id == event_id)
            .cloned()
            .ok_or_else(|| format!("no webhook event {event_id}"))?;
        webhooks::deliver(self, &event).await
    }

    /// The API requests received, oldest first (also at `GET /__sim/requests`).
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.inner.lock().requests.iter().cloned().collect()
    }

    /// A snapshot of the counters (also served at `GET /__sim/counters`).
    pub fn counters(&self) -> Counters {
        self.inner.counters()
    }

    /// How many connections are being refreshed right now (a second refresh of one of
    /// them gets 429): what a test waits for instead of sleeping.
    pub fn refreshes_in_flight(&self) -> usize {
        self.inner.refreshes_in_flight()
    }

    /// The HTTP surface: Airwallex's endpoints, the merchant pages and the test controls.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/oauth/authorize",
                get(authorize::authorize_page).post(authorize::authorize_decision),
            )
            .route("/oauth/token", post(token::token))
            .route("/api/v1/account/", get(api::account))
            .route("/api/v1/balances/current", get(data::balances))
            .route("/api/v1/beneficiaries/create", post(data::create_beneficiary))
            .route("/api/v1/beneficiaries", get(data::beneficiaries))
            .route("/merchant/apps", get(merchant::merchant_apps))
            .route("/merchant/apps/disconnect", post(merchant::merchant_disconnect))
            .route("/", get(merchant::index))
            // Browsers ask every site for an icon; answer without an error.
            .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
            .nest(CONTROL_PREFIX, controls::router())
            .with_state(self.clone())
    }

    /// Binds `addr` and serves in the background; returns the bound address.
    pub async fn spawn(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(serve(listener, router, std::future::pending()));
        Ok(bound)
    }
}
