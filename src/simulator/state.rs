//! The simulated Airwallex's memory and its protocol rules.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::accounts::{preset_accounts, SimAccount};
use super::{SimClient, SimConfig, ACCESS_TOKEN_TTL, CODE_TTL, GRACE_SECONDS};
use crate::secret::random_urlsafe;

/// The endpoints faults can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Token,
    Account,
}

/// What an injected fault does to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer HTTP 500 without doing anything.
    Error500,
    /// Wait this long before handling the call.
    Delay { ms: u64 },
    /// Handle the call (tokens are issued and rotated), then reset the connection
    /// instead of answering.
    Drop,
}

/// Faults drawn at random for every call of an endpoint (after any queued ones).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RandomFaults {
    /// Probability of an HTTP 500.
    #[serde(default)]
    pub error500: f64,
    /// Probability of a response dropped after the work was done.
    #[serde(default)]
    pub drop: f64,
}

/// What the simulator has seen; served at `GET /__sim/counters`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    /// Calls to `POST /oauth/token` by `grant_type` (`other` for anything else).
    pub token_calls: HashMap<String, u64>,
    /// Successful refreshes per simulated connection id.
    pub refreshes_per_connection: HashMap<String, u64>,
    pub refreshes: u64,
    pub reuse_detections: u64,
    pub too_many_requests: u64,
    pub revocations: u64,
    pub account_calls: u64,
    pub webhooks_sent: u64,
    pub webhooks_failed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    Revoked,
}

#[derive(Clone, Debug)]
pub struct SimConnection {
    pub id: String,
    pub client_id: String,
    pub account_id: String,
    pub scopes: Vec<String>,
    pub status: ConnectionStatus,
    pub created_at: i64,
    /// A refresh of this connection is being handled right now.
    pub refreshing: bool,
}

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    account_id: String,
    scopes: Vec<String>,
    code_challenge: Option<String>,
    expires_at: i64,
    used: bool,
}

struct AccessTokenRecord {
    connection_id: String,
    expires_at: i64,
}

struct RefreshTokenRecord {
    connection_id: String,
    expires_at: i64,
    /// When a newer refresh token replaced this one; it stays usable for the grace minute.
    superseded_at: Option<i64>,
}

#[derive(Default)]
pub struct SimData {
    pub accounts: Vec<SimAccount>,
    codes: HashMap<String, AuthCode>,
    pub connections: HashMap<String, SimConnection>,
    access_tokens: HashMap<String, AccessTokenRecord>,
    refresh_tokens: HashMap<String, RefreshTokenRecord>,
    faults: HashMap<Endpoint, VecDeque<FaultKind>>,
    random_faults: HashMap<Endpoint, RandomFaults>,
    pub counters: Counters,
    /// Every webhook event sent, oldest first.
    pub sent_webhooks: Vec<SentWebhook>,
}

/// Tokens handed out by a successful call to the token endpoint.
#[derive(Debug, Serialize)]
pub struct TokenGrant {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub refresh_token_expires_in: i64,
    pub token_type: &'static str,
    pub scope: String,
}

/// Errors of the token endpoint, each with its documented status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    InvalidRequest(String),
    InvalidClient,
    InvalidGrant(&'static str),
    UnsupportedGrantType,
    ConcurrentRefresh,
}

/// A webhook event the simulator sent (and can send again, as Airwallex retries do).
#[derive(Clone, Serialize)]
pub struct SentWebhook {
    pub id: String,
    pub name: String,
    pub account_id: String,
    #[serde(skip)]
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    pub body: String,
}

impl std::fmt::Debug for SentWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentWebhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// A disconnection that must be announced by webhook.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub connection: SimConnection,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

pub struct SimState {
    pub config: SimConfig,
    pub data: Mutex<SimData>,
    pub http: reqwest::Client,
}

