//! Which Airwallex this server talks to (`AIRWALLEX_*`), with what credentials, and how
//! fresh it keeps what it reads (`REFRESH_MARGIN_SECONDS`, `ACCOUNT_CACHE_SECONDS`).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use awx_onboard::simulator;

use super::network::is_loopback_http;
use super::reader::Reader;

/// The pinned Airwallex API version sent as `x-api-version`.
pub const DEFAULT_API_VERSION: &str = "2024-09-27";
pub const DEFAULT_SIM_ADDR: &str = "127.0.0.1:3100";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AirwallexEnv {
    Sim,
    Demo,
    Prod,
}

impl AirwallexEnv {
    fn hosts(self) -> Option<(&'static str, &'static str)> {
        match self {
            AirwallexEnv::Sim => None,
            AirwallexEnv::Demo => Some((
                "https://demo.airwallex.com/oauth/authorize",
                "https://api-demo.airwallex.com",
            )),
            AirwallexEnv::Prod => Some(("https://airwallex.com/oauth/authorize", "https://api.airwallex.com")),
        }
    }
}

/// Where Airwallex lives for this server.
#[derive(Debug, Clone)]
pub enum AirwallexEndpoints {
    /// Explicit URLs (a real Airwallex, or a simulator started elsewhere).
    Remote { authorize_url: Url, api_url: Url },
    /// The embedded simulator, listening on this address.
    EmbeddedSim { addr: SocketAddr },
}

#[derive(Clone)]
pub struct AirwallexConfig {
    pub env: AirwallexEnv,
    pub endpoints: AirwallexEndpoints,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: Vec<String>,
    pub api_version: String,
    pub webhook_secret: Option<SecretString>,
    /// Refresh an access token with less than this left.
    pub refresh_margin: Duration,
    /// Reuse account details this long.
    pub account_cache: Duration,
    /// What the proxy allows in front of Airwallex.
    pub proxy: ProxyLimits,
}

/// The proxy's limits in front of Airwallex, per connection and per instance.
///
/// Defaults from Airwallex's "rate limits" page as transcribed in a secondary source (not
/// confirmed against Airwallex's own page): production 20 requests a second per endpoint
/// and 50 concurrent requests, the sandbox (and the simulator, which stands in for it) 10
/// and 10. Airwallex sends no rate-limit headers; its 429 is the signal, passed back as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    /// `AIRWALLEX_PROXY_RATE_PER_SECOND`
    pub rate_per_second: u32,
    /// `AIRWALLEX_PROXY_CONCURRENCY`
    pub concurrency: u32,
    /// `AIRWALLEX_PROXY_TIMEOUT_SECONDS`: an upstream call that takes longer answers 504.
    pub timeout: Duration,
}

impl fmt::Debug for AirwallexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirwallexConfig")
            .field("env", &self.env)
            .field("endpoints", &self.endpoints)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("api_version", &self.api_version)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "[redacted]"))
            .field("refresh_margin", &self.refresh_margin)
            .field("account_cache", &self.account_cache)
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// `AIRWALLEX_ENV`: `sim` is assumed only while `PUBLIC_URL` is loopback `http`.
pub(super) fn env(r: &mut Reader, public_url: Option<&Url>) -> AirwallexEnv {
    match r.raw("AIRWALLEX_ENV").as_deref() {
        // Defaulting to the simulator (whose secrets are public) is for a machine's own
        // loopback only: a real deployment must say which Airwallex it talks to.
        None if public_url.is_none_or(is_loopback_http) => AirwallexEnv::Sim,
        None => {
            r.fail(
                "AIRWALLEX_ENV",
                "is required when PUBLIC_URL is not a loopback http URL: set demo (the Airwallex \
                 sandbox), prod, or sim (the simulator, with its public secrets) explicitly",
            );
            AirwallexEnv::Sim
        }
        Some("sim") => AirwallexEnv::Sim,
        Some("demo") => AirwallexEnv::Demo,
        Some("prod") => AirwallexEnv::Prod,
        Some(other) => {
            r.fail("AIRWALLEX_ENV", format!("must be sim, demo or prod, got {other:?}"));
            AirwallexEnv::Sim
        }
    }
}

