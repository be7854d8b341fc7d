//! The middleware that tells every later layer who the client is ([`ClientAddr`], by the
//! rules of [`crate::net`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

pub use crate::net::ClientAddr;
use crate::state::AppState;

/// Puts the [`ClientAddr`] into the request's extensions for everything after it.
pub async fn client_addr(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = state
        .config
        .network
        .trusted_proxies
        .client(peer.ip(), request.headers());
    request.extensions_mut().insert(client);
    next.run(request).await
}
