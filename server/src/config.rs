//! The configuration contract: every environment variable the README's configuration
//! table lists, read once at start-up into one typed value. Each bad value is reported
//! with its variable's name, all of them at once.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

use awx_onboard::simulator;

use crate::proxy::{Cidr, TrustedProxies};

/// The pinned Airwallex API version sent as `x-api-version`.
pub const DEFAULT_API_VERSION: &str = "2024-09-27";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/awx-onboard.db";
pub const DEFAULT_SIM_ADDR: &str = "127.0.0.1:3100";
pub const DEFAULT_KEY_FILE: &str = "data/token-encryption.key";

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
            .finish()
    }
}

/// Where the token encryption key comes from.
pub enum TokenKeySource {
    /// `TOKEN_ENCRYPTION_KEY` (and optional retired keys that still decrypt).
    Given {
        current: SecretBox<[u8; 32]>,
        retired: Vec<SecretBox<[u8; 32]>>,
    },
    /// `sim` mode without a key: a key file created once with mode 0600.
    SimKeyFile(PathBuf),
}

impl fmt::Debug for TokenKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKeySource::Given { retired, .. } => {
                write!(f, "Given {{ current: [redacted], retired: {} keys }}", retired.len())
            }
            TokenKeySource::SimKeyFile(path) => write!(f, "SimKeyFile({})", path.display()),
        }
    }
}

#[derive(Debug)]
pub struct Config {
    pub database_url: SecretString,
    pub site_addr: SocketAddr,
    pub public_url: Url,
    pub airwallex: AirwallexConfig,
    pub token_key: TokenKeySource,
    pub refresh_margin: Duration,
    pub account_cache: Duration,
    /// Bearer token that opens `GET /metrics` to non-loopback callers.
    pub metrics_token: Option<SecretString>,
    /// Sign-ups allowed per client address and hour.
    pub sign_ups_per_address_per_hour: i64,
    /// Reverse proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// After SIGTERM, how long `/readyz` answers 503 while requests are still served.
    pub drain: Duration,
    /// `LEPTOS_SITE_ROOT`: the site's files (else a `site` folder beside the binary).
    pub site_root: Option<PathBuf>,
    /// A claimed webhook delivery is another instance's to send after this.
    pub webhook_delivery_lease: Duration,
    /// Requests per second each platform API key may make (per instance).
    pub platform_rate_limit: u32,
    /// `SMTP_URL`: where emails go; `None` keeps them in the outbox.
    pub smtp_url: Option<SecretString>,
    /// `MAIL_FROM`: the sender of every email.
    pub mail_from: String,
    /// `DIGEST_HOUR_UTC`: from this hour on, the operators' daily digest is due.
    pub digest_hour: u32,
    /// `PAGE_RENDER_TIMEOUT_SECONDS`: a page not rendered by then answers 503.
    pub render_deadline: Duration,
}

impl Config {
    /// The OAuth redirect URI registered with Airwallex.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_origin())
    }

    /// `PUBLIC_URL` without a trailing slash.
    pub fn public_origin(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_string()
    }

    /// Cookies get `Secure` (and the `__Host-` prefix) behind https, and responses HSTS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

