//! The Airwallex client: code exchange and refresh against `{api}/oauth/token` (JSON
//! bodies), `GET {api}/api/v1/account/`, with typed errors that tell apart what the
//! token vault must treat differently.
//!
//! # What Airwallex documents, and what this code relies on
//!
//! Hosts: authorize `https://airwallex.com/oauth/authorize` (sandbox
//! `https://demo.airwallex.com/oauth/authorize`), API `https://api.airwallex.com` (sandbox
//! `https://api-demo.airwallex.com`). Redirect URIs are registered with Airwallex in advance.
//!
//! - Authorization: `GET {authorize}?response_type=code&client_id&redirect_uri&scope&state`
//!   (scopes space separated; PKCE `code_challenge`/`code_challenge_method=S256` is sent, its
//!   names are standard RFC 7636 and not confirmed in Airwallex's text). Only an Owner, Admin
//!   or Finance Admin can consent; `sign_up=true` lets a new business sign up on the way.
//!   Success returns `code` and `state`; a decline returns an `error` (`access_denied`).
//! - Token endpoint: `POST {api}/oauth/token` with a JSON body (`client_id`, `client_secret`,
//!   `grant_type`, then `code` + `redirect_uri` (+ `code_verifier`), or `refresh_token`).
//!   Answers carry `access_token`, `refresh_token` and `refresh_token_expires_in`; other
//!   fields are parsed tolerantly.
//! - Lifetimes: access tokens live 5 minutes. Refresh tokens live 60 days (90 in newer
//!   pages): `refresh_token_expires_in` is trusted, 60 days is the fallback. Every refresh
//!   returns a new pair; the superseded refresh token stays valid for **one minute**, so a
//!   lost answer can be retried with it. Sending a superseded token after that minute is
//!   treated as a leak: Airwallex revokes the whole connection.
//! - Errors: `400 invalid_grant` (expired, revoked or reused: never retry that token);
//!   `429 too_many_requests` "Concurrent token refresh is not allowed." (another refresh of
//!   the connection is in flight: wait 1–2 s); `401 credentials_expired|credentials_invalid`
//!   from the API (refresh once; `invalid_grant` then means the connection is gone); `5xx`
//!   and timeouts are transient. Error bodies come as `{code, message}` or as RFC 6749's
//!   `{error, error_description}`: both are read.
//! - `GET /api/v1/account/` returns the connected account (every field may be missing), with
//!   the API version pinned by `x-api-version`.
//! - There is no documented revocation endpoint: disconnecting on our side forgets the tokens.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::secret::{AccessToken, AuthorizationCode, PkceCodeVerifier, RefreshToken};

/// Largest response body read from Airwallex.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Fallback when a token response has no `refresh_token_expires_in` (the original docs' 60 days).
pub const DEFAULT_REFRESH_TOKEN_LIFETIME: i64 = 60 * 86_400;
/// Fallback when a token response has no `expires_in` (documented: 5 minutes).
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: i64 = 300;

#[derive(Clone)]
pub struct AirwallexSettings {
    /// API base without a trailing slash, e.g. `https://api-demo.airwallex.com`.
    pub api_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub api_version: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for AirwallexSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AirwallexSettings")
            .field("api_url", &self.api_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// Tokens from a successful call to the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: AccessToken,
    pub refresh_token: RefreshToken,
    pub access_expires_in: i64,
    pub refresh_expires_in: i64,
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AirwallexError {
    /// 400 `invalid_grant`: the token or code is expired, revoked or reused. Final.
    #[error("Airwallex rejected the grant: {description}")]
    InvalidGrant { description: String },
    /// 429: another refresh of this connection is in flight.
    #[error("Airwallex refused a concurrent token refresh")]
    ConcurrentRefresh,
    /// 401 from the API: `credentials_expired` / `credentials_invalid`.
    #[error("Airwallex refused the access token ({code})")]
    Unauthorized { code: String },
    /// 401 from the token endpoint: our client credentials are wrong.
    #[error("Airwallex refused this app's client credentials")]
    InvalidClient,
    /// Any other 4xx.
    #[error("Airwallex answered {status} ({code}): {message}")]
    Rejected { status: u16, code: String, message: String },
    /// 5xx: the request may or may not have been processed.
    #[error("Airwallex had an internal error ({status})")]
    Server { status: u16 },
    /// No answer in time: the request may have been processed.
    #[error("Airwallex did not answer in time")]
    Timeout,
    /// The connection could not be made: the request was certainly not processed.
    #[error("could not connect to Airwallex")]
    Connect,
    /// The connection broke after the request was sent: it may have been processed.
    #[error("the connection to Airwallex was lost before an answer arrived")]
    Transport,
    /// An answer that is not what the API documents.
    #[error("Airwallex sent an unexpected answer: {detail}")]
    Malformed { detail: String },
}

impl AirwallexError {
    /// Whether Airwallex may have acted on the request although no answer arrived.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            AirwallexError::Server { .. } | AirwallexError::Timeout | AirwallexError::Transport
        )
    }

