//! One refresh of a connection's tokens, shared by every caller: the in-process lock, the
//! database lease, then the attempts under the lease, each answer of Airwallex handled by
//! its own method (`on_tokens`, `on_invalid_grant`, `on_busy`, `on_transient`, …).

use std::time::Duration;

use rand::Rng;

use super::{AccessGrant, Actor, TokenVault, VaultError, Want};
use crate::airwallex::{AirwallexError, TokenSet};
use crate::secret::RefreshToken;
use crate::store::{ConnectionRow, ConnectionStatus, ReconnectReason};
use crate::time::real_now;

/// How long a refresh lease lasts (real seconds); renewed before every attempt.
const LEASE_SECONDS: i64 = 30;
/// Attempts at a refresh whose outcome was unknown (5xx, timeout, reset) or that could
/// not connect, before giving up for now.
const MAX_TRANSIENT_ATTEMPTS: u32 = 5;
/// `429` answers tolerated in one refresh.
const MAX_CONCURRENT_REFRESH_RETRIES: u32 = 5;
/// How long a caller waits for another instance's refresh before giving up.
const MAX_WAIT_FOR_OTHER_INSTANCE: Duration = Duration::from_secs(45);

fn jitter(min: Duration, max: Duration) -> Duration {
    let span = max.saturating_sub(min).as_millis() as u64;
    min + Duration::from_millis(rand::thread_rng().gen_range(0..=span))
}

/// What one refresh under the lease carries from attempt to attempt.
struct Attempt<'a> {
    row: &'a ConnectionRow,
    actor: String,
    /// The reason recorded if Airwallex rejects the refresh token.
    rejection_reason: ReconnectReason,
    refresh_token: RefreshToken,
    /// When the stored refresh token first left this system (before this attempt).
    sent_at: Option<i64>,
    /// This attempt is the token's first send (nothing was sent before it).
    first_send: bool,
    /// Some earlier attempt may have reached Airwallex although no answer came back.
    outcome_unknown_once: bool,
    transient_attempts: u32,
    busy_attempts: u32,
}

/// After an answer: try again, or the refresh is over.
enum Next {
    Retry,
    Done(Result<AccessGrant, VaultError>),
}

impl TokenVault {
    pub(super) async fn refresh(
        &self,
        connection_id: i64,
        want: Want,
        actor: Actor,
        rejection_reason: ReconnectReason,
    ) -> Result<AccessGrant, VaultError> {
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
    ) -> Result<AccessGrant, VaultError> {
        let mut attempt = Attempt {
            row,
            actor: actor.label(&self.settings.instance),
            rejection_reason,
            refresh_token: self.open_refresh_token(row)?,
            sent_at: row.refresh_sent_at,
            first_send: false,
            outcome_unknown_once: false,
            transient_attempts: 0,
            busy_attempts: 0,
        };
        loop {
            self.before_send(&mut attempt).await?;
            let next = match self.client.refresh(&attempt.refresh_token).await {
                Ok(tokens) => Next::Done(self.on_tokens(&attempt, tokens).await),
                Err(AirwallexError::InvalidGrant { .. }) => Next::Done(self.on_invalid_grant(&attempt).await),
                Err(AirwallexError::ConcurrentRefresh) => self.on_busy(&mut attempt).await?,
                Err(AirwallexError::InvalidClient) => Next::Done(self.on_client_refused(&attempt).await),
                Err(
                    error @ (AirwallexError::Connect
                    | AirwallexError::Server { .. }
                    | AirwallexError::Timeout
                    | AirwallexError::Transport),
                ) => self.on_transient(&mut attempt, error).await?,
                Err(error) => Next::Done(self.on_rejected(&attempt, error).await),
            };
            if let Next::Done(result) = next {
                return result;
            }
        }
    }

    /// Decides whether the stored refresh token may go out now, records its first send,
    /// and renews the lease.
    async fn before_send(&self, attempt: &mut Attempt<'_>) -> Result<(), VaultError> {
        let row = attempt.row;
        let owner = &self.settings.instance;
        let now = self.clock.now();
        match attempt.sent_at {
            Some(at) if now > at + self.settings.resend_window_seconds() => {
                return Err(self.on_grace_window_passed(attempt).await);
            }
            Some(_) => attempt.first_send = false,
            None => {
                if !self.store.mark_refresh_sent(row.id, owner, now).await? {
                    return Err(VaultError::Unavailable);
                }
                attempt.sent_at = Some(now);
                attempt.first_send = true;
            }
        }
        if !self
            .store
            .extend_lease(row.id, owner, real_now(), LEASE_SECONDS)
            .await?
        {
            return Err(VaultError::Unavailable);
        }
        Ok(())
    }

    /// Airwallex may have replaced this token already; sending it now could kill the
    /// connection. The merchant has to authorize again.
    async fn on_grace_window_passed(&self, attempt: &Attempt<'_>) -> VaultError {
        tracing::warn!(
            connection_id = attempt.row.id,
            "refresh unconfirmed past the grace window"
        );
        let reason = ReconnectReason::RefreshUnconfirmed;
        match self
            .store
            .mark_needs_reconnect(attempt.row.id, reason, &attempt.actor, None, self.clock.now())
            .await
        {
            Ok(_) => VaultError::NeedsReconnect(reason),
            Err(error) => error.into(),
        }
    }

