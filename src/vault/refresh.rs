//! One refresh of a connection's tokens, shared by every caller: the in-process lock, the
//! database lease, then the attempts under the lease, each answer of Airwallex handled by
//! its own method (`on_tokens`, `on_invalid_grant`, `on_busy`, `on_transient`, …).
//!
//! Whether the stored refresh token may go out is decided at the last moment: after all
//! the database work that precedes a send (which may wait on a slow database), with a
//! fresh millisecond clock; and each request is bounded so that it cannot still be in
//! flight when the grace minute of the token's first send ends.

use std::time::Duration;

use rand::Rng;

use super::{AccessGrant, Actor, TokenVault, VaultError, Want, CLOCK_SKEW_SECONDS, GRACE_SECONDS};
use crate::airwallex::{AirwallexError, TokenSet};
use crate::secret::RefreshToken;
use crate::store::{ConnectionRow, ConnectionStatus, ReconnectReason};
use crate::time::real_now;

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
    /// When the stored refresh token first left this system.
    sent_at: Option<i64>,
    /// This attempt is the token's first send (nothing was sent before it).
    first_send: bool,
    /// Some earlier attempt may have reached Airwallex although no answer came back.
    outcome_unknown_once: bool,
    transient_attempts: u32,
    busy_attempts: u32,
}

/// What [`TokenVault::before_send`] decided.
enum Send {
    /// Send, with a request that is over within this long.
    Within(Duration),
    /// Too late to send the stored token safely.
    TooLate,
    /// The lease is gone or the row changed: read it again.
    Superseded,
}

/// After an answer: try again, the refresh is over, or someone else has stored newer
/// tokens meanwhile (read them).
enum Next {
    Retry,
    Done(Result<AccessGrant, VaultError>),
    Reread,
}