impl Config {
    /// What `check-config` prints: every setting that matters, no secret.
    pub fn summary(&self) -> Vec<String> {
        let airwallex = match &self.airwallex.endpoints {
            AirwallexEndpoints::Remote { authorize_url, api_url } => {
                format!("authorize {authorize_url}, API {api_url}")
            }
            AirwallexEndpoints::EmbeddedSim { addr } => format!("the embedded simulator on {addr}"),
        };
        let key = match &self.token_key {
            TokenKeySource::Given { retired, .. } => format!(
                "TOKEN_ENCRYPTION_KEY given ({} retired key(s) still decrypt)",
                retired.len()
            ),
            TokenKeySource::SimKeyFile(path) => format!(
                "key file {} ({})",
                path.display(),
                if path.exists() {
                    "exists"
                } else {
                    "created at the first start"
                }
            ),
        };
        vec![
            format!("database: {}", shown_database_url(self)),
            format!("listen: {}", self.site_addr),
            format!(
                "public URL: {} (redirect URI {})",
                self.public_origin(),
                self.redirect_uri()
            ),
            format!(
                "Airwallex: {:?}, {airwallex}, client {}",
                self.airwallex.env, self.airwallex.client_id
            ),
            format!(
                "webhooks from Airwallex: {}",
                if self.airwallex.webhook_secret.is_some() {
                    "on"
                } else {
                    "off (no AIRWALLEX_WEBHOOK_SECRET)"
                }
            ),
            format!("token encryption: {key}"),
            format!(
                "trusted proxies: {}",
                if self.trusted_proxies.0.is_empty() {
                    "none".to_string()
                } else {
                    self.trusted_proxies
                        .0
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            format!("drain on shutdown: {} s", self.drain.as_secs()),
            format!(
                "email: {}, from {}, operators' digest from {:02}:00 UTC",
                if self.smtp_url.is_some() {
                    "sent through SMTP_URL"
                } else {
                    awx_onboard::mail::sender::NOT_CONFIGURED
                },
                self.mail_from,
                self.digest_hour
            ),
        ]
    }
}

/// Whether `url` is `http` on this machine only (`127.0.0.0/8`, `::1`, `localhost`): the one
/// place where the simulator may be assumed.
pub fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: &'static str,
    pub problem: String,
}

/// Every problem found; the server prints them all and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.0 {
            writeln!(f, "  {}: {}", p.variable, p.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The message for one variable, if it had a problem.
    pub fn problem_with(&self, variable: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|p| p.variable == variable)
            .map(|p| p.problem.as_str())
    }
}

struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
}

