//! The token vault: hands out valid Airwallex access tokens and keeps connections alive.
//!
//! Invariants (DESIGN.md): a superseded refresh token is never sent after its grace
//! minute; one refresh per connection in flight across all instances (an in-process
//! lock per connection, plus a database lease); new tokens are committed before anyone
//! gets the new access token; a lost answer is retried with the same refresh token only
//! inside the grace window; `invalid_grant` is final once a re-read shows nothing newer;
//! `429` backs off 1–2 s with jitter and re-reads; tokens are encrypted at rest.
//!
//! The grace rule is enforced by `refresh_sent_at`: the moment the stored refresh token
//! first left this system, written before it is sent. Airwallex cannot have replaced it
//! before then, so resending it is safe until `refresh_sent_at + RESEND_WINDOW`, which
//! ends well inside Airwallex's minute even for a request that takes its full timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::airwallex::{AccountDetails, AirwallexClient, AirwallexError, TokenSet};
use crate::crypto::{associated_data, TokenCipher};
use crate::secret::Token;
use crate::store::{
    event, AccountRecord, ConnectionRow, ConnectionStatus, ConnectionStore, ReconnectReason, SealedTokens,
};
use crate::time::{real_now, Clock};

/// Airwallex keeps a superseded refresh token usable this long.
pub const GRACE_SECONDS: i64 = 60;
/// Margin for clock differences between us and Airwallex.
const CLOCK_SKEW_SECONDS: i64 = 5;
/// How long a refresh lease lasts (real seconds); renewed before every attempt.
const LEASE_SECONDS: i64 = 30;
/// Attempts at a refresh whose outcome was unknown (5xx, timeout, reset) or that could
/// not connect, before giving up for now.
const MAX_TRANSIENT_ATTEMPTS: u32 = 5;
/// `429` answers tolerated in one refresh.
const MAX_CONCURRENT_REFRESH_RETRIES: u32 = 5;
/// How long a caller waits for another instance's refresh before giving up.
const MAX_WAIT_FOR_OTHER_INSTANCE: Duration = Duration::from_secs(45);

#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// Refresh an access token that has less than this left.
    pub refresh_margin_seconds: i64,
    /// The keeper rotates a refresh token when less than this part of its life remains.
    pub rotate_when_remaining: f64,
    /// The client's request timeout, which bounds the resend window.
    pub request_timeout_seconds: i64,
    /// Backoff scale for transient failures (tests shorten it).
    pub retry_base: Duration,
    /// Names this process in leases and events.
    pub instance: String,
}

impl VaultSettings {
    pub fn new(refresh_margin_seconds: i64, request_timeout: Duration) -> VaultSettings {
        VaultSettings {
            refresh_margin_seconds,
            rotate_when_remaining: 1.0 / 3.0,
            request_timeout_seconds: request_timeout.as_secs().max(1) as i64,
            retry_base: Duration::from_millis(200),
            instance: format!("instance-{}", crate::secret::random_urlsafe(6)),
        }
    }

    /// After the first send, the stored refresh token may be resent only this long.
    pub fn resend_window_seconds(&self) -> i64 {
        GRACE_SECONDS - self.request_timeout_seconds - CLOCK_SKEW_SECONDS
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("the merchant has not connected Airwallex")]
    NotConnected,
    #[error("the Airwallex connection was disconnected")]
    Disconnected,
    #[error("the Airwallex connection needs to be authorized again ({})", .0.as_str())]
    NeedsReconnect(ReconnectReason),
    #[error("Airwallex is not reachable right now")]
    Unavailable,
    #[error("Airwallex rejected the request: {0}")]
    Upstream(String),
    #[error("this app's Airwallex client credentials were refused")]
    BadClientCredentials,
    #[error("stored tokens could not be decrypted")]
    Decrypt,
    #[error("database error")]
    Database,
}

impl From<sqlx::Error> for VaultError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "token vault database error");
        VaultError::Database
    }
}

/// An access token with its expiry (unix seconds on the vault's clock).
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Token,
    pub expires_at: i64,
    pub connection_id: i64,
}

/// Who asked for a refresh, for the event log.
#[derive(Debug, Clone)]
pub enum Actor {
    Vault,
    Keeper,
    Operator(String),
}