    /// New tokens: stored (and the lease released) before anyone gets them.
    async fn on_tokens(&self, attempt: &Attempt<'_>, tokens: TokenSet) -> Result<AccessGrant, VaultError> {
        let row = attempt.row;
        let now = self.clock.now();
        let sealed = self.seal(row.id, &tokens, now);
        if !self
            .store
            .store_refreshed(
                row.id,
                row.generation,
                &self.settings.instance,
                &sealed,
                &attempt.actor,
                now,
            )
            .await?
        {
            tracing::error!(
                connection_id = row.id,
                "refreshed tokens could not be stored: lease lost"
            );
            return Err(VaultError::Unavailable);
        }
        tracing::debug!(connection_id = row.id, "refreshed");
        Ok(AccessGrant {
            token: tokens.access_token,
            expires_at: sealed.access_expires_at,
            connection_id: row.id,
        })
    }

    /// Final for this token. Under our lease nothing newer can exist, but re-read anyway:
    /// a reconnect may have stored a new authorization meanwhile.
    async fn on_invalid_grant(&self, attempt: &Attempt<'_>) -> Result<AccessGrant, VaultError> {
        let row = attempt.row;
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
            attempt.rejection_reason
        };
        self.store
            .mark_needs_reconnect(row.id, reason, &attempt.actor, Some("invalid_grant"), now)
            .await?;
        tracing::info!(
            connection_id = row.id,
            reason = reason.as_str(),
            "connection needs reconnect"
        );
        Err(VaultError::NeedsReconnect(reason))
    }

    /// `429`: another refresh of this connection is in flight at Airwallex. Back off, then
    /// re-read: if someone stored newer tokens, use them.
    async fn on_busy(&self, attempt: &mut Attempt<'_>) -> Result<Next, VaultError> {
        let row = attempt.row;
        attempt.busy_attempts += 1;
        if attempt.busy_attempts > MAX_CONCURRENT_REFRESH_RETRIES {
            self.store
                .record_refresh_failure(
                    row.id,
                    &self.settings.instance,
                    "too_many_requests",
                    &attempt.actor,
                    self.clock.now(),
                )
                .await?;
            return Ok(Next::Done(Err(VaultError::Unavailable)));
        }
        let base = self.settings.retry_base;
        tokio::time::sleep(jitter(base * 5, base * 10)).await;
        let current = self.store.by_id(row.id).await?;
        Ok(match current.filter(|c| c.generation != row.generation) {
            Some(current) if current.status == ConnectionStatus::Connected => Next::Done(self.ready_token(&current)),
            Some(current) => Next::Done(Err(Self::status_error(
                current.status,
                current.status_reason.as_deref(),
            ))),
            None => Next::Retry,
        })
    }

    /// No answer, a 5xx, or no connection at all: retried with backoff. A request that
    /// provably never reached Airwallex does not count as a send.
    async fn on_transient(&self, attempt: &mut Attempt<'_>, error: AirwallexError) -> Result<Next, VaultError> {
        let row = attempt.row;
        let owner = &self.settings.instance;
        if error.outcome_unknown() {
            attempt.outcome_unknown_once = true;
        } else if attempt.first_send && !attempt.outcome_unknown_once {
            if let Some(at) = attempt.sent_at.take() {
                self.store.clear_refresh_sent(row.id, owner, at).await?;
            }
        }
        attempt.transient_attempts += 1;
        if attempt.transient_attempts >= MAX_TRANSIENT_ATTEMPTS {
            self.store
                .record_refresh_failure(row.id, owner, error.kind(), &attempt.actor, self.clock.now())
                .await?;
            return Ok(Next::Done(Err(VaultError::Unavailable)));
        }
        let backoff = self.settings.retry_base * 2u32.pow(attempt.transient_attempts - 1);
        tokio::time::sleep(jitter(backoff, backoff * 2)).await;
        Ok(Next::Retry)
    }

    /// Our client credentials were refused: nothing to retry until configuration changes.
    async fn on_client_refused(&self, attempt: &Attempt<'_>) -> Result<AccessGrant, VaultError> {
        self.store
            .record_refresh_failure(
                attempt.row.id,
                &self.settings.instance,
                "invalid_client",
                &attempt.actor,
                self.clock.now(),
            )
            .await?;
        Err(VaultError::BadClientCredentials)
    }

    /// Any other refusal: recorded, the connection left as it is.
    async fn on_rejected(&self, attempt: &Attempt<'_>, error: AirwallexError) -> Result<AccessGrant, VaultError> {
        self.store
            .record_refresh_failure(
                attempt.row.id,
                &self.settings.instance,
                error.kind(),
                &attempt.actor,
                self.clock.now(),
            )
            .await?;
        Err(VaultError::Upstream(error.kind().to_string()))
    }
}