impl Reader<'_> {
    /// The variable's value; unset and empty-after-trimming both count as absent.
    fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn fail(&mut self, variable: &'static str, problem: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            problem: problem.into(),
        });
    }

    fn url(&mut self, name: &'static str, default: Option<&str>) -> Option<Url> {
        let value = self.raw(name).or_else(|| default.map(str::to_string))?;
        match Url::parse(&value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            Ok(_) => {
                self.fail(name, format!("must be an http or https URL with a host, got {value:?}"));
                None
            }
            Err(error) => {
                self.fail(name, format!("is not a valid URL ({error}): {value:?}"));
                None
            }
        }
    }

    fn seconds(&mut self, name: &'static str, default: u64, max: u64) -> Duration {
        match self.raw(name) {
            None => Duration::from_secs(default),
            Some(value) => match value.parse::<u64>() {
                Ok(n) if n <= max => Duration::from_secs(n),
                Ok(_) => {
                    self.fail(name, format!("must be at most {max} seconds, got {value}"));
                    Duration::from_secs(default)
                }
                Err(_) => {
                    self.fail(name, format!("must be a whole number of seconds, got {value:?}"));
                    Duration::from_secs(default)
                }
            },
        }
    }

    /// A whole number from 1 to `max`.
    fn count(&mut self, name: &'static str, default: i64, max: i64) -> i64 {
        match self.raw(name) {
            None => default,
            Some(value) => match value.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    self.fail(name, format!("must be a whole number from 1 to {max}, got {value:?}"));
                    default
                }
            },
        }
    }

    fn key(&mut self, name: &'static str, value: &str) -> Option<SecretBox<[u8; 32]>> {
        match base64::engine::general_purpose::STANDARD.decode(value) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                Some(SecretBox::new(Box::new(key)))
            }
            Ok(bytes) => {
                self.fail(
                    name,
                    format!("must be base64 of exactly 32 bytes, got {} bytes", bytes.len()),
                );
                None
            }
            Err(_) => {
                self.fail(name, "must be base64 of 32 bytes (try: openssl rand -base64 32)");
                None
            }
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `get`, so tests need not touch the process's env.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            get,
            problems: Vec::new(),
        };

        let database_url = r
            .raw("DATABASE_URL")
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if awx_onboard::db::Engine::from_url(&database_url).is_none() {
            r.fail(
                "DATABASE_URL",
                format!(
                    "must start with sqlite: or postgres://, got {:?}",
                    awx_onboard::db::redact_url(&database_url)
                ),
            );
        }

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

        let public_url = r.url("PUBLIC_URL", Some("http://127.0.0.1:3000"));
        if let Some(url) = &public_url {
            if url.path() != "/" || url.query().is_some() {
                r.fail(
                    "PUBLIC_URL",
                    "must be an origin without a path or query, like https://onboard.example.com",
                );
            }
        }

        let env = match r.raw("AIRWALLEX_ENV").as_deref() {
            // Defaulting to the simulator (whose secrets are public) is for a machine's own
            // loopback only: a real deployment must say which Airwallex it talks to.
            None if public_url.as_ref().is_none_or(is_loopback_http) => AirwallexEnv::Sim,
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
        };

        let authorize_override = r.url("AIRWALLEX_AUTHORIZE_URL", None);
        let api_override = r.url("AIRWALLEX_API_URL", None);
        let endpoints = match (env.hosts(), authorize_override, api_override) {
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
            (None, authorize, api) => {
                let missing = if authorize.is_none() {
                    "AIRWALLEX_AUTHORIZE_URL"
                } else {
                    "AIRWALLEX_API_URL"
                };
                r.fail(
                    missing,
                    "must be set too: in sim mode set both AIRWALLEX_AUTHORIZE_URL and AIRWALLEX_API_URL, or neither",
                );
                let _ = api;
                None
            }
            (Some((authorize, api)), authorize_override, api_override) => Some(AirwallexEndpoints::Remote {
                authorize_url: authorize_override.unwrap_or_else(|| Url::parse(authorize).expect("static URL")),
                api_url: api_override.unwrap_or_else(|| Url::parse(api).expect("static URL")),
            }),
        };

        let is_sim = env == AirwallexEnv::Sim;
        let client_id = match r.raw("AIRWALLEX_CLIENT_ID") {
            Some(id) => id,
            None if is_sim => simulator::DEFAULT_CLIENT_ID.to_string(),
            None => {
                r.fail("AIRWALLEX_CLIENT_ID", "is required when AIRWALLEX_ENV is demo or prod");
                String::new()
            }
        };
        let client_secret = match r.raw("AIRWALLEX_CLIENT_SECRET") {
            Some(secret) => SecretString::from(secret),
            None if is_sim => SecretString::from(simulator::DEFAULT_CLIENT_SECRET),
            None => {
                r.fail(
                    "AIRWALLEX_CLIENT_SECRET",
                    "is required when AIRWALLEX_ENV is demo or prod",
                );
                SecretString::from(String::new())
            }
        };
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

        let token_key = match r.raw("TOKEN_ENCRYPTION_KEY") {
            Some(value) => {
                let current = r.key("TOKEN_ENCRYPTION_KEY", &value);
                let retired: Vec<_> = r
                    .raw("TOKEN_ENCRYPTION_RETIRED_KEYS")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|k| !k.trim().is_empty())
                    .filter_map(|k| r.key("TOKEN_ENCRYPTION_RETIRED_KEYS", k.trim()))
                    .collect();
                current.map(|current| TokenKeySource::Given { current, retired })
            }
            None if is_sim => Some(TokenKeySource::SimKeyFile(PathBuf::from(
                r.raw("TOKEN_ENCRYPTION_KEY_FILE")
                    .unwrap_or_else(|| DEFAULT_KEY_FILE.to_string()),
            ))),
            None => {
                r.fail(
                    "TOKEN_ENCRYPTION_KEY",
                    "is required when AIRWALLEX_ENV is demo or prod (base64 of 32 bytes: openssl rand -base64 32)",
                );
                None
            }
        };

        let refresh_margin = r.seconds("REFRESH_MARGIN_SECONDS", 60, 240);
        let account_cache = r.seconds("ACCOUNT_CACHE_SECONDS", 60, 86_400);
        let metrics_token = r.raw("METRICS_TOKEN").map(SecretString::from);
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
        let site_root = r.raw("LEPTOS_SITE_ROOT").map(PathBuf::from);
        let webhook_delivery_lease = r.seconds("WEBHOOK_DELIVERY_LEASE_SECONDS", 30, 3600);
        if webhook_delivery_lease < Duration::from_secs(11) {
            r.fail(
                "WEBHOOK_DELIVERY_LEASE_SECONDS",
                "must be at least 11 seconds: longer than one delivery attempt may take (10 s)",
            );
        }
        let platform_rate_limit = r.count("PLATFORM_RATE_LIMIT_PER_SECOND", 1000, 1_000_000) as u32;
        let smtp_url = r.raw("SMTP_URL");
        if let Some(Err(problem)) = smtp_url.as_deref().map(awx_onboard::mail::sender::check_smtp_url) {
            r.fail("SMTP_URL", problem.to_string());
        }
        let smtp_url = smtp_url.map(SecretString::from);
        let mail_from = r.raw("MAIL_FROM").unwrap_or_else(|| {
            let host = public_url
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_string))
                .filter(|h| h.contains('.') && h.parse::<std::net::IpAddr>().is_err())
                .unwrap_or_else(|| "localhost.localdomain".into());
            format!("awx-onboard <no-reply@{host}>")
        });
        if let Err(problem) = awx_onboard::mail::sender::parse_from(&mail_from) {
            r.fail("MAIL_FROM", problem.to_string());
        }
        let digest_hour = match r.raw("DIGEST_HOUR_UTC") {
            None => 7,
            Some(value) => match value.parse::<u32>() {
                Ok(hour) if hour < 24 => hour,
                _ => {
                    r.fail(
                        "DIGEST_HOUR_UTC",
                        format!("must be an hour from 0 to 23, got {value:?}"),
                    );
                    7
                }
            },
        };
        let sign_ups_per_address_per_hour = r.count(
            "SIGN_UPS_PER_ADDRESS_PER_HOUR",
            awx_onboard::accounts::MAX_SIGN_UPS_PER_ADDRESS,
            1_000_000,
        );

        if !r.problems.is_empty() {
            return Err(ConfigError(r.problems));
        }
        Ok(Config {
            database_url: SecretString::from(database_url),
            site_addr,
            public_url: public_url.expect("checked above"),
            airwallex: AirwallexConfig {
                env,
                endpoints: endpoints.expect("checked above"),
                client_id,
                client_secret,
                scopes,
                api_version,
                webhook_secret,
            },
            token_key: token_key.expect("checked above"),
            refresh_margin,
            account_cache,
            metrics_token,
            sign_ups_per_address_per_hour,
            trusted_proxies,
            drain,
            site_root,
            webhook_delivery_lease,
            platform_rate_limit,
            smtp_url,
            mail_from,
            digest_hour,
            render_deadline,
        })
    }
}

