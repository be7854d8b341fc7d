//! The awx-onboard web server: configuration, telemetry, the axum router (Leptos pages
//! plus the plain routes), the embedded simulator in `sim` mode, and shutdown.

pub mod access;
pub mod account;
pub mod assets;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connect;
pub mod connect_link;
pub mod connection_factor;
pub mod csrf;
pub mod error;
pub mod form;
pub mod health;
pub mod mail;
pub mod net;
pub mod operator;
pub mod operator_platform;
pub mod pages;
pub mod platform;
pub mod problem;
pub mod proxy;
pub mod rate_limit;
pub mod reauth;
pub mod router;
pub mod second_factor;
pub mod security;
pub mod sessions;
pub mod state;
pub mod team;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use axum::Router;
use leptos::prelude::*;
use secrecy::ExposeSecret;

use awx_onboard::airwallex::{AirwallexClient, AirwallexSettings};
use awx_onboard::crypto::{load_or_create_key_file, TokenCipher};
use awx_onboard::db::Database;
use awx_onboard::keeper::{Keeper, KeeperSettings};
use awx_onboard::oauth::OAuthSettings;
use awx_onboard::services::{ServiceSettings, Services};
use awx_onboard::sessions::DbSessionStore;
use awx_onboard::simulator::{SimClient, SimConfig, Simulator};
use awx_onboard::store::ConnectionStore;
use awx_onboard::time::Clock;
use awx_onboard::vault::{TokenVault, VaultSettings};

use crate::config::{AirwallexEndpoints, Config, TokenKeySource};
use crate::state::{AirwallexUrls, AppState};
use tower_sessions::ExpiredDeletion;

pub use crate::router::build_router;