    /// A short stable name for metrics and events.
    pub fn kind(&self) -> &'static str {
        match self {
            AirwallexError::InvalidGrant { .. } => "invalid_grant",
            AirwallexError::ConcurrentRefresh => "too_many_requests",
            AirwallexError::Unauthorized { .. } => "unauthorized",
            AirwallexError::InvalidClient => "invalid_client",
            AirwallexError::Rejected { .. } => "rejected",
            AirwallexError::Server { .. } => "server_error",
            AirwallexError::Timeout => "timeout",
            AirwallexError::Connect => "connect_error",
            AirwallexError::Transport => "connection_lost",
            AirwallexError::Malformed { .. } => "malformed_response",
        }
    }
}

/// Account details from `GET /api/v1/account/`; every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountDetails {
    pub id: Option<String>,
    pub nickname: Option<String>,
    pub status: Option<String>,
    pub created_at: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
    pub legal_entity_type: Option<String>,
    pub business_name: Option<String>,
    pub trading_name: Option<String>,
    pub business_structure: Option<String>,
    pub url: Option<String>,
    pub address_line1: Option<String>,
    pub suburb: Option<String>,
    pub state: Option<String>,
    pub postcode: Option<String>,
    pub country_code: Option<String>,
    pub next_action: Option<String>,
}

impl AccountDetails {
    /// Reads what it can: a missing or oddly typed field is `None`, unknown ones ignored.
    pub fn from_json(value: &Value) -> AccountDetails {
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
        };
        let business = "/account_details/business_details";
        AccountDetails {
            id: text("/id"),
            nickname: text("/nickname"),
            status: text("/status"),
            created_at: text("/created_at"),
            email: text("/primary_contact/email"),
            mobile: text("/primary_contact/mobile"),
            legal_entity_type: text("/account_details/legal_entity_type"),
            business_name: text(&format!("{business}/business_name")),
            trading_name: text(&format!("{business}/business_name_trading")),
            business_structure: text(&format!("{business}/business_structure")),
            url: text(&format!("{business}/url")),
            address_line1: text(&format!("{business}/business_address/address_line1")),
            suburb: text(&format!("{business}/business_address/suburb")),
            state: text(&format!("{business}/business_address/state")),
            postcode: text(&format!("{business}/business_address/postcode")),
            country_code: text(&format!("{business}/business_address/country_code")),
            next_action: text("/next_action/type"),
        }
    }

    /// The best name to show for the business.
    pub fn display_name(&self) -> Option<&str> {
        self.business_name
            .as_deref()
            .or(self.trading_name.as_deref())
            .or(self.nickname.as_deref())
    }
}

#[derive(Clone, Debug)]
pub struct AirwallexClient {
    http: reqwest::Client,
    settings: AirwallexSettings,
}