/// The outcome of a refresh under the lease: `None` means the row changed under us and
/// must be read again.
type Held = Result<Option<AccessGrant>, VaultError>;

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
                .try_acquire_lease(row.id, row.generation, owner, real_now(), self.lease_seconds())
                .await?
            {
                let started_refresh = std::time::Instant::now();
                let held = self.refresh_holding_lease(&row, &actor, rejection_reason).await;
                // Every path that keeps the lease releases it here; writes that end the
                // refresh release it themselves.
                self.store.release_lease(row.id, owner).await?;
                let result = match held {
                    Ok(None) => continue,
                    Ok(Some(grant)) => Ok(grant),
                    Err(error) => Err(error),
                };
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(VaultError::NeedsReconnect(_)) => "needs_reconnect",
                    Err(VaultError::Unavailable) => "unavailable",
                    Err(_) => "error",
                };
                crate::metrics::record_refresh(outcome, started_refresh.elapsed());
                return result;
            }
            // Another instance is refreshing: wait for its result (or its lease to lapse).
            if started.elapsed() > MAX_WAIT_FOR_OTHER_INSTANCE {
                return Err(VaultError::Unavailable);
            }
            tokio::time::sleep(jitter(Duration::from_millis(50), Duration::from_millis(150))).await;
        }
    }

    fn lease_seconds(&self) -> i64 {
        self.settings.lease.as_secs().max(1) as i64
    }

    async fn refresh_holding_lease(
        &self,
        row: &ConnectionRow,
        actor: &Actor,
        rejection_reason: ReconnectReason,
    ) -> Held {
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
            let timeout = match self.before_send(&mut attempt).await? {
                Send::Within(timeout) => timeout,
                Send::Superseded => return Ok(None),
                Send::TooLate => return self.on_grace_window_passed(&attempt).await,
            };
            let next = match self.client.refresh_within(&attempt.refresh_token, timeout).await {
                Ok(tokens) => Next::Done(self.on_tokens(&attempt, tokens).await),
                Err(AirwallexError::InvalidGrant { .. }) => self.on_invalid_grant(&attempt).await?,
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
            match next {
                Next::Retry => continue,
                Next::Done(result) => return result.map(Some),
                Next::Reread => return Ok(None),
            }
        }
    }

    /// Prepares a send under the lease and decides, last, whether the stored refresh token
    /// may go out and how long the request may take.
    async fn before_send(&self, attempt: &mut Attempt<'_>) -> Result<Send, VaultError> {
        let row = attempt.row;
        let window_ms = self.settings.resend_window_seconds() * 1000;
        if attempt
            .sent_at
            .is_some_and(|at| self.clock.now_millis() > at * 1000 + window_ms)
        {
            return Ok(Send::TooLate);
        }
        let Some(sent_at) = self
            .store
            .prepare_send(
                row.id,
                row.generation,
                &self.settings.instance,
                self.clock.now(),
                real_now(),
                self.lease_seconds(),
            )
            .await?
        else {
            return Ok(Send::Superseded);
        };
        attempt.first_send = attempt.sent_at.is_none();
        attempt.sent_at = Some(sent_at);
        // The last moment: a fresh clock after all the database work. `sent_at` is whole
        // seconds rounded down, which only moves the deadlines earlier.
        let now_ms = self.clock.now_millis();
        if !attempt.first_send && now_ms > sent_at * 1000 + window_ms {
            return Ok(Send::TooLate);
        }
        // Over before the grace minute of the first send ends, whatever happens.
        let deadline_ms = (sent_at + GRACE_SECONDS - CLOCK_SKEW_SECONDS) * 1000;
        let left = Duration::from_millis((deadline_ms - now_ms).max(0) as u64);
        if left < Duration::from_secs(1) {
            return Ok(Send::TooLate);
        }
        Ok(Send::Within(left.min(self.client.settings().request_timeout)))
    }

    /// Airwallex may have replaced this token already; sending it now could kill the
    /// connection. The merchant has to authorize again (unless someone stored newer
    /// tokens meanwhile).
    async fn on_grace_window_passed(&self, attempt: &Attempt<'_>) -> Held {
        tracing::warn!(
            connection_id = attempt.row.id,
            "refresh unconfirmed past the grace window"
        );
        let reason = ReconnectReason::RefreshUnconfirmed;
        let marked = self
            .store
            .mark_needs_reconnect_at(
                attempt.row.id,
                Some(attempt.row.generation),
                reason,
                &attempt.actor,
                None,
                self.clock.now(),
            )
            .await?;
        if marked {
            Err(VaultError::NeedsReconnect(reason))
        } else {
            Ok(None)
        }
    }

    /// New tokens: stored (and the lease released) before anyone gets them.
    async fn on_tokens(&self, attempt: &Attempt<'_>, tokens: TokenSet) -> Result<AccessGrant, VaultError> {
        let row = attempt.row;
        let now = self.clock.now();
        let sealed = self.seal(row.id, &tokens, now);
        let stored = self
            .store
            .store_refreshed(
                row.id,
                row.generation,
                &self.settings.instance,
                &sealed,
                &attempt.actor,
                now,
                real_now(),
                row.last_refresh_result.as_deref() == Some("failed"),
            )
            .await?;
        if !stored {
            tracing::error!(
                connection_id = row.id,
                "refreshed tokens not stored: a newer refresh or a state change came first"
            );
            return Err(VaultError::Unavailable);
        }
        tracing::debug!(connection_id = row.id, "refreshed");
        Ok(AccessGrant {
            token: tokens.access_token,
            expires_at: sealed.access_expires_at,
            connection_id: row.id,
            account_id: row.account_id.clone(),
            // store_refreshed moved the row one generation on.
            generation: row.generation + 1,
        })
    }

    /// Final for this token. Under our lease nothing newer should exist, but re-read
    /// anyway: a reconnect may have stored a new authorization meanwhile.
    async fn on_invalid_grant(&self, attempt: &Attempt<'_>) -> Result<Next, VaultError> {
        let row = attempt.row;
        if self
            .store
            .by_id(row.id)
            .await?
            .is_some_and(|current| current.generation != row.generation)
        {
            return Ok(Next::Reread);
        }
        let now = self.clock.now();
        let reason = if row.refresh_expires_at.is_some_and(|at| at <= now) {
            ReconnectReason::RefreshExpired
        } else {
            attempt.rejection_reason
        };
        let marked = self
            .store
            .mark_needs_reconnect_at(
                row.id,
                Some(row.generation),
                reason,
                &attempt.actor,
                Some("invalid_grant"),
                now,
            )
            .await?;
        if !marked {
            return Ok(Next::Reread);
        }
        tracing::info!(
            connection_id = row.id,
            reason = reason.as_str(),
            "connection needs reconnect"
        );
        Ok(Next::Done(Err(VaultError::NeedsReconnect(reason))))
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
        let changed = self
            .store
            .by_id(row.id)
            .await?
            .is_some_and(|current| current.generation != row.generation);
        Ok(if changed { Next::Reread } else { Next::Retry })
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