fn endpoints(r: &mut Reader, env: AirwallexEnv) -> Option<AirwallexEndpoints> {
    let authorize_override = r.url("AIRWALLEX_AUTHORIZE_URL", None);
    let api_override = r.url("AIRWALLEX_API_URL", None);
    match (env.hosts(), authorize_override, api_override) {
        (_, Some(authorize_url), Some(api_url)) => Some(AirwallexEndpoints::Remote { authorize_url, api_url }),
        (None, None, None) => {
            let text = r
                .raw("AIRWALLEX_SIM_ADDR")
                .unwrap_or_else(|| DEFAULT_SIM_ADDR.to_string());
            match text.parse::<SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => Some(AirwallexEndpoints::EmbeddedSim { addr }),
                Ok(_) => {
                    r.fail(
                        "AIRWALLEX_SIM_ADDR",
                        format!(
                            "must be a loopback address like 127.0.0.1:3100, got {text:?}: the simulator \
                             and its /__sim controls never listen on a network"
                        ),
                    );
                    None
                }
                Err(_) => {
                    r.fail(
                        "AIRWALLEX_SIM_ADDR",
                        format!("must be an address like 127.0.0.1:3100, got {text:?}"),
                    );
                    None
                }
            }
        }
        (None, authorize, _) => {
            let missing = if authorize.is_none() {
                "AIRWALLEX_AUTHORIZE_URL"
            } else {
                "AIRWALLEX_API_URL"
            };
            r.fail(
                missing,
                "must be set too: in sim mode set both AIRWALLEX_AUTHORIZE_URL and AIRWALLEX_API_URL, or neither",
            );
            None
        }
        (Some((authorize, api)), authorize_override, api_override) => Some(AirwallexEndpoints::Remote {
            authorize_url: authorize_override.unwrap_or_else(|| Url::parse(authorize).expect("static URL")),
            api_url: api_override.unwrap_or_else(|| Url::parse(api).expect("static URL")),
        }),
    }
}

/// A credential: given, or the simulator's public one in `sim` mode, else required.
fn credential(r: &mut Reader, name: &'static str, is_sim: bool, sim_value: &str) -> String {
    match r.raw(name) {
        Some(value) => value,
        None if is_sim => sim_value.to_string(),
        None => {
            r.fail(name, "is required when AIRWALLEX_ENV is demo or prod");
            String::new()
        }
    }
}

pub(super) fn read(r: &mut Reader, env: AirwallexEnv) -> Option<AirwallexConfig> {
    let endpoints = endpoints(r, env);
    let is_sim = env == AirwallexEnv::Sim;
    let client_id = credential(r, "AIRWALLEX_CLIENT_ID", is_sim, simulator::DEFAULT_CLIENT_ID);
    let client_secret = SecretString::from(credential(
        r,
        "AIRWALLEX_CLIENT_SECRET",
        is_sim,
        simulator::DEFAULT_CLIENT_SECRET,
    ));
    let scopes: Vec<String> = r
        .raw("AIRWALLEX_SCOPES")
        .unwrap_or_else(|| "account_details:read".to_string())
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.iter().any(|s| s.contains(',')) {
        r.fail("AIRWALLEX_SCOPES", "must be separated by spaces, not commas");
    }
    let webhook_secret = match r.raw("AIRWALLEX_WEBHOOK_SECRET") {
        Some(secret) => Some(SecretString::from(secret)),
        None if matches!(endpoints, Some(AirwallexEndpoints::EmbeddedSim { .. })) => {
            Some(SecretString::from(simulator::DEFAULT_WEBHOOK_SECRET))
        }
        None => None,
    };
    let api_version = r
        .raw("AIRWALLEX_API_VERSION")
        .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
    if !is_api_version(&api_version) {
        r.fail(
            "AIRWALLEX_API_VERSION",
            format!("must be a date like 2024-09-27, got {api_version:?}"),
        );
    }
    let refresh_margin = r.seconds("REFRESH_MARGIN_SECONDS", 60, 240);
    let account_cache = r.seconds("ACCOUNT_CACHE_SECONDS", 60, 86_400);
    let (rate, concurrency) = match env {
        AirwallexEnv::Prod => (20, 50),
        AirwallexEnv::Demo | AirwallexEnv::Sim => (10, 10),
    };
    let timeout = r.seconds("AIRWALLEX_PROXY_TIMEOUT_SECONDS", 30, 300);
    if timeout.is_zero() {
        r.fail("AIRWALLEX_PROXY_TIMEOUT_SECONDS", "must be at least 1 second");
    }
    let proxy = ProxyLimits {
        rate_per_second: r.count("AIRWALLEX_PROXY_RATE_PER_SECOND", rate, 100_000) as u32,
        concurrency: r.count("AIRWALLEX_PROXY_CONCURRENCY", concurrency, 100_000) as u32,
        timeout,
    };
    Some(AirwallexConfig {
        env,
        endpoints: endpoints?,
        client_id,
        client_secret,
        scopes,
        api_version,
        webhook_secret,
        refresh_margin,
        account_cache,
        proxy,
    })
}

fn is_api_version(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}