impl AirwallexClient {
    pub fn new(settings: AirwallexSettings) -> AirwallexClient {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("awx-onboard/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            .build()
            .expect("an HTTP client with default TLS builds");
        AirwallexClient { http, settings }
    }

    pub fn settings(&self) -> &AirwallexSettings {
        &self.settings
    }

    fn token_url(&self) -> String {
        format!("{}/oauth/token", self.settings.api_url)
    }

    /// `grant_type=authorization_code`, with the PKCE verifier when one was used.
    pub async fn exchange_code(
        &self,
        code: &AuthorizationCode,
        redirect_uri: &str,
        code_verifier: Option<&PkceCodeVerifier>,
    ) -> Result<TokenSet, AirwallexError> {
        let mut body = json!({
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.expose_secret(),
            "grant_type": "authorization_code",
            "code": code.expose(),
            "redirect_uri": redirect_uri,
        });
        if let Some(verifier) = code_verifier {
            body["code_verifier"] = json!(verifier.expose());
        }
        self.token_call(body).await
    }

    /// `grant_type=refresh_token`.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenSet, AirwallexError> {
        self.refresh_within(refresh_token, self.settings.request_timeout).await
    }

    /// `grant_type=refresh_token`, over within `timeout` whatever happens (answer or not).
    pub async fn refresh_within(
        &self,
        refresh_token: &RefreshToken,
        timeout: Duration,
    ) -> Result<TokenSet, AirwallexError> {
        let body = json!({
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.expose_secret(),
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.expose(),
        });
        self.token_call_within(body, timeout).await
    }

    async fn token_call(&self, body: Value) -> Result<TokenSet, AirwallexError> {
        self.token_call_within(body, self.settings.request_timeout).await
    }

    async fn token_call_within(&self, body: Value, timeout: Duration) -> Result<TokenSet, AirwallexError> {
        let response = self
            .http
            .post(self.token_url())
            .header("x-api-version", &self.settings.api_version)
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let bytes = read_body(response).await?;
        if status.is_success() {
            return parse_token_set(&bytes);
        }
        Err(classify_status(status, &bytes, true))
    }

    /// `GET /api/v1/account/` with the access token.
    pub async fn account(&self, access_token: &AccessToken) -> Result<AccountDetails, AirwallexError> {
        let response = self
            .http
            .get(format!("{}/api/v1/account/", self.settings.api_url))
            .header("x-api-version", &self.settings.api_version)
            .bearer_auth(access_token.expose())
            .send()
            .await
            .map_err(classify_transport)?;
        let status = response.status();
        let bytes = read_body(response).await?;
        if !status.is_success() {
            return Err(classify_status(status, &bytes, false));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| AirwallexError::Malformed {
            detail: "account details are not JSON".into(),
        })?;
        if !value.is_object() {
            return Err(AirwallexError::Malformed {
                detail: "account details are not a JSON object".into(),
            });
        }
        Ok(AccountDetails::from_json(&value))
    }
}