/// How long in-flight requests may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

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
        Application::build_with(config, None).await
    }

    /// [`build`](Self::build) on a listener already bound to `LEPTOS_SITE_ADDR`'s port: a
    /// test learns its port before its configuration names it (`PUBLIC_URL`), and no other
    /// socket can take the port in between.
    pub async fn build_on(config: Config, listener: std::net::TcpListener) -> anyhow::Result<Application> {
        Application::build_with(config, Some(listener)).await
    }

    async fn build_with(config: Config, bound: Option<std::net::TcpListener>) -> anyhow::Result<Application> {
        let clock = Clock::system();
        let cipher = Arc::new(load_token_cipher(&config.token_key)?);
        let db = Database::connect_and_migrate(config.database_url.expose_secret())
            .await
            .context("database start-up failed")?;
        tracing::info!(database = %config::shown_database_url(&config), "database ready");
        let hashed = awx_onboard::mail::hash_stored_unsubscribe_tokens(&db)
            .await
            .context("hashing the stored unsubscribe tokens failed")?;
        if hashed > 0 {
            tracing::info!(
                hashed,
                "unsubscribe tokens stored as they were are now stored as hashes"
            );
        }

        let listener = match bound {
            Some(bound) => {
                bound.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(bound)?
            }
            None => tokio::net::TcpListener::bind(config.network.site_addr)
                .await
                .with_context(|| format!("could not listen on {} (LEPTOS_SITE_ADDR)", config.network.site_addr))?,
        };
        let local_addr = listener.local_addr()?;

        let (airwallex, simulator) = match &config.airwallex.endpoints {
            AirwallexEndpoints::Remote { authorize_url, api_url } => (
                AirwallexUrls {
                    authorize_url: authorize_url.to_string(),
                    api_url: api_url.as_str().trim_end_matches('/').to_string(),
                },
                None,
            ),
            AirwallexEndpoints::EmbeddedSim { addr } => {
                let (urls, simulator) = start_embedded_simulator(&config, *addr, local_addr, &clock)
                    .await
                    .context("the embedded Airwallex simulator could not start (AIRWALLEX_SIM_ADDR)")?;
                (urls, Some(simulator))
            }
        };
        tracing::info!(authorize = %airwallex.authorize_url, api = %airwallex.api_url, "Airwallex endpoints");

        let mut leptos_options = get_configuration(None).context("Leptos configuration")?.leptos_options;
        leptos_options.site_addr = local_addr;
        find_site(&mut leptos_options, config.network.site_root.as_deref());
        assets::set_stylesheet(assets::stylesheet_href(&leptos_options));
        tracing::info!(site = %leptos_options.site_root, hashed = leptos_options.hash_files, "site files");

        let services = build_services(&config, db, clock, cipher, &airwallex)?;
        let state = AppState::new(config, services, airwallex, simulator, leptos_options);
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

    /// Serves until `shutdown` completes, then drains: `/readyz` answers 503 at once while
    /// requests are still served for the drain delay (`DRAIN_SECONDS`, so a load balancer
    /// stops sending new ones), then new connections are refused, in-flight requests
    /// finish (at most [`SHUTDOWN_GRACE`]), the keeper stops between batches and the pool
    /// closes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "awx-onboard listening");
        let (stop_keeper, keeper_stopped) = tokio::sync::watch::channel(false);
        let keeper = tokio::spawn(self.state.services.keeper.clone().run(keeper_stopped.clone()));
        let deliverer = tokio::spawn(self.state.services.deliverer.clone().run(keeper_stopped.clone()));
        if self.state.config.mail.local_mailbox {
            tracing::info!("emails: kept in the local mailbox at /mailbox (no SMTP_URL in the embedded mode)");
        } else if !self.state.services.mailer.configured() {
            tracing::warn!(
                "emails: not sent: no mail server configured (set SMTP_URL, e.g. smtp://127.0.0.1:2525); \
                 they wait in the outbox at /operator/emails"
            );
        }
        let mailer = tokio::spawn(self.state.services.mailer.clone().run(keeper_stopped.clone()));
        let flusher = tokio::spawn(flush_token_reads(self.state.services.clone(), keeper_stopped.clone()));
        let sweeper = tokio::spawn(sweep_periodically(self.state.services.clone(), keeper_stopped));
        let (closing, close_started) = tokio::sync::oneshot::channel::<()>();
        let draining = self.state.draining.clone();
        let drain = self.state.config.network.drain;
        // No Nagle delay: a response written in two parts (headers, then a file's body)
        // would otherwise wait for the client's delayed ACK, 40 ms.
        let listener = self.listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY could not be set");
            }
        });
        let serving = axum::serve(
            listener,
            self.router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::info!(
                drain_s = drain.as_secs(),
                "draining: /readyz answers 503, requests still served"
            );
            let _ = stop_keeper.send(true);
            tokio::time::sleep(drain).await;
            tracing::info!("no new connections; finishing in-flight requests");
            let _ = closing.send(());
        })
        .into_future();
        // In-flight requests get a bounded time to finish; a stuck one does not hold the
        // process (or a deployment) forever.
        let served = tokio::select! {
            result = serving => result.context("server error"),
            _ = async {
                if close_started.await.is_ok() {
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "requests still running at shutdown were cut off");
                Ok(())
            }
        };
        let _ = keeper.await;
        let _ = deliverer.await;
        let _ = mailer.await;
        let _ = flusher.await;
        let _ = sweeper.await;
        served?;
        self.state.services.db.close().await;
        tracing::info!("awx-onboard stopped");
        Ok(())
    }
}

/// The site's files: `LEPTOS_SITE_ROOT` when set, else a `site` folder beside the binary
/// (an unpacked release runs from anywhere), else Leptos' default. Hashed file names are on
/// when cargo-leptos left a `hash.txt` beside the binary.
fn find_site(options: &mut LeptosOptions, configured: Option<&std::path::Path>) {
    if let Some(root) = configured {
        options.site_root = root.display().to_string().into();
    }
    if let Some(dir) = assets::exe_dir() {
        if configured.is_none() && dir.join("site").is_dir() {
            options.site_root = dir.join("site").display().to_string().into();
        }
        if dir.join(options.hash_file.as_ref()).is_file() {
            options.hash_files = true;
        }
    }
}

