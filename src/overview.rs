//! What a merchant does with their connection: see it (status, account details through
//! the vault, reused for `ACCOUNT_CACHE_SECONDS`, when it was connected and refreshed) and
//! disconnect it.

use std::sync::Arc;

use crate::airwallex::AccountDetails;
use crate::store::{ConnectionStatus, ConnectionStore, ConnectionSummary, ReconnectReason};
use crate::time::Clock;
use crate::vault::{TokenVault, VaultError};

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionOverview {
    pub connection_id: Option<i64>,
    /// `None`: the merchant never connected.
    pub status: Option<ConnectionStatus>,
    pub reason: Option<ReconnectReason>,
    pub account: Option<AccountDetails>,
    /// The account details shown are older than the cache allows: Airwallex could not be
    /// reached just now.
    pub account_stale: bool,
    pub connected_at: Option<i64>,
    pub last_refresh_at: Option<i64>,
}

/// The signed-in merchant's connection as read with the session (`None`: no connection),
/// left in the request's extensions for the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentConnection(pub Option<ConnectionSummary>);

/// The merchant's side of their connection.
#[derive(Debug, Clone)]
pub struct MerchantConnections {
    vault: Arc<TokenVault>,
    clock: Clock,
    /// Reuse account details this long (seconds); 0 fetches on every view.
    account_cache_seconds: i64,
}

impl MerchantConnections {
    pub fn new(vault: Arc<TokenVault>, clock: Clock, account_cache_seconds: i64) -> MerchantConnections {
        MerchantConnections {
            vault,
            clock,
            account_cache_seconds,
        }
    }

    fn store(&self) -> &ConnectionStore {
        self.vault.store()
    }

    /// The merchant's connection as they see it. `known` is the summary read with the
    /// session, when there was one (it saves a round trip); otherwise it is read here.
    pub async fn overview(
        &self,
        merchant_id: i64,
        known: Option<Option<ConnectionSummary>>,
    ) -> Result<ConnectionOverview, sqlx::Error> {
        let row = match known {
            Some(known) => known,
            None => self
                .store()
                .by_merchant(merchant_id)
                .await?
                .as_ref()
                .map(ConnectionSummary::from),
        };
        let Some(row) = row else {
            return Ok(ConnectionOverview {
                connection_id: None,
                status: None,
                reason: None,
                account: None,
                account_stale: false,
                connected_at: None,
                last_refresh_at: None,
            });
        };
        let cached: Option<AccountDetails> = row.account_json.as_deref().and_then(|j| serde_json::from_str(j).ok());
        let now = self.clock.now();
        let fresh_enough = row
            .account_fetched_at
            .is_some_and(|at| self.account_cache_seconds > 0 && now - at < self.account_cache_seconds);
        let mut account = cached;
        let mut account_stale = false;
        let mut status_may_have_changed = false;
        if row.status == ConnectionStatus::Connected && !(fresh_enough && account.is_some()) {
            status_may_have_changed = true;
            match self.vault.account_for(merchant_id).await {
                Ok((connection_id, details)) => {
                    let json = serde_json::to_string(&details).unwrap_or_default();
                    self.store()
                        .store_account(connection_id, details.id.as_deref(), details.display_name(), &json, now)
                        .await?;
                    account = Some(details);
                }
                Err(VaultError::NeedsReconnect(_) | VaultError::Disconnected) => {
                    // Re-read below shows the new status.
                }
                Err(error) => {
                    tracing::warn!(merchant_id, %error, "account details unavailable; showing the last known");
                    account_stale = true;
                }
            }
        }
        let row = if status_may_have_changed {
            self.store()
                .by_merchant(merchant_id)
                .await?
                .as_ref()
                .map(ConnectionSummary::from)
                .unwrap_or(row)
        } else {
            row
        };
        Ok(ConnectionOverview {
            connection_id: Some(row.id),
            status: Some(row.status),
            reason: row.status_reason.as_deref().and_then(ReconnectReason::parse),
            account,
            account_stale,
            connected_at: row.connected_at,
            last_refresh_at: row.last_refresh_at,
        })
    }
}

impl MerchantConnections {
    /// The merchant disconnects: tokens deleted, history kept. Returns the connection's id
    /// when there was one to disconnect.
    pub async fn disconnect(&self, merchant_id: i64) -> Result<Option<i64>, sqlx::Error> {
        self.disconnect_as(merchant_id, &format!("merchant:{merchant_id}"))
            .await
    }

    /// [`disconnect`](Self::disconnect) on the merchant's behalf, by `actor` (the audit
    /// log says who).
    pub async fn disconnect_as(&self, merchant_id: i64, actor: &str) -> Result<Option<i64>, sqlx::Error> {
        let Some(row) = self.store().by_merchant(merchant_id).await? else {
            return Ok(None);
        };
        self.store().disconnect(row.id, actor, self.clock.now()).await?;
        Ok(Some(row.id))
    }
}