fn classify_transport(error: reqwest::Error) -> AirwallexError {
    if error.is_timeout() {
        AirwallexError::Timeout
    } else if error.is_connect() {
        AirwallexError::Connect
    } else {
        AirwallexError::Transport
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, AirwallexError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(classify_transport)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(AirwallexError::Malformed {
                detail: "the answer is too large".into(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Error code and message from either documented error shape.
fn error_fields(body: &[u8]) -> (String, String) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| value.get(*n).and_then(Value::as_str))
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect::<String>()
    };
    (field(["error", "code"]), field(["error_description", "message"]))
}

fn classify_status(status: StatusCode, body: &[u8], token_endpoint: bool) -> AirwallexError {
    let (code, message) = error_fields(body);
    match status.as_u16() {
        429 => AirwallexError::ConcurrentRefresh,
        400 if code == "invalid_grant" => AirwallexError::InvalidGrant { description: message },
        401 if token_endpoint => AirwallexError::InvalidClient,
        401 => AirwallexError::Unauthorized {
            code: if code.is_empty() { "unauthorized".into() } else { code },
        },
        s if s >= 500 => AirwallexError::Server { status: s },
        s => AirwallexError::Rejected {
            status: s,
            code,
            message,
        },
    }
}

fn parse_token_set(body: &[u8]) -> Result<TokenSet, AirwallexError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| AirwallexError::Malformed {
        detail: "the token answer is not JSON".into(),
    })?;
    let token = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| AirwallexError::Malformed {
                detail: format!("the token answer has no {name}"),
            })
    };
    let seconds = |name: &str, default: i64| {
        value
            .get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    Ok(TokenSet {
        access_token: AccessToken::new(token("access_token")?),
        refresh_token: RefreshToken::new(token("refresh_token")?),
        access_expires_in: seconds("expires_in", DEFAULT_ACCESS_TOKEN_LIFETIME),
        refresh_expires_in: seconds("refresh_token_expires_in", DEFAULT_REFRESH_TOKEN_LIFETIME),
        scope: value.get("scope").and_then(Value::as_str).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_error_shapes_are_understood() {
        let rfc = br#"{"error":"invalid_grant","error_description":"invalid or expired refresh token"}"#;
        assert_eq!(
            classify_status(StatusCode::BAD_REQUEST, rfc, true),
            AirwallexError::InvalidGrant {
                description: "invalid or expired refresh token".into()
            }
        );
        let api = br#"{"code":"invalid_grant","message":"expired","source":"","details":{}}"#;
        assert!(matches!(
            classify_status(StatusCode::BAD_REQUEST, api, true),
            AirwallexError::InvalidGrant { .. }
        ));
        let busy = br#"{"code":"too_many_requests","message":"Concurrent token refresh is not allowed."}"#;
        assert_eq!(
            classify_status(StatusCode::TOO_MANY_REQUESTS, busy, true),
            AirwallexError::ConcurrentRefresh
        );
        let expired = br#"{"code":"credentials_expired","message":"x"}"#;
        assert_eq!(
            classify_status(StatusCode::UNAUTHORIZED, expired, false),
            AirwallexError::Unauthorized {
                code: "credentials_expired".into()
            }
        );
        assert_eq!(
            classify_status(StatusCode::UNAUTHORIZED, b"", true),
            AirwallexError::InvalidClient
        );
        assert_eq!(
            classify_status(StatusCode::BAD_GATEWAY, b"<html>", true),
            AirwallexError::Server { status: 502 }
        );
        assert!(matches!(
            classify_status(StatusCode::FORBIDDEN, b"not json", false),
            AirwallexError::Rejected { status: 403, .. }
        ));
    }

    #[test]
    fn token_answers_are_parsed_tolerantly() {
        let full = br#"{"access_token":"a","refresh_token":"r","expires_in":300,"refresh_token_expires_in":"7776000","scope":"x"}"#;
        let set = parse_token_set(full).unwrap();
        assert_eq!(set.access_token.expose(), "a");
        assert_eq!(set.refresh_expires_in, 7_776_000);
        let minimal = br#"{"access_token":"a","refresh_token":"r","unknown":true}"#;
        let set = parse_token_set(minimal).unwrap();
        assert_eq!(set.access_expires_in, DEFAULT_ACCESS_TOKEN_LIFETIME);
        assert_eq!(set.refresh_expires_in, DEFAULT_REFRESH_TOKEN_LIFETIME);
        assert!(matches!(
            parse_token_set(br#"{"access_token":"a"}"#),
            Err(AirwallexError::Malformed { .. })
        ));
        assert!(matches!(
            parse_token_set(b"<html>"),
            Err(AirwallexError::Malformed { .. })
        ));
    }

    #[test]
    fn account_details_tolerate_missing_and_odd_fields() {
        let value = json!({
            "id": "acct_1",
            "status": 7,
            "primary_contact": null,
            "account_details": {"business_details": {"business_name": "Acme & Co", "business_address": "oops"}},
            "brand_new_field": {"x": 1}
        });
        let details = AccountDetails::from_json(&value);
        assert_eq!(details.id.as_deref(), Some("acct_1"));
        assert_eq!(details.status.as_deref(), Some("7"));
        assert_eq!(details.business_name.as_deref(), Some("Acme & Co"));
        assert_eq!(details.email, None);
        assert_eq!(details.country_code, None);
        assert_eq!(AccountDetails::from_json(&json!({})), AccountDetails::default());
    }

    #[test]
    fn only_ambiguous_failures_count_as_unknown_outcomes() {
        assert!(AirwallexError::Timeout.outcome_unknown());
        assert!(AirwallexError::Transport.outcome_unknown());
        assert!(AirwallexError::Server { status: 503 }.outcome_unknown());
        assert!(!AirwallexError::Connect.outcome_unknown());
        assert!(!AirwallexError::ConcurrentRefresh.outcome_unknown());
        assert!(!AirwallexError::InvalidGrant {
            description: String::new()
        }
        .outcome_unknown());
    }
}
