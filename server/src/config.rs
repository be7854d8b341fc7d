//! The configuration contract: every environment variable the README's configuration
//! table lists, read once at start-up into one typed value, by section (database and
//! encryption, Airwallex, network and proxies, mail, platform). Each bad value is reported
//! with its variable's name, all of them at once.

mod airwallex;
mod database;
mod mail;
mod network;
mod platform;
mod reader;

use secrecy::SecretString;
use url::Url;

pub use airwallex::{
    AirwallexConfig, AirwallexEndpoints, AirwallexEnv, ProxyLimits, DEFAULT_API_VERSION, DEFAULT_SIM_ADDR,
};
pub use database::{TokenKeySource, DEFAULT_DATABASE_URL, DEFAULT_KEY_FILE};
pub use mail::MailConfig;
pub use network::{is_loopback_http, NetworkConfig};
pub use platform::PlatformConfig;
pub use reader::{ConfigError, ConfigProblem};

#[derive(Debug)]
pub struct Config {
    pub database_url: SecretString,
    pub token_key: TokenKeySource,
    pub airwallex: AirwallexConfig,
    pub network: NetworkConfig,
    pub mail: MailConfig,
    pub platform: PlatformConfig,
    /// `RETENTION_DAYS`: finished deliveries, sent emails and ended invitations are pruned
    /// after this many days (the audit trails are kept).
    pub retention_days: i64,
}

impl Config {
    /// The OAuth redirect URI registered with Airwallex.
    pub fn redirect_uri(&self) -> String {
        format!("{}/oauth/callback", self.public_origin())
    }

    /// `PUBLIC_URL` without a trailing slash.
    pub fn public_origin(&self) -> String {
        self.public_url().as_str().trim_end_matches('/').to_string()
    }

    /// `PUBLIC_URL`.
    pub fn public_url(&self) -> &Url {
        &self.network.public_url
    }

    /// Whether `PUBLIC_URL` names this machine (a developer's set-up).
    pub fn public_url_is_loopback(&self) -> bool {
        match self.public_url().host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        }
    }

    /// Cookies get `Secure` (and the `__Host-` prefix) behind https, and responses HSTS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url().scheme() == "https"
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `get`, so tests need not touch the process's env.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = reader::Reader::new(get);
        let database_url = database::database_url(&mut r);
        let public_url = network::public_url(&mut r);
        let env = airwallex::env(&mut r, public_url.as_ref());
        let airwallex = airwallex::read(&mut r, env);
        let token_key = database::token_key(&mut r, env == AirwallexEnv::Sim);
        let mail = mail::read(&mut r, public_url.as_ref(), env == AirwallexEnv::Sim);
        let platform = platform::read(&mut r);
        let network = network::read(&mut r, public_url);
        let retention_days = r.count("RETENTION_DAYS", awx_onboard::retention::DEFAULT_RETENTION_DAYS, 3650);
        match (r.problems.is_empty(), airwallex, token_key, network) {
            (true, Some(airwallex), Some(token_key), Some(network)) => Ok(Config {
                database_url,
                token_key,
                airwallex,
                network,
                mail,
                platform,
                retention_days,
            }),
            _ => Err(ConfigError(r.problems)),
        }
    }

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
            format!("listen: {}", self.network.site_addr),
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
                if self.network.trusted_proxies.0.is_empty() {
                    "none".to_string()
                } else {
                    self.network
                        .trusted_proxies
                        .0
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            format!("drain on shutdown: {} s", self.network.drain.as_secs()),
            format!(
                "email: {}, from {}, operators' digest from {:02}:00 UTC",
                if self.mail.smtp_url.is_some() {
                    "sent through SMTP_URL"
                } else if self.mail.local_mailbox {
                    "kept in the local mailbox at /mailbox (no SMTP_URL in the embedded mode)"
                } else {
                    awx_onboard::mail::sender::NOT_CONFIGURED
                },
                self.mail.from,
                self.mail.digest_hour
            ),
        ]
    }
}

