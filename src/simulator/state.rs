//! The simulated Airwallex's memory: codes, tokens, connections, faults and counters.
//! Its protocol rules (codes, rotation, the grace minute, reuse detection) are in
//! [`grants`].

mod grants;

pub use grants::grants_account_details;

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
    /// The rest of the API a platform calls: balances and beneficiaries.
    Api,
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
    /// Answer 401 without doing anything (a token refused at the API).
    Error401,
    /// Answer 429 `too_many_requests` without doing anything, with no `Retry-After`.
    Error429,
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
    /// Calls to the rest of the API, by `METHOD /path`.
    #[serde(default)]
    pub api_calls: HashMap<String, u64>,
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
    /// Beneficiaries created, per account id, oldest first.
    pub beneficiaries: HashMap<String, Vec<serde_json::Value>>,
    /// The API requests received, newest last (at most [`SEEN_REQUESTS`]).
    pub requests: VecDeque<SeenRequest>,
}

/// How many API requests the simulator remembers for `GET /__sim/requests`.
pub const SEEN_REQUESTS: usize = 1000;

/// An API request as it arrived: its line and headers (what a test of a proxy checks).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Names lower case, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
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
}