impl SimState {
    pub fn new(config: SimConfig) -> SimState {
        let data = SimData {
            accounts: preset_accounts(config.clock.now()),
            ..SimData::default()
        };
        SimState {
            config,
            data: Mutex::new(data),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client without custom TLS builds"),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, SimData> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn now(&self) -> i64 {
        self.config.clock.now()
    }

    pub fn client(&self, client_id: &str) -> Option<&SimClient> {
        self.config.clients.iter().find(|c| c.client_id == client_id)
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    pub fn refreshes_in_flight(&self) -> usize {
        self.lock().connections.values().filter(|c| c.refreshing).count()
    }

    /// Removes every code, token, connection, fault, created account and count.
    pub fn reset(&self) {
        let mut data = self.lock();
        *data = SimData {
            accounts: preset_accounts(self.now()),
            ..SimData::default()
        };
    }

    pub fn add_faults(&self, endpoint: Endpoint, fault: FaultKind, count: usize) {
        let mut data = self.lock();
        let queue = data.faults.entry(endpoint).or_default();
        queue.extend(std::iter::repeat_n(fault, count));
    }

    pub fn set_random_faults(&self, endpoint: Endpoint, faults: RandomFaults) {
        self.lock().random_faults.insert(endpoint, faults);
    }

    pub fn take_fault(&self, endpoint: Endpoint) -> Option<FaultKind> {
        let mut data = self.lock();
        if let Some(fault) = data.faults.get_mut(&endpoint).and_then(|q| q.pop_front()) {
            return Some(fault);
        }
        let random = data.random_faults.get(&endpoint).copied()?;
        let draw: f64 = rand::Rng::gen(&mut rand::thread_rng());
        if draw < random.error500 {
            Some(FaultKind::Error500)
        } else if draw < random.error500 + random.drop {
            Some(FaultKind::Drop)
        } else {
            None
        }
    }

    pub fn count_token_call(&self, grant_type: &str) {
        let key = match grant_type {
            "authorization_code" | "refresh_token" => grant_type,
            _ => "other",
        };
        *self.lock().counters.token_calls.entry(key.to_string()).or_default() += 1;
    }

    /// Issues a single-use authorization code for an approved consent.
    pub fn issue_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        account_id: &str,
        scopes: Vec<String>,
        code_challenge: Option<String>,
    ) -> String {
        let code = random_urlsafe(24);
        let record = AuthCode {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            account_id: account_id.to_string(),
            scopes,
            code_challenge,
            expires_at: self.now() + CODE_TTL,
            used: false,
        };
        self.lock().codes.insert(code.clone(), record);
        code
    }

    /// `grant_type=authorization_code`: single use, 10-minute life, same redirect URI,
    /// PKCE verified when a challenge was sent.
    pub fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<TokenGrant, TokenError> {
        let now = self.now();
        let mut data = self.lock();
        let record = data
            .codes
            .get_mut(code)
            .ok_or(TokenError::InvalidGrant("invalid authorization code"))?;
        if record.used {
            return Err(TokenError::InvalidGrant("authorization code already used"));
        }
        record.used = true;
        if record.expires_at <= now {
            return Err(TokenError::InvalidGrant("authorization code expired"));
        }
        if record.client_id != client_id {
            return Err(TokenError::InvalidGrant(
                "authorization code was issued to another client",
            ));
        }
        if record.redirect_uri != redirect_uri {
            return Err(TokenError::InvalidGrant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if let Some(challenge) = &record.code_challenge {
            let Some(verifier) = code_verifier else {
                return Err(TokenError::InvalidGrant("code_verifier is required"));
            };
            if pkce_challenge(verifier) != *challenge {
                return Err(TokenError::InvalidGrant("code_verifier does not match code_challenge"));
            }
        }
        let connection = SimConnection {
            id: format!("conn_{}", random_urlsafe(9)),
            client_id: record.client_id.clone(),
            account_id: record.account_id.clone(),
            scopes: record.scopes.clone(),
            status: ConnectionStatus::Active,
            created_at: now,
            refreshing: false,
        };
        let grant = issue_tokens(&mut data, &connection, now, self.config.refresh_token_ttl);
        data.connections.insert(connection.id.clone(), connection);
        Ok(grant)
    }

    /// First half of `grant_type=refresh_token`: finds the connection and marks a refresh
    /// in flight, or answers 429 when one already is.
    pub fn begin_refresh(&self, client_id: &str, refresh_token: &str) -> Result<String, TokenError> {
        let mut data = self.lock();
        let connection_id = data
            .refresh_tokens
            .get(refresh_token)
            .map(|r| r.connection_id.clone())
            .ok_or(TokenError::InvalidGrant("invalid or expired refresh token"))?;
        let connection = data
            .connections
            .get_mut(&connection_id)
            .ok_or(TokenError::InvalidGrant("invalid or expired refresh token"))?;
        if connection.client_id != client_id {
            return Err(TokenError::InvalidGrant("invalid or expired refresh token"));
        }
        if connection.refreshing {
            data.counters.too_many_requests += 1;
            return Err(TokenError::ConcurrentRefresh);
        }
        connection.refreshing = true;
        Ok(connection_id)
    }

    /// Second half: applies rotation, the grace minute and reuse detection. Returns the
    /// grant, or the error and, when reuse killed the connection, the revocation to announce.
    pub fn finish_refresh(
        &self,
        connection_id: &str,
        refresh_token: &str,
    ) -> (Result<TokenGrant, TokenError>, Option<Revocation>) {
        let now = self.now();
        let mut data = self.lock();
        if let Some(connection) = data.connections.get_mut(connection_id) {
            connection.refreshing = false;
        }
        let Some(connection) = data.connections.get(connection_id).cloned() else {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        };
        if connection.status == ConnectionStatus::Revoked {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        }
        let Some(record) = data.refresh_tokens.get(refresh_token) else {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        };
        if let Some(superseded_at) = record.superseded_at {
            if now > superseded_at + GRACE_SECONDS {
                // A superseded token outside its grace minute: treated as a leak.
                data.counters.reuse_detections += 1;
                let revocation = self.revoke_locked(&mut data, connection_id);
                return (
                    Err(TokenError::InvalidGrant("invalid or expired refresh token")),
                    revocation,
                );
            }
        }
        if record.expires_at <= now {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        }
        // Rotation: every live refresh token of this connection is superseded now.
        for other in data.refresh_tokens.values_mut() {
            if other.connection_id == connection_id && other.superseded_at.is_none() {
                other.superseded_at = Some(now);
            }
        }
        let grant = issue_tokens(&mut data, &connection, now, self.config.refresh_token_ttl);
        data.counters.refreshes += 1;
        *data
            .counters
            .refreshes_per_connection
            .entry(connection_id.to_string())
            .or_default() += 1;
        (Ok(grant), None)
    }

    /// Checks a bearer token for the account API; returns the account it may read.
    pub fn authenticate(&self, access_token: &str) -> Result<SimAccount, (&'static str, &'static str)> {
        let now = self.now();
        let data = self.lock();
        let record = data
            .access_tokens
            .get(access_token)
            .ok_or(("credentials_invalid", "The access token is invalid."))?;
        let connection = data
            .connections
            .get(&record.connection_id)
            .ok_or(("credentials_invalid", "The access token is invalid."))?;
        if connection.status == ConnectionStatus::Revoked {
            return Err(("credentials_invalid", "The access token has been revoked."));
        }
        if record.expires_at <= now {
            return Err(("credentials_expired", "The access token has expired."));
        }
        if !connection.scopes.iter().any(|s| grants_account_details(s)) {
            return Err(("insufficient_scope", "The token lacks the account_details:read scope."));
        }
        data.accounts
            .iter()
            .find(|a| a.id == connection.account_id)
            .cloned()
            .ok_or(("credentials_invalid", "The account no longer exists."))
    }

    /// Revokes a connection: both of its tokens stop working at once.
    pub fn revoke(&self, connection_id: &str) -> Option<Revocation> {
        let mut data = self.lock();
        self.revoke_locked(&mut data, connection_id)
    }

    fn revoke_locked(&self, data: &mut SimData, connection_id: &str) -> Option<Revocation> {
        let connection = data.connections.get_mut(connection_id)?;
        if connection.status == ConnectionStatus::Revoked {
            return None;
        }
        connection.status = ConnectionStatus::Revoked;
        let connection = connection.clone();
        data.counters.revocations += 1;
        let client = self.client(&connection.client_id);
        Some(Revocation {
            webhook_url: client.and_then(|c| c.webhook_url.clone()),
            webhook_secret: client.and_then(|c| c.webhook_secret.clone()),
            connection,
        })
    }
}

fn issue_tokens(data: &mut SimData, connection: &SimConnection, now: i64, refresh_ttl: i64) -> TokenGrant {
    let access_token = format!("awx_at_{}", random_urlsafe(32));
    let refresh_token = format!("awx_rt_{}", random_urlsafe(32));
    data.access_tokens.insert(
        access_token.clone(),
        AccessTokenRecord {
            connection_id: connection.id.clone(),
            expires_at: now + ACCESS_TOKEN_TTL,
        },
    );
    data.refresh_tokens.insert(
        refresh_token.clone(),
        RefreshTokenRecord {
            connection_id: connection.id.clone(),
            expires_at: now + refresh_ttl,
            superseded_at: None,
        },
    );
    TokenGrant {
        access_token,
        refresh_token,
        expires_in: ACCESS_TOKEN_TTL,
        refresh_token_expires_in: refresh_ttl,
        token_type: "Bearer",
        scope: connection.scopes.join(" "),
    }
}

/// The S256 PKCE challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Scopes the simulator knows, in the short and the long form.
pub const KNOWN_SCOPES: [&str; 2] = ["account_details:read", "r:awx_action:settings.account_details_view"];

pub fn grants_account_details(scope: &str) -> bool {
    KNOWN_SCOPES.contains(&scope)
}