fn build_services(
    config: &Config,
    db: Database,
    clock: Clock,
    cipher: Arc<TokenCipher>,
    airwallex: &AirwallexUrls,
) -> anyhow::Result<Services> {
    let request_timeout = Duration::from_secs(10);
    let client = AirwallexClient::new(AirwallexSettings {
        api_url: airwallex.api_url.clone(),
        client_id: config.airwallex.client_id.clone(),
        client_secret: config.airwallex.client_secret.clone(),
        api_version: config.airwallex.api_version.clone(),
        connect_timeout: Duration::from_secs(5),
        request_timeout,
    });
    let vault = Arc::new(TokenVault::new(
        ConnectionStore::new(db),
        cipher,
        client,
        clock.clone(),
        VaultSettings::new(config.airwallex.refresh_margin.as_secs() as i64, request_timeout),
    ));
    let keeper = Arc::new(Keeper::new(vault.clone(), KeeperSettings::default()));
    // Password hashing may use all cores but one, so pages stay quick during a login rush.
    let hashing_slots = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .saturating_sub(1)
        .max(1);
    Services::new(
        vault,
        keeper,
        ServiceSettings {
            oauth: OAuthSettings {
                authorize_url: airwallex.authorize_url.clone(),
                redirect_uri: config.redirect_uri(),
                client_id: config.airwallex.client_id.clone(),
                scopes: config.airwallex.scopes.clone(),
            },
            account_cache_seconds: config.airwallex.account_cache.as_secs() as i64,
            webhook_secret: config.airwallex.webhook_secret.clone(),
            hashing_slots,
            sign_ups_per_address_per_hour: config.network.sign_ups_per_address_per_hour,
            deliveries: awx_onboard::outbox_queue::Schedule {
                lease: config.platform.webhook_delivery_lease,
                ..awx_onboard::platform::outbox::WEBHOOK_SCHEDULE
            },
            mail: awx_onboard::mail::MailSettings {
                local_mailbox: config.mail.local_mailbox,
                ..awx_onboard::mail::MailSettings::new(
                    config.mail.smtp_url.clone(),
                    config.mail.from.clone(),
                    config.public_origin(),
                )
            },
            digest_hour: config.mail.digest_hour,
            retention_days: config.retention_days,
            webhook_targets: awx_onboard::platform::outbox::TargetPolicy {
                allow_private: config.platform.webhook_allow_private_targets,
                public_url_is_loopback: config.public_url_is_loopback(),
            },
            connect: awx_onboard::platform::connect_sessions::ConnectSettings {
                platform_name: config.platform.name.clone(),
                return_origins: config.platform.return_origins.clone(),
                ttl_seconds: config.platform.connect_session.as_secs() as i64,
                public_origin: config.public_origin(),
            },
        },
    )
    .context("mail settings (SMTP_URL, MAIL_FROM)")
}

pub(crate) fn load_token_cipher(source: &TokenKeySource) -> anyhow::Result<TokenCipher> {
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
) -> anyhow::Result<(AirwallexUrls, Simulator)> {
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
    Ok((
        AirwallexUrls {
            authorize_url: format!("http://{bound}/oauth/authorize"),
            api_url: format!("http://{bound}"),
        },
        simulator,
    ))
}

/// Adds the token reads counted in memory and the proxied calls to the audit every second,
/// and once more on the way out.
async fn flush_token_reads(services: Arc<Services>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = stop.changed() => true,
        };
        if let Err(error) = services.token_reads.flush().await {
            tracing::warn!(%error, "token reads could not be added to the audit; kept for the next try");
        }
        if let Err(error) = services.proxy_calls.flush().await {
            tracing::warn!(%error, "proxied calls could not be added to the audit; kept for the next try");
        }
        if stopping || *stop.borrow() {
            return;
        }
    }
}

/// Deletes expired sessions, finished authorization requests, old log-in attempts and
/// processed webhook ids past their horizon, and what is past `RETENTION_DAYS`.
async fn sweep_periodically(services: Arc<Services>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sessions = DbSessionStore::new(services.db.clone(), services.clock.clone());
    loop {
        if let Err(error) = sessions.delete_expired().await {
            tracing::warn!(%error, "expired sessions could not be swept");
        }
        if let Err(error) = services.authorization.sweep().await {
            tracing::warn!(%error, "old authorization requests could not be swept");
        }
        let _ = services.accounts.sweep_attempts().await;
        let _ = awx_onboard::webhooks::sweep(services.store(), services.clock.now()).await;
        match services.retention.prune().await {
            Ok(pruned) if pruned.total() > 0 => tracing::info!(?pruned, "pruned what is past RETENTION_DAYS"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "pruning past RETENTION_DAYS failed; trying later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            _ = stop.changed() => return,
        }
    }
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
