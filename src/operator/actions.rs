//! What an operator can do to a connection: refresh it now, or check with Airwallex that
//! it still works. Each is logged with the operator.

use super::{OperatorDesk, OperatorError};
use crate::store::{ConnectionStatus, EventKind, NewEvent};
use crate::vault::{Actor, VaultError};

impl OperatorDesk {
    /// "Refresh now": rotates the tokens through the vault, logged with the operator.
    pub async fn refresh_now(&self, connection_id: i64, operator: &str) -> Result<(), OperatorError> {
        let row = self.connection_row(connection_id).await?;
        if row.status != ConnectionStatus::Connected {
            // Nothing to refresh; say so in the timeline, with the operator.
            self.log_operator_event(row.id, EventKind::RefreshFailed, "not_connected", operator)
                .await?;
            return Ok(());
        }
        match self
            .vault
            .rotate(row.id, row.generation, Actor::Operator(operator.to_string()))
            .await
        {
            Err(VaultError::Database) => Err(OperatorError::StorageUnavailable),
            // Success and every other failure are in the timeline already (refreshed,
            // refresh_failed or needs_reconnect), recorded with the operator by the vault.
            _ => Ok(()),
        }
    }

    /// "Check with Airwallex": reads the account through the vault (a revoked connection
    /// is detected on the way) and logs the result with the operator.
    pub async fn check_with_airwallex(&self, connection_id: i64, operator: &str) -> Result<(), OperatorError> {
        let row = self.connection_row(connection_id).await?;
        let outcome = if row.status != ConnectionStatus::Connected {
            "not_connected".to_string()
        } else {
            match self.vault.account_for(row.merchant_id).await {
                Ok((id, details)) => {
                    let json = serde_json::to_string(&details).unwrap_or_default();
                    self.store()
                        .store_account(
                            id,
                            details.id.as_deref(),
                            details.display_name(),
                            &json,
                            self.clock.now(),
                        )
                        .await?;
                    "ok".to_string()
                }
                Err(VaultError::NeedsReconnect(reason)) => format!("needs_reconnect:{}", reason.as_str()),
                Err(error) => format!("failed:{error}"),
            }
        };
        self.log_operator_event(row.id, EventKind::Checked, &outcome, operator)
            .await?;
        Ok(())
    }

    async fn log_operator_event(
        &self,
        connection_id: i64,
        kind: EventKind,
        reason: &str,
        operator: &str,
    ) -> Result<(), sqlx::Error> {
        let actor = format!("operator:{operator}");
        self.store()
            .log_event(
                connection_id,
                NewEvent::new(kind, &actor).reason(reason),
                self.clock.now(),
            )
            .await
    }
}