fn is_api_version(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// For log lines: the database URL without its password.
pub fn shown_database_url(config: &Config) -> String {
    awx_onboard::db::redact_url(config.database_url.expose_secret())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(&move |name| map.get(name).cloned())
    }

    fn problem(vars: &[(&str, &str)], variable: &str) -> String {
        let error = parse(vars).expect_err("configuration should be refused");
        error
            .problem_with(variable)
            .unwrap_or_else(|| panic!("no problem reported for {variable}: {error}"))
            .to_string()
    }

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn defaults_give_the_embedded_simulator_and_sqlite() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(config.site_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.redirect_uri(), "http://127.0.0.1:3000/oauth/callback");
        assert_eq!(config.airwallex.env, AirwallexEnv::Sim);
        assert!(matches!(
            config.airwallex.endpoints,
            AirwallexEndpoints::EmbeddedSim { .. }
        ));
        assert_eq!(config.airwallex.client_id, simulator::DEFAULT_CLIENT_ID);
        assert_eq!(config.airwallex.scopes, vec!["account_details:read"]);
        assert!(matches!(config.token_key, TokenKeySource::SimKeyFile(_)));
        assert_eq!(config.refresh_margin, Duration::from_secs(60));
        assert_eq!(config.account_cache, Duration::from_secs(60));
        assert_eq!(config.airwallex.api_version, DEFAULT_API_VERSION);
        assert!(!config.secure_cookies());
    }

    #[test]
    fn demo_uses_the_sandbox_hosts_and_needs_credentials_and_a_key() {
        let error = parse(&[("AIRWALLEX_ENV", "demo")]).unwrap_err();
        assert!(error.problem_with("AIRWALLEX_CLIENT_ID").unwrap().contains("required"));
        assert!(error
            .problem_with("AIRWALLEX_CLIENT_SECRET")
            .unwrap()
            .contains("required"));
        assert!(error.problem_with("TOKEN_ENCRYPTION_KEY").unwrap().contains("required"));

        let config = parse(&[
            ("AIRWALLEX_ENV", "demo"),
            ("AIRWALLEX_CLIENT_ID", "cid"),
            ("AIRWALLEX_CLIENT_SECRET", "csecret"),
            ("TOKEN_ENCRYPTION_KEY", KEY),
            ("PUBLIC_URL", "https://onboard.example.com"),
        ])
        .unwrap();
        match &config.airwallex.endpoints {
            AirwallexEndpoints::Remote { authorize_url, api_url } => {
                assert_eq!(authorize_url.as_str(), "https://demo.airwallex.com/oauth/authorize");
                assert_eq!(api_url.as_str(), "https://api-demo.airwallex.com/");
            }
            other => panic!("expected remote endpoints, got {other:?}"),
        }
        assert!(config.secure_cookies());
        assert!(config.airwallex.webhook_secret.is_none());
    }

    #[test]
    fn explicit_urls_turn_the_embedded_simulator_off() {
        let config = parse(&[
            ("AIRWALLEX_AUTHORIZE_URL", "http://127.0.0.1:4000/oauth/authorize"),
            ("AIRWALLEX_API_URL", "http://127.0.0.1:4000"),
        ])
        .unwrap();
        assert!(matches!(config.airwallex.endpoints, AirwallexEndpoints::Remote { .. }));
        let half = problem(
            &[("AIRWALLEX_API_URL", "http://127.0.0.1:4000")],
            "AIRWALLEX_AUTHORIZE_URL",
        );
        assert!(half.contains("neither"), "{half}");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        assert!(problem(&[("DATABASE_URL", "mysql://x")], "DATABASE_URL").contains("sqlite:"));
        assert!(problem(&[("LEPTOS_SITE_ADDR", "localhost")], "LEPTOS_SITE_ADDR").contains("address"));
        assert!(problem(&[("PUBLIC_URL", "not a url")], "PUBLIC_URL").contains("valid URL"));
        assert!(problem(&[("PUBLIC_URL", "ftp://x.example")], "PUBLIC_URL").contains("http"));
        assert!(problem(&[("PUBLIC_URL", "https://x.example/app")], "PUBLIC_URL").contains("without a path"));
        assert!(problem(&[("AIRWALLEX_ENV", "staging")], "AIRWALLEX_ENV").contains("sim, demo or prod"));
        assert!(problem(&[("AIRWALLEX_API_URL", "::")], "AIRWALLEX_API_URL").contains("valid URL"));
        assert!(problem(&[("AIRWALLEX_SCOPES", "a,b")], "AIRWALLEX_SCOPES").contains("spaces"));
        assert!(problem(&[("AIRWALLEX_API_VERSION", "latest")], "AIRWALLEX_API_VERSION").contains("date"));
        assert!(problem(&[("TOKEN_ENCRYPTION_KEY", "short")], "TOKEN_ENCRYPTION_KEY").contains("base64"));
        assert!(problem(&[("TOKEN_ENCRYPTION_KEY", "c2hvcnQ=")], "TOKEN_ENCRYPTION_KEY").contains("5 bytes"));
        assert!(problem(&[("REFRESH_MARGIN_SECONDS", "soon")], "REFRESH_MARGIN_SECONDS").contains("whole number"));
        assert!(problem(&[("REFRESH_MARGIN_SECONDS", "600")], "REFRESH_MARGIN_SECONDS").contains("at most"));
        assert!(problem(&[("ACCOUNT_CACHE_SECONDS", "-1")], "ACCOUNT_CACHE_SECONDS").contains("whole number"));
        assert!(problem(&[("AIRWALLEX_SIM_ADDR", "nowhere")], "AIRWALLEX_SIM_ADDR").contains("address"));
        assert!(problem(
            &[("SIGN_UPS_PER_ADDRESS_PER_HOUR", "0")],
            "SIGN_UPS_PER_ADDRESS_PER_HOUR"
        )
        .contains("from 1"));
        assert!(problem(
            &[("WEBHOOK_DELIVERY_LEASE_SECONDS", "5")],
            "WEBHOOK_DELIVERY_LEASE_SECONDS"
        )
        .contains("11"));
        assert!(problem(
            &[("PLATFORM_RATE_LIMIT_PER_SECOND", "none")],
            "PLATFORM_RATE_LIMIT_PER_SECOND"
        )
        .contains("whole number"));
    }

    #[test]
    fn the_simulator_is_never_assumed_for_a_public_deployment() {
        // A loopback http PUBLIC_URL may default to the simulator ...
        for local in ["http://127.0.0.1:3000", "http://localhost:8080", "http://[::1]:3000"] {
            let config = parse(&[("PUBLIC_URL", local)]).unwrap();
            assert_eq!(config.airwallex.env, AirwallexEnv::Sim, "{local}");
        }
        // ... anything else must name its Airwallex.
        for public in [
            "https://onboard.example.com",
            "http://onboard.example.com",
            "https://127.0.0.1:8443",
        ] {
            let problem = problem(&[("PUBLIC_URL", public)], "AIRWALLEX_ENV");
            assert!(problem.contains("required"), "{public}: {problem}");
        }
        let explicit = parse(&[
            ("PUBLIC_URL", "https://127.0.0.1:8443"),
            ("AIRWALLEX_ENV", "sim"),
            ("AIRWALLEX_AUTHORIZE_URL", "http://127.0.0.1:3100/oauth/authorize"),
            ("AIRWALLEX_API_URL", "http://127.0.0.1:3100"),
            ("TOKEN_ENCRYPTION_KEY", KEY),
        ]);
        assert!(explicit.is_ok(), "an explicit choice is allowed");
        // The embedded simulator only ever listens on loopback.
        for addr in ["0.0.0.0:3100", "192.0.2.10:3100", "[::]:3100"] {
            let problem = problem(&[("AIRWALLEX_SIM_ADDR", addr)], "AIRWALLEX_SIM_ADDR");
            assert!(problem.contains("loopback"), "{addr}: {problem}");
        }
    }

    #[test]
    fn trusted_proxies_and_the_drain_delay_are_read() {
        let config = parse(&[
            ("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,fd00::/8"),
            ("DRAIN_SECONDS", "2"),
        ])
        .unwrap();
        assert_eq!(config.trusted_proxies.0.len(), 3);
        assert!(config.trusted_proxies.trusts("10.9.8.7".parse().unwrap()));
        assert_eq!(config.drain, Duration::from_secs(2));
        assert!(parse(&[]).unwrap().trusted_proxies.0.is_empty(), "none by default");
        assert!(problem(&[("TRUSTED_PROXIES", "10.0.0.0/40")], "TRUSTED_PROXIES").contains("prefix"));
        assert!(problem(&[("TRUSTED_PROXIES", "proxy.local")], "TRUSTED_PROXIES").contains("not an address"));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let error = parse(&[("DATABASE_URL", "x"), ("AIRWALLEX_ENV", "nope")]).unwrap_err();
        assert_eq!(error.0.len(), 2, "{error}");
        let text = error.to_string();
        assert!(text.contains("DATABASE_URL") && text.contains("AIRWALLEX_ENV"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = parse(&[
            ("AIRWALLEX_CLIENT_SECRET", "very-secret-client-value"),
            ("AIRWALLEX_WEBHOOK_SECRET", "very-secret-webhook-value"),
            ("TOKEN_ENCRYPTION_KEY", KEY),
            ("DATABASE_URL", "postgres://app:db-password-123@127.0.0.1/awx"),
        ])
        .unwrap();
        let shown = format!("{config:?}");
        for secret in [
            "very-secret-client-value",
            "very-secret-webhook-value",
            KEY,
            "db-password-123",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked into {shown}");
        }
        assert!(!shown_database_url(&config).contains("db-password-123"));
    }

    #[test]
    fn retired_keys_are_parsed_for_rotation() {
        let config = parse(&[
            ("TOKEN_ENCRYPTION_KEY", KEY),
            ("TOKEN_ENCRYPTION_RETIRED_KEYS", &format!("{KEY}, {KEY}")),
        ])
        .unwrap();
        match config.token_key {
            TokenKeySource::Given { retired, .. } => assert_eq!(retired.len(), 2),
            other => panic!("expected a given key, got {other:?}"),
        }
    }
}
