//! The token vault: hands out valid Airwallex access tokens and keeps connections alive.
//!
//! Invariants:
//! 1. A refresh token that Airwallex has superseded is never sent after its grace minute,
//!    by any instance (that is what kills connections).
//! 2. Per connection at most one refresh is in flight across all instances: an in-process
//!    lock per connection, plus a lease in the database row. Concurrent callers wait and
//!    share the result.
//! 3. New tokens are committed before anyone gets the new access token.
//! 4. A lost answer (timeout, reset, crash) is retried with the same refresh token, only
//!    inside the grace window.
//! 5. `invalid_grant` is final once a re-read shows nothing newer: the merchant reconnects.
//! 6. `429` backs off 1–2 s with jitter and re-reads before retrying.
//! 7. Tokens are encrypted at rest (bound to their row and field), never logged.
//!
//! The grace rule is enforced by `refresh_sent_at`: the moment the stored refresh token
//! first left this system, written before it is sent. Airwallex cannot have replaced it
//! before then, so resending it is safe until `refresh_sent_at + RESEND_WINDOW`, which
//! ends well inside Airwallex's minute even for a request that takes its full timeout.
//! The refresh itself lives in [`refresh`].

mod refresh;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::airwallex::{AccountDetails, AirwallexClient, AirwallexError, TokenSet};
use crate::crypto::{associated_data, TokenCipher};
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{ConnectionRow, ConnectionStatus, ConnectionStore, ReconnectReason, SealedTokens};
use crate::time::Clock;

/// Airwallex keeps a superseded refresh token usable this long.
pub const GRACE_SECONDS: i64 = 60;
/// Margin for clock differences between us and Airwallex.
const CLOCK_SKEW_SECONDS: i64 = 5;
/// How long a refresh lease lasts by default; renewed right before every send.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

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
    /// How long a refresh lease lasts (real time); longer than a request may take.
    pub lease: Duration,
}

impl VaultSettings {
    pub fn new(refresh_margin_seconds: i64, request_timeout: Duration) -> VaultSettings {
        VaultSettings {
            refresh_margin_seconds,
            rotate_when_remaining: 1.0 / 3.0,
            request_timeout_seconds: request_timeout.as_secs().max(1) as i64,
            retry_base: Duration::from_millis(200),
            instance: format!("instance-{}", crate::secret::random_urlsafe(6)),
            lease: DEFAULT_LEASE,
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

crate::database_errors_are_logged!(VaultError => VaultError::Database, "token vault");

/// A usable access token with its expiry (unix seconds on the vault's clock).
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub token: AccessToken,
    pub expires_at: i64,
    pub connection_id: i64,
    /// The Airwallex account the token acts on.
    pub account_id: Option<String>,
    /// The connection's generation the token was read at (a renewal asks for a newer one).
    pub generation: i64,
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

    /// The cipher, to share with what seals other secrets.
    pub fn shared_cipher(&self) -> Arc<TokenCipher> {
        self.cipher.clone()
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
    ) -> Result<String, VaultError> {
        let (Some(key_id), Some(blob)) = (key_id, blob) else {
            return Err(VaultError::Decrypt);
        };
        self.cipher
            .decrypt_string(key_id, blob, &associated_data("connections", connection_id, field))
            .map_err(|error| {
                tracing::error!(connection_id, %error, "stored token could not be decrypted");
                VaultError::Decrypt
            })
    }

    fn open_refresh_token(&self, row: &ConnectionRow) -> Result<RefreshToken, VaultError> {
        self.open(
            row.id,
            "refresh_token",
            row.key_id.as_deref(),
            row.refresh_token.as_deref(),
        )
        .map(RefreshToken::new)
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
    pub async fn access_token_for(&self, merchant_id: i64) -> Result<AccessGrant, VaultError> {
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
            return Ok(AccessGrant {
                token: AccessToken::new(token),
                expires_at: hot.access_expires_at.unwrap_or_default(),
                connection_id: hot.connection_id,
                account_id: hot.account_id,
                generation: hot.generation,
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
    ) -> Result<AccessGrant, VaultError> {
        self.refresh(
            connection_id,
            Want::NewerThan(seen_generation),
            actor,
            ReconnectReason::RefreshRejected,
        )
        .await
    }

    /// A new access token in place of `rejected`, which Airwallex refused (401) although
    /// it may still have looked fresh: one refresh, shared by every caller that was refused
    /// the same token (single flight, across instances); a caller whose token was already
    /// replaced gets the newer one. An `invalid_grant` means Airwallex revoked access.
    pub async fn renew_rejected(&self, rejected: &AccessGrant) -> Result<AccessGrant, VaultError> {
        self.refresh(
            rejected.connection_id,
            Want::NewerThan(rejected.generation),
            Actor::Vault,
            ReconnectReason::Revoked,
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

    fn ready_token(&self, row: &ConnectionRow) -> Result<AccessGrant, VaultError> {
        Ok(AccessGrant {
            token: AccessToken::new(self.open(
                row.id,
                "access_token",
                row.key_id.as_deref(),
                row.access_token.as_deref(),
            )?),
            expires_at: row.access_expires_at.unwrap_or_default(),
            connection_id: row.id,
            account_id: row.account_id.clone(),
            generation: row.generation,
        })
    }
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
