//! The whole HTTP surface, in three areas guarded by one rule (`app::paths::Area`):
//! public, the merchant's and the operator's. Each area holds its plain routes, its
//! Leptos pages and its server functions, with [`access::guard`] as its `route_layer`.

use axum::routing::{get, on, post, MethodFilter};
use axum::Router;
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};

use app::paths::{self, Area};
use app::App;
use awx_onboard::sessions::DbSessionStore;

use crate::state::AppState;
use crate::{
    access, account, assets, auth, connect, connect_link, connection_factor, csrf, health, mail, operator,
    operator_platform, pages, platform, proxy, reauth, second_factor, security, sessions, team, telemetry, webhook,
};

/// The app's page routes, listed once per process.
///
/// Listing them renders the app once under `leptos::server::SuppressResourceLoad`, and that
/// guard is one flag for the whole process (`IS_SUPPRESSING_RESOURCE_LOAD` in leptos_server
/// 0.8.8's `resource.rs`): a resource first polled while it is held awaits a future that
/// never wakes, so a page rendered at the same moment by another app in the process (tests
/// and benches run many) would never answer. Listed once, before the first router exists,
/// no render can overlap the listing. [`crate::pages`] bounds every render as well.
pub fn route_listings() -> &'static [AxumRouteListing] {
    static LISTINGS: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    LISTINGS.get_or_init(|| generate_route_list(App))
}

/// Adds the Leptos pages and the server functions that live in `area`.
fn with_leptos(mut router: Router<AppState>, area: Area, listings: &[AxumRouteListing]) -> Router<AppState> {
    let pages_here: Vec<AxumRouteListing> = listings
        .iter()
        .filter(|listing| Area::of(listing.path()) == area)
        .cloned()
        .collect();
    router = router.leptos_routes_with_handler(pages_here, get(pages::page));
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        if Area::of(path) != area {
            continue;
        }
        let filter = MethodFilter::try_from(method).expect("server functions use plain HTTP methods");
        router = router.route(path, on(filter, server_fn));
    }
    router
}

async fn server_fn(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    leptos_axum::handle_server_fns_with_context(move || pages::provide_app_context(&state), request)
        .await
        .into_response()
}

use axum::response::IntoResponse;

fn guarded(router: Router<AppState>, area: Area) -> Router<AppState> {
    router.route_layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| access::guard(area, request, next),
    ))
}

/// The largest request body a page, form or server function accepts.
pub const MAX_PAGE_BODY_BYTES: usize = 64 * 1024;