/// For log lines: the database URL without its password.
pub fn shown_database_url(config: &Config) -> String {
    database::shown(&config.database_url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    use awx_onboard::simulator;
    use secrecy::ExposeSecret;

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
        assert_eq!(config.network.site_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.redirect_uri(), "http://127.0.0.1:3000/oauth/callback");
        assert_eq!(config.airwallex.env, AirwallexEnv::Sim);
        assert!(matches!(
            config.airwallex.endpoints,
            AirwallexEndpoints::EmbeddedSim { .. }
        ));
        assert_eq!(config.airwallex.client_id, simulator::DEFAULT_CLIENT_ID);
        assert_eq!(config.airwallex.scopes, vec!["account_details:read"]);
        assert!(matches!(config.token_key, TokenKeySource::SimKeyFile(_)));
        assert_eq!(config.airwallex.refresh_margin, Duration::from_secs(60));
        assert_eq!(config.airwallex.account_cache, Duration::from_secs(60));
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
        assert_eq!(
            (
                config.airwallex.proxy.rate_per_second,
                config.airwallex.proxy.concurrency
            ),
            (10, 10),
            "the sandbox's limits"
        );
        let prod = parse(&[
            ("AIRWALLEX_ENV", "prod"),
            ("AIRWALLEX_CLIENT_ID", "cid"),
            ("AIRWALLEX_CLIENT_SECRET", "csecret"),
            ("TOKEN_ENCRYPTION_KEY", KEY),
            ("PUBLIC_URL", "https://onboard.example.com"),
        ])
        .unwrap();
        assert_eq!(
            (prod.airwallex.proxy.rate_per_second, prod.airwallex.proxy.concurrency),
            (20, 50),
            "production's limits"
        );
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
        assert!(problem(
            &[("PLATFORM_RETURN_ORIGINS", "https://ok.example, http://platform.example")],
            "PLATFORM_RETURN_ORIGINS"
        )
        .contains("https"));
        assert!(problem(
            &[("PLATFORM_RETURN_ORIGINS", "https://platform.example/back")],
            "PLATFORM_RETURN_ORIGINS"
        )
        .contains("origin only"));
        assert!(problem(&[("CONNECT_SESSION_MINUTES", "1441")], "CONNECT_SESSION_MINUTES").contains("1440"));
        assert!(problem(
            &[("AIRWALLEX_PROXY_RATE_PER_SECOND", "0")],
            "AIRWALLEX_PROXY_RATE_PER_SECOND"
        )
        .contains("from 1"));
        assert!(problem(
            &[("AIRWALLEX_PROXY_CONCURRENCY", "lots")],
            "AIRWALLEX_PROXY_CONCURRENCY"
        )
        .contains("whole number"));
        assert!(problem(
            &[("AIRWALLEX_PROXY_TIMEOUT_SECONDS", "0")],
            "AIRWALLEX_PROXY_TIMEOUT_SECONDS"
        )
        .contains("at least 1"));
        assert!(problem(&[("PLATFORM_NAME", &"x".repeat(101))], "PLATFORM_NAME").contains("100"));
    }

    #[test]
    fn the_proxy_limits_default_to_airwallexs_published_figures() {
        let sim = parse(&[]).unwrap();
        assert_eq!(
            (sim.airwallex.proxy.rate_per_second, sim.airwallex.proxy.concurrency),
            (10, 10)
        );
        assert_eq!(sim.airwallex.proxy.timeout.as_secs(), 30);
        let given = parse(&[
            ("AIRWALLEX_PROXY_RATE_PER_SECOND", "25"),
            ("AIRWALLEX_PROXY_CONCURRENCY", "5"),
            ("AIRWALLEX_PROXY_TIMEOUT_SECONDS", "7"),
        ])
        .unwrap();
        assert_eq!(
            given.airwallex.proxy,
            ProxyLimits {
                rate_per_second: 25,
                concurrency: 5,
                timeout: std::time::Duration::from_secs(7)
            }
        );
    }

    #[test]
    fn connect_sessions_are_configured_by_three_variables() {
        let config = parse(&[
            ("PLATFORM_NAME", "Acme"),
            (
                "PLATFORM_RETURN_ORIGINS",
                "https://Platform.example:443, http://127.0.0.1:4000",
            ),
            ("CONNECT_SESSION_MINUTES", "45"),
        ])
        .unwrap();
        assert_eq!(config.platform.name, "Acme");
        assert_eq!(
            config.platform.return_origins,
            ["https://platform.example", "http://127.0.0.1:4000"]
        );
        assert_eq!(config.platform.connect_session.as_secs(), 45 * 60);
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.platform.name, "awx-onboard");
        assert!(defaults.platform.return_origins.is_empty());
        assert_eq!(defaults.platform.connect_session.as_secs(), 30 * 60);
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
        assert_eq!(config.network.trusted_proxies.0.len(), 3);
        assert!(config.network.trusted_proxies.trusts("10.9.8.7".parse().unwrap()));
        assert_eq!(config.network.drain, Duration::from_secs(2));
        assert!(
            parse(&[]).unwrap().network.trusted_proxies.0.is_empty(),
            "none by default"
        );
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
