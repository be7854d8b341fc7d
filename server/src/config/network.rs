//! Where the server listens and how the world reaches it: the listen address, the public
//! origin, reverse proxies, the drain on shutdown, the render deadline, `/metrics`, the
//! site's files and the per-address sign-up bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::reader::Reader;
use crate::net::{Cidr, TrustedProxies};

#[derive(Debug)]
pub struct NetworkConfig {
    /// `LEPTOS_SITE_ADDR`.
    pub site_addr: SocketAddr,
    /// `PUBLIC_URL`.
    pub public_url: Url,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// After SIGTERM, how long `/readyz` answers 503 while requests are still served.
    pub drain: Duration,
    /// `PAGE_RENDER_TIMEOUT_SECONDS`: a page not rendered by then answers 503.
    pub render_deadline: Duration,
    /// Bearer token that opens `GET /metrics` to non-loopback callers.
    pub metrics_token: Option<SecretString>,
    /// `LEPTOS_SITE_ROOT`: the site's files (else a `site` folder beside the binary).
    pub site_root: Option<PathBuf>,
    /// Sign-ups allowed per client address and hour.
    pub sign_ups_per_address_per_hour: i64,
}

pub use awx_onboard::urls::is_loopback_http;

/// `PUBLIC_URL`, read first: what other sections default from.
pub(super) fn public_url(r: &mut Reader) -> Option<Url> {
    let public_url = r.url("PUBLIC_URL", Some("http://127.0.0.1:3000"));
    if let Some(url) = &public_url {
        if url.path() != "/" || url.query().is_some() {
            r.fail(
                "PUBLIC_URL",
                "must be an origin without a path or query, like https://onboard.example.com",
            );
        }
    }
    public_url
}

pub(super) fn read(r: &mut Reader, public_url: Option<Url>) -> Option<NetworkConfig> {
    let site_addr_text = r
        .raw("LEPTOS_SITE_ADDR")
        .unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let site_addr = match site_addr_text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            r.fail(
                "LEPTOS_SITE_ADDR",
                format!("must be an address like 127.0.0.1:3000, got {site_addr_text:?}"),
            );
            SocketAddr::from(([127, 0, 0, 1], 3000))
        }
    };
    let trusted_proxies = TrustedProxies(
        r.raw("TRUSTED_PROXIES")
            .unwrap_or_default()
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .filter_map(|entry| match entry.parse::<Cidr>() {
                Ok(cidr) => Some(cidr),
                Err(problem) => {
                    r.fail("TRUSTED_PROXIES", problem);
                    None
                }
            })
            .collect(),
    );
    let drain = r.seconds("DRAIN_SECONDS", 5, 300);
    let render_deadline = r.seconds("PAGE_RENDER_TIMEOUT_SECONDS", 20, 600);
    if render_deadline.is_zero() {
        r.fail("PAGE_RENDER_TIMEOUT_SECONDS", "must be at least 1 second");
    }
    let metrics_token = r.raw("METRICS_TOKEN").map(SecretString::from);
    let site_root = r.raw("LEPTOS_SITE_ROOT").map(PathBuf::from);
    let sign_ups_per_address_per_hour = r.count(
        "SIGN_UPS_PER_ADDRESS_PER_HOUR",
        awx_onboard::accounts::MAX_SIGN_UPS_PER_ADDRESS,
        1_000_000,
    );
    Some(NetworkConfig {
        site_addr,
        public_url: public_url?,
        trusted_proxies,
        drain,
        render_deadline,
        metrics_token,
        site_root,
        sign_ups_per_address_per_hour,
    })
}