pub fn build_router(state: AppState) -> Router {
    let listings = route_listings();
    let public = Router::new()
        .route(paths::HEALTHZ, get(health::healthz))
        .route(paths::READYZ, get(health::readyz))
        .route(paths::METRICS, get(operator::metrics))
        .route(paths::WEBHOOK_AIRWALLEX, post(webhook::airwallex))
        .route(paths::SIGNUP, post(auth::sign_up))
        .route(paths::LOGIN, post(auth::log_in))
        .route(paths::LOGOUT, post(auth::log_out))
        .route(
            second_factor::SECOND_FACTOR,
            get(second_factor::show).post(second_factor::check),
        )
        .route(second_factor::RECOVERY_CODES, get(second_factor::recovery_codes))
        .route(paths::OAUTH_CALLBACK, get(connect::callback))
        .route(
            paths::CONNECT_LINK_ROUTE,
            get(connect_link::landing).post(connect_link::open),
        )
        .route(
            paths::EMAIL_UNSUBSCRIBE,
            get(mail::unsubscribe_page).post(mail::unsubscribe),
        )
        .route(paths::INVITATION_ROUTE, get(team::landing).post(team::accept))
        .route(
            paths::VERIFY_EMAIL_ROUTE,
            get(account::verify_page).post(account::verify),
        )
        .route(
            paths::PASSWORD_RESET,
            get(account::reset_form).post(account::request_reset),
        )
        .route(
            paths::PASSWORD_RESET_ROUTE,
            get(account::reset_page).post(account::reset),
        )
        .route(paths::MAILBOX, get(mail::mailbox));
    let merchant = Router::new()
        .route(paths::OAUTH_START, post(connect::start))
        .route(paths::DISCONNECT, post(connect::disconnect))
        .route(paths::CONNECTION_EMAILS, post(mail::set_emails))
        .route(
            paths::CONNECTION_SECOND_FACTOR,
            get(connection_factor::show).post(connection_factor::enrol),
        )
        .route(paths::CONNECTION_SECOND_FACTOR_OFF, post(connection_factor::turn_off))
        .route(paths::CONNECTION_ACCOUNT, get(account::account))
        .route(paths::CONNECTION_PASSWORD, post(account::change_password))
        .route(paths::CONNECTION_DELETE, post(account::delete))
        .route(paths::CONNECTION_VERIFY_EMAIL, post(account::send_verification));
    let operator = Router::new()
        .route(paths::OPERATOR_REFRESH_ROUTE, post(operator::refresh))
        .route(paths::OPERATOR_CHECK_ROUTE, post(operator::check))
        .route(paths::OPERATOR_API_KEYS, post(operator_platform::create_key))
        .route(
            paths::OPERATOR_API_KEY_REVOKE_ROUTE,
            post(operator_platform::revoke_key),
        )
        .route(paths::OPERATOR_WEBHOOKS, post(operator_platform::create_endpoint))
        .route(
            paths::OPERATOR_CONNECT_LINKS,
            post(operator_platform::create_connect_link),
        )
        .route(
            paths::OPERATOR_WEBHOOK_DISABLE_ROUTE,
            post(operator_platform::disable_endpoint),
        )
        .route(
            paths::OPERATOR_DELIVERY_RESEND_ROUTE,
            post(operator_platform::resend_delivery),
        )
        .route(paths::OPERATOR_EMAIL_RESEND_ROUTE, post(mail::resend))
        .route(paths::OPERATOR_CONFIRM, post(reauth::confirm))
        .route(paths::OPERATOR_DELETE_MERCHANT_ROUTE, post(account::operator_delete))
        .route(paths::OPERATOR_TEAM_INVITE, post(team::invite))
        .route(paths::OPERATOR_TEAM_REMOVE_ROUTE, post(team::remove))
        .route(paths::OPERATOR_TEAM_LOG_OUT_ROUTE, post(team::log_out_everywhere))
        .route(paths::OPERATOR_INVITATION_CANCEL_ROUTE, post(team::cancel_invitation))
        .route(paths::OPERATOR_TOKEN_READS_CSV, get(operator_platform::token_reads_csv))
        .route(
            paths::OPERATOR_CONNECTION_TOKEN_READS_CSV_ROUTE,
            get(operator_platform::token_reads_csv),
        )
        .route(paths::OPERATOR_PROXY_CALLS_CSV, get(operator_platform::proxy_calls_csv))
        .route(
            paths::OPERATOR_CONNECTION_PROXY_CALLS_CSV_ROUTE,
            get(operator_platform::proxy_calls_csv),
        );

    let session_layer = sessions::layer(
        DbSessionStore::new(state.services.db.clone(), state.services.clock.clone()),
        state.config.secure_cookies(),
    );
    let app = Router::new()
        .merge(with_leptos(public, Area::Public, listings))
        .merge(guarded(with_leptos(merchant, Area::Merchant, listings), Area::Merchant))
        .merge(guarded(with_leptos(operator, Area::Operator, listings), Area::Operator))
        // Any other path: the app's own 404 page.
        .fallback(pages::page)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::load_account,
        ))
        .route_layer(axum::middleware::from_fn(telemetry::count_requests))
        .layer(session_layer)
        // Forms and server functions: 64 KiB at most (413 beyond), before any is read.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_PAGE_BODY_BYTES));
    let site_root = std::path::PathBuf::from(state.leptos_options.site_root.as_ref());
    Router::new()
        // Files first, outside the session: no database work for them.
        .merge(assets::routes(&site_root, state.leptos_options.hash_files))
        // The platform API authenticates with service keys, not sessions.
        .nest(platform::PREFIX, platform::routes())
        .merge(app)
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::check))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::headers))
        .layer(telemetry::trace_layer())
        .layer(axum::middleware::from_fn_with_state(state.clone(), proxy::client_addr))
        .with_state(state)
}