impl Actor {
    fn label(&self, instance: &str) -> String {
        match self {
            Actor::Vault => format!("vault:{instance}"),
            Actor::Keeper => format!("keeper:{instance}"),
            Actor::Operator(email) => format!("operator:{email}"),
        }
    }
}

/// Why a refresh is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A usable access token: skip the refresh if someone else already made one.
    FreshAccess,
    /// A rotation newer than the generation seen (keeper, operator, 401 recovery).
    NewerThan(i64),
}

pub struct TokenVault {
    store: ConnectionStore,
    cipher: Arc<TokenCipher>,
    client: AirwallexClient,
    clock: Clock,
    settings: VaultSettings,
    locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVault")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn jitter(min: Duration, max: Duration) -> Duration {
    let span = max.saturating_sub(min).as_millis() as u64;
    min + Duration::from_millis(rand::thread_rng().gen_range(0..=span))
}

impl TokenVault {
    pub fn new(
        store: ConnectionStore,
        cipher: Arc<TokenCipher>,
        client: AirwallexClient,
        clock: Clock,
        settings: VaultSettings,
    ) -> TokenVault {
        TokenVault {
            store,
            cipher,
            client,
            clock,
            settings,
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &ConnectionStore {
        &self.store
    }

    pub fn client(&self) -> &AirwallexClient {
        &self.client
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn settings(&self) -> &VaultSettings {
        &self.settings
    }

    pub fn cipher(&self) -> &TokenCipher {
        &self.cipher
    }

    /// Encrypts a token set for a connection row.
    pub fn seal(&self, connection_id: i64, tokens: &TokenSet, now: i64) -> SealedTokens {
        let refresh_expires_at = now + tokens.refresh_expires_in;
        let rotate_at_remaining = (tokens.refresh_expires_in as f64 * self.settings.rotate_when_remaining) as i64;
        SealedTokens {
            key_id: self.cipher.current_key_id().to_string(),
            access_token: self.cipher.encrypt(
                tokens.access_token.expose().as_bytes(),
                &associated_data("connections", connection_id, "access_token"),
            ),
            access_expires_at: now + tokens.access_expires_in,
            refresh_token: self.cipher.encrypt(
                tokens.refresh_token.expose().as_bytes(),
                &associated_data("connections", connection_id, "refresh_token"),
            ),
            refresh_issued_at: now,
            refresh_expires_at,
            rotate_due_at: refresh_expires_at - rotate_at_remaining,
            scope: tokens.scope.clone(),
        }
    }

    fn open(
        &self,
        connection_id: i64,
        field: &str,
        key_id: Option<&str>,
        blob: Option<&[u8]>,
    ) -> Result<Token, VaultError> {
        let (Some(key_id), Some(blob)) = (key_id, blob) else {
            return Err(VaultError::Decrypt);
        };
        self.cipher
            .decrypt_string(key_id, blob, &associated_data("connections", connection_id, field))
            .map(Token::new)
            .map_err(|error| {
                tracing::error!(connection_id, %error, "stored token could not be decrypted");
                VaultError::Decrypt
            })
    }

    fn status_error(status: ConnectionStatus, reason: Option<&str>) -> VaultError {
        match status {
            ConnectionStatus::Disconnected => VaultError::Disconnected,
            _ => VaultError::NeedsReconnect(
                reason
                    .and_then(ReconnectReason::parse)
                    .unwrap_or(ReconnectReason::RefreshRejected),
            ),
        }
    }

    fn is_fresh(&self, access_expires_at: Option<i64>) -> bool {
        access_expires_at.is_some_and(|at| at - self.clock.now() > self.settings.refresh_margin_seconds)
    }

    /// A valid access token for the merchant: the stored one while more than the margin
    /// remains (one indexed read), otherwise a refresh shared by all concurrent callers.
    pub async fn access_token_for(&self, merchant_id: i64) -> Result<AccessToken, VaultError> {
        let hot = self
            .store
            .hot_token(merchant_id)
            .await?
            .ok_or(VaultError::NotConnected)?;
        if hot.status != ConnectionStatus::Connected {
            return Err(Self::status_error(hot.status, hot.status_reason.as_deref()));
        }
        if self.is_fresh(hot.access_expires_at) {
            let token = self.open(
                hot.connection_id,
                "access_token",
                hot.key_id.as_deref(),
                hot.access_token.as_deref(),
            )?;
            return Ok(AccessToken {
                token,
                expires_at: hot.access_expires_at.unwrap_or_default(),
                connection_id: hot.connection_id,
            });
        }
        self.refresh(
            hot.connection_id,
            Want::FreshAccess,
            Actor::Vault,
            ReconnectReason::RefreshRejected,
        )
        .await
    }

    /// Rotates the refresh token unless someone already rotated past `seen_generation`
    /// (the keeper, an operator's "Refresh now").
    pub async fn rotate(
        &self,
        connection_id: i64,
        seen_generation: i64,
        actor: Actor,
    ) -> Result<AccessToken, VaultError> {
        self.refresh(
            connection_id,
            Want::NewerThan(seen_generation),
            actor,
            ReconnectReason::RefreshRejected,
        )
        .await
    }

    /// Account details through the vault. A 401 leads to one refresh; if that ends in
    /// `invalid_grant`, Airwallex revoked the connection.
    pub async fn account_for(&self, merchant_id: i64) -> Result<(i64, AccountDetails), VaultError> {
        let access = self.access_token_for(merchant_id).await?;
        match self.client.account(&access.token).await {
            Ok(details) => Ok((access.connection_id, details)),
            Err(AirwallexError::Unauthorized { code }) => {
                tracing::info!(connection_id = access.connection_id, %code, "access token refused; refreshing once");
                let generation = self
                    .store
                    .by_id(access.connection_id)
                    .await?
                    .map(|row| row.generation)
                    .unwrap_or_default();
                let renewed = self
                    .refresh(
                        access.connection_id,
                        Want::NewerThan(generation),
                        Actor::Vault,
                        ReconnectReason::Revoked,
                    )
                    .await?;
                match self.client.account(&renewed.token).await {
                    Ok(details) => Ok((renewed.connection_id, details)),
                    Err(AirwallexError::Unauthorized { .. }) => {
                        self.store
                            .mark_needs_reconnect(
                                renewed.connection_id,
                                ReconnectReason::Revoked,
                                event::REVOKED,
                                &Actor::Vault.label(&self.settings.instance),
                                Some("account API refused a freshly refreshed token"),
                                self.clock.now(),
                            )
                            .await?;
                        Err(VaultError::NeedsReconnect(ReconnectReason::Revoked))
                    }
                    Err(error) => Err(api_error(error)),
                }
            }
            Err(error) => Err(api_error(error)),
        }
    }

    fn local_lock(&self, connection_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(connection_id).or_default().clone()
    }

    fn ready_token(&self, row: &ConnectionRow) -> Result<AccessToken, VaultError> {
        Ok(AccessToken {
            token: self.open(
                row.id,
                "access_token",
                row.key_id.as_deref(),
                row.access_token.as_deref(),
            )?,
            expires_at: row.access_expires_at.unwrap_or_default(),
            connection_id: row.id,
        })
    }

    async fn refresh(
        &self,
        connection_id: i64,
        want: Want,
        actor: Actor,
        rejection_reason: ReconnectReason,
    ) -> Result<AccessToken, VaultError> {
        // One refresh per connection in this process: the others wait here, then find
        // the new tokens on their re-read.
        let lock = self.local_lock(connection_id);
        let _guard = lock.lock().await;
        let started = tokio::time::Instant::now();
        loop {
            let row = self.store.by_id(connection_id).await?.ok_or(VaultError::NotConnected)?;
            if row.status != ConnectionStatus::Connected {
                return Err(Self::status_error(row.status, row.status_reason.as_deref()));
            }
            let satisfied = match want {
                Want::FreshAccess => self.is_fresh(row.access_expires_at),
                Want::NewerThan(generation) => row.generation > generation && self.is_fresh(row.access_expires_at),
            };
            if satisfied {
                return self.ready_token(&row);
            }
            let owner = &self.settings.instance;
            if self
                .store
                .try_acquire_lease(row.id, row.generation, owner, real_now(), LEASE_SECONDS)
                .await?
            {
                let started_refresh = std::time::Instant::now();
                let result = self.refresh_holding_lease(&row, &actor, rejection_reason).await;
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(VaultError::NeedsReconnect(_)) => "needs_reconnect",
                    Err(VaultError::Unavailable) => "unavailable",
                    Err(_) => "error",
                };
                crate::metrics::record_refresh(outcome, started_refresh.elapsed());
                // Every path that keeps the lease releases it here; writes that end the
                // refresh release it themselves.
                self.store.release_lease(row.id, owner).await?;
                return result;
            }
            // Another instance is refreshing: wait for its result (or its lease to lapse).
            if started.elapsed() > MAX_WAIT_FOR_OTHER_INSTANCE {
                return Err(VaultError::Unavailable);
            }
            tokio::time::sleep(jitter(Duration::from_millis(50), Duration::from_millis(150))).await;
        }
    }

    async fn refresh_holding_lease(
        &self,
        row: &ConnectionRow,
        actor: &Actor,
        rejection_reason: ReconnectReason,
    ) -> Result<AccessToken, VaultError> {
        let owner = &self.settings.instance;
        let actor_label = actor.label(owner);
        let refresh_token = self.open(
            row.id,
            "refresh_token",
            row.key_id.as_deref(),
            row.refresh_token.as_deref(),
        )?;
        let mut sent_at = row.refresh_sent_at;
        let mut outcome_unknown_once = false;
        let mut transient_attempts = 0u32;
        let mut busy_attempts = 0u32;
        loop {
            let now = self.clock.now();
            let first_send_by_us = match sent_at {
                Some(at) if now > at + self.settings.resend_window_seconds() => {
                    // Airwallex may have replaced this token already; sending it now could
                    // kill the connection. The merchant has to authorize again.
                    tracing::warn!(connection_id = row.id, "refresh unconfirmed past the grace window");
                    self.store
                        .mark_needs_reconnect(
                            row.id,
                            ReconnectReason::RefreshUnconfirmed,
                            event::NEEDS_RECONNECT,
                            &actor_label,
                            None,
                            now,
                        )
                        .await?;
                    return Err(VaultError::NeedsReconnect(ReconnectReason::RefreshUnconfirmed));
                }
                Some(_) => false,
                None => {
                    if !self.store.mark_refresh_sent(row.id, owner, now).await? {
                        return Err(VaultError::Unavailable);
                    }
                    sent_at = Some(now);
                    true
                }
            };
            if !self
                .store
                .extend_lease(row.id, owner, real_now(), LEASE_SECONDS)
                .await?
            {
                return Err(VaultError::Unavailable);
            }

            match self.client.refresh(&refresh_token).await {
                Ok(tokens) => {
                    let now = self.clock.now();
                    let sealed = self.seal(row.id, &tokens, now);
                    if !self
                        .store
                        .store_refreshed(row.id, row.generation, owner, &sealed, &actor_label, now)
                        .await?
                    {
                        tracing::error!(
                            connection_id = row.id,
                            "refreshed tokens could not be stored: lease lost"
                        );
                        return Err(VaultError::Unavailable);
                    }
                    tracing::debug!(connection_id = row.id, "refreshed");
                    return Ok(AccessToken {
                        token: tokens.access_token,
                        expires_at: sealed.access_expires_at,
                        connection_id: row.id,
                    });
                }
                Err(AirwallexError::InvalidGrant { .. }) => {
                    // Final for this token. Under our lease nothing newer can exist, but
                    // re-read anyway: a reconnect may have stored a new authorization.
                    let current = self.store.by_id(row.id).await?;
                    if let Some(current) = current.filter(|c| c.generation != row.generation) {
                        if current.status == ConnectionStatus::Connected && self.is_fresh(current.access_expires_at) {
                            return self.ready_token(&current);
                        }
                    }
                    let now = self.clock.now();
                    let reason = if row.refresh_expires_at.is_some_and(|at| at <= now) {
                        ReconnectReason::RefreshExpired
                    } else {
                        rejection_reason
                    };
                    let kind = if reason == ReconnectReason::Revoked {
                        event::REVOKED
                    } else {
                        event::NEEDS_RECONNECT
                    };
                    self.store
                        .mark_needs_reconnect(row.id, reason, kind, &actor_label, Some("invalid_grant"), now)
                        .await?;
                    tracing::info!(
                        connection_id = row.id,
                        reason = reason.as_str(),
                        "connection needs reconnect"
                    );
                    return Err(VaultError::NeedsReconnect(reason));
                }
                Err(AirwallexError::ConcurrentRefresh) => {
                    busy_attempts += 1;
                    if busy_attempts > MAX_CONCURRENT_REFRESH_RETRIES {
                        self.store
                            .record_refresh_failure(row.id, owner, "too_many_requests", &actor_label, self.clock.now())
                            .await?;
                        return Err(VaultError::Unavailable);
                    }
                    tokio::time::sleep(jitter(self.settings.retry_base * 5, self.settings.retry_base * 10)).await;
                    let current = self.store.by_id(row.id).await?;
                    if let Some(current) = current.filter(|c| c.generation != row.generation) {
                        if current.status == ConnectionStatus::Connected {
                            return self.ready_token(&current);
                        }
                        return Err(Self::status_error(current.status, current.status_reason.as_deref()));
                    }
                }
                Err(AirwallexError::InvalidClient) => {
                    self.store
                        .record_refresh_failure(row.id, owner, "invalid_client", &actor_label, self.clock.now())
                        .await?;
                    return Err(VaultError::BadClientCredentials);
                }
                Err(error @ AirwallexError::Connect)
                | Err(error @ (AirwallexError::Server { .. } | AirwallexError::Timeout | AirwallexError::Transport)) => {
                    if error.outcome_unknown() {
                        outcome_unknown_once = true;
                    } else if first_send_by_us && !outcome_unknown_once {
                        // Nothing reached Airwallex: the token has not been sent after all.
                        if let Some(at) = sent_at {
                            self.store.clear_refresh_sent(row.id, owner, at).await?;
                        }
                        sent_at = None;
                    }
                    transient_attempts += 1;
                    if transient_attempts >= MAX_TRANSIENT_ATTEMPTS {
                        self.store
                            .record_refresh_failure(row.id, owner, error.kind(), &actor_label, self.clock.now())
                            .await?;
                        return Err(VaultError::Unavailable);
                    }
                    let backoff = self.settings.retry_base * 2u32.pow(transient_attempts - 1);
                    tokio::time::sleep(jitter(backoff, backoff * 2)).await;
                }
                Err(error) => {
                    self.store
                        .record_refresh_failure(row.id, owner, error.kind(), &actor_label, self.clock.now())
                        .await?;
                    return Err(VaultError::Upstream(error.kind().to_string()));
                }
            }
        }
    }

    /// Exchanges an authorization code and stores the new connection (or reconnection)
    /// with the account details; tokens are committed before this returns.
    pub async fn connect(
        &self,
        merchant_id: i64,
        code: &Token,
        redirect_uri: &str,
        code_verifier: Option<&Token>,
        actor: &str,
    ) -> Result<(i64, AccountDetails), ConnectError> {
        let tokens = self
            .client
            .exchange_code(code, redirect_uri, code_verifier)
            .await
            .map_err(ConnectError::Exchange)?;
        let account = self
            .client
            .account(&tokens.access_token)
            .await
            .map_err(ConnectError::Account)?;
        let now = self.clock.now();
        let connection_id = self
            .store
            .ensure_row(merchant_id, now)
            .await
            .map_err(ConnectError::Database)?;
        let sealed = self.seal(connection_id, &tokens, now);
        let account_json = serde_json::to_string(&account).unwrap_or_default();
        self.store
            .store_authorization(
                connection_id,
                &sealed,
                &AccountRecord {
                    account_id: account.id.as_deref(),
                    business_name: account.display_name(),
                    account_json: Some(&account_json),
                },
                actor,
                now,
            )
            .await
            .map_err(ConnectError::Database)?;
        Ok((connection_id, account))
    }
}

/// Why a new authorization could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the authorization code could not be exchanged: {0}")]
    Exchange(AirwallexError),
    #[error("the account details could not be read: {0}")]
    Account(AirwallexError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

fn api_error(error: AirwallexError) -> VaultError {
    match error {
        AirwallexError::Connect
        | AirwallexError::Timeout
        | AirwallexError::Transport
        | AirwallexError::Server { .. } => VaultError::Unavailable,
        other => VaultError::Upstream(other.kind().to_string()),
    }
}
