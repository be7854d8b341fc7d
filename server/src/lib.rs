//! The awx-onboard web server: configuration, telemetry, the axum router (Leptos pages
//! plus the plain routes), the embedded simulator in `sim` mode, and shutdown.

pub mod cli;
pub mod config;
pub mod health;
pub mod security;
pub mod state;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use secrecy::ExposeSecret;

use app::{shell, App};
use awx_onboard::crypto::{load_or_create_key_file, TokenCipher};
use awx_onboard::db::Database;
use awx_onboard::simulator::{SimClient, SimConfig, Simulator};
use awx_onboard::time::Clock;

use crate::config::{AirwallexEndpoints, Config, TokenKeySource};
use crate::state::{AirwallexUrls, AppState};

/// A built server: bound to its address, ready to serve.
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects and migrates the database, starts the embedded simulator in `sim` mode and
    /// binds the listener. Any failure here is a start-up failure with a clear message.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let clock = Clock::system();
        let cipher = Arc::new(load_token_cipher(&config.token_key)?);
        let db = Database::connect_and_migrate(config.database_url.expose_secret())
            .await
            .context("database start-up failed")?;
        tracing::info!(database = %config::shown_database_url(&config), "database ready");

        let listener = tokio::net::TcpListener::bind(config.site_addr)
            .await
            .with_context(|| format!("could not listen on {} (LEPTOS_SITE_ADDR)", config.site_addr))?;
        let local_addr = listener.local_addr()?;

        let airwallex = match &config.airwallex.endpoints {
            AirwallexEndpoints::Remote { authorize_url, api_url } => AirwallexUrls {
                authorize_url: authorize_url.to_string(),
                api_url: api_url.as_str().trim_end_matches('/').to_string(),
            },
            AirwallexEndpoints::EmbeddedSim { addr } => start_embedded_simulator(&config, *addr, local_addr, &clock)
                .await
                .context("the embedded Airwallex simulator could not start (AIRWALLEX_SIM_ADDR)")?,
        };
        tracing::info!(authorize = %airwallex.authorize_url, api = %airwallex.api_url, "Airwallex endpoints");

        let mut leptos_options = get_configuration(None).context("Leptos configuration")?.leptos_options;
        leptos_options.site_addr = local_addr;

        let state = AppState::new(config, db, clock, cipher, airwallex, leptos_options);
        let router = build_router(state.clone());
        Ok(Application {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, closes the pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "awx-onboard listening");
        axum::serve(
            self.listener,
            self.router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("server error")?;
        self.state.db.close().await;
        tracing::info!("awx-onboard stopped");
        Ok(())
    }
}

fn load_token_cipher(source: &TokenKeySource) -> anyhow::Result<TokenCipher> {
    match source {
        TokenKeySource::Given { current, retired } => {
            let retired: Vec<[u8; 32]> = retired.iter().map(|k| *k.expose_secret()).collect();
            Ok(TokenCipher::new(current.expose_secret(), &retired))
        }
        TokenKeySource::SimKeyFile(path) => {
            let key = load_or_create_key_file(path)
                .with_context(|| format!("TOKEN_ENCRYPTION_KEY_FILE: could not read or create {}", path.display()))?;
            Ok(TokenCipher::new(&key, &[]))
        }
    }
}

async fn start_embedded_simulator(
    config: &Config,
    addr: SocketAddr,
    app_addr: SocketAddr,
    clock: &Clock,
) -> anyhow::Result<AirwallexUrls> {
    let app_host = if app_addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], app_addr.port()))
    } else {
        app_addr
    };
    let client = SimClient {
        client_id: config.airwallex.client_id.clone(),
        client_secret: config.airwallex.client_secret.expose_secret().to_string(),
        app_name: "awx-onboard".to_string(),
        redirect_uris: vec![config.redirect_uri()],
        webhook_url: Some(format!("http://{app_host}/webhooks/airwallex")),
        webhook_secret: config
            .airwallex
            .webhook_secret
            .as_ref()
            .map(|s| s.expose_secret().to_string()),
    };
    let mut sim_config = SimConfig::new(vec![client]);
    sim_config.clock = clock.clone();
    let simulator = Simulator::new(sim_config);
    let bound = simulator.spawn(addr).await?;
    tracing::info!(addr = %bound, "embedded Airwallex simulator listening");
    Ok(AirwallexUrls {
        authorize_url: format!("http://{bound}/oauth/authorize"),
        api_url: format!("http://{bound}"),
    })
}

/// The whole HTTP surface of the app.
pub fn build_router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let leptos_options = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .leptos_routes_with_context(
            &state,
            routes,
            {
                let state = state.clone();
                move || {
                    provide_context(state.clone());
                    provide_context(state.authorize_origin.clone());
                }
            },
            move || shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::headers))
        .layer(telemetry::trace_layer())
        .with_state(state)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
