//! The session cookie: tower-sessions over the core's database store.

use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use awx_onboard::sessions::{DbSessionStore, INACTIVITY_LIMIT};

/// The session layer: HttpOnly, SameSite=Lax, expiring after inactivity; behind https
/// also Secure with the `__Host-` prefix.
pub fn layer(store: DbSessionStore, secure: bool) -> SessionManagerLayer<DbSessionStore> {
    SessionManagerLayer::new(store)
        .with_name(if secure { "__Host-awx_session" } else { "awx_session" })
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(INACTIVITY_LIMIT))
}
