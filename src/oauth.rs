//! The authorization flow: starting it (a single-use `state` bound to the merchant's
//! session, a PKCE S256 verifier kept encrypted on the server for 10 minutes), completing
//! it at the callback (state consumed atomically, code exchanged, account fetched) and
//! storing the new connection. A failed callback stores nothing.

use std::sync::Arc;

use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::airwallex::{AccountDetails, AirwallexError};
use crate::crypto::associated_data;
use crate::db::Database;
use crate::secret::{random_urlsafe, AuthorizationCode, PkceCodeVerifier};
use crate::store::{AccountRecord, ConnectionStatus, EventKind};
use crate::time::Clock;
use crate::vault::TokenVault;

mod outcomes;

pub use outcomes::{
    AccountPin, CallbackFailure, CallbackParams, CallbackProblem, Completed, ConnectError, OAuthSettings,
};

/// How long a started authorization may take.
pub const STATE_TTL_SECONDS: i64 = 600;

/// Starts and completes merchants' authorizations.
#[derive(Debug, Clone)]
pub struct Authorization {
    db: Database,
    clock: Clock,
    vault: Arc<TokenVault>,
    settings: OAuthSettings,
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// What a PKCE verifier's ciphertext is bound to.
pub(crate) fn verifier_aad(hash: &str) -> Vec<u8> {
    associated_data("oauth_states", 0, &format!("pkce_verifier:{hash}"))
}

impl Authorization {
    pub fn new(db: Database, clock: Clock, vault: Arc<TokenVault>, settings: OAuthSettings) -> Authorization {
        Authorization {
            db,
            clock,
            vault,
            settings,
        }
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// Starts an authorization for a signed-in merchant (from `connect_session`, when
    /// given), which may bring back the Airwallex account `pin` allows; returns the
    /// authorize URL to send the browser to.
    pub async fn start(
        &self,
        merchant_id: i64,
        session_id: &str,
        sign_up: bool,
        connect_session: Option<&str>,
        pin: AccountPin,
    ) -> Result<String, sqlx::Error> {
        let state = random_urlsafe(32);
        let verifier = random_urlsafe(32);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let hash = state_hash(&state);
        let cipher = self.vault.cipher();
        let now = self.clock.now();
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, session_id, merchant_id, pkce_verifier, key_id, created_at, \
             expires_at, connect_session_id, account_pin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&hash)
        // The session's stored form: a copy of the database holds no live session id.
        .bind(crate::sessions::stored_id(session_id))
        .bind(merchant_id)
        .bind(cipher.encrypt(verifier.as_bytes(), &verifier_aad(&hash)))
        .bind(cipher.current_key_id())
        .bind(now)
        .bind(now + STATE_TTL_SECONDS)
        .bind(connect_session)
        .bind(pin.as_str())
        .execute(self.db.pool())
        .await?;

        let mut url = url::Url::parse(&self.settings.authorize_url).expect("authorize URL was checked at start-up");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", &self.settings.redirect_uri)
                .append_pair("scope", &self.settings.scopes.join(" "))
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if sign_up {
                query.append_pair("sign_up", "true");
            }
        }
        Ok(url.to_string())
    }

    /// Completes an authorization at the callback for the signed-in merchant.
    pub async fn complete(
        &self,
        merchant_id: i64,
        session_id: Option<&str>,
        params: &CallbackParams,
    ) -> Result<Completed, CallbackFailure> {
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(CallbackProblem::MissingState)?;
        let hash = state_hash(state);
        let now = self.clock.now();
        // Single use: whoever flips consumed_at first owns the state.
        let consumed = sqlx::query(
            "UPDATE oauth_states SET consumed_at = $1 WHERE state_hash = $2 AND consumed_at IS NULL \
             RETURNING session_id, merchant_id, pkce_verifier, key_id, expires_at, connect_session_id, account_pin",
        )
        .bind(now)
        .bind(&hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(internal)?;
        let Some(row) = consumed else {
            let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM oauth_states WHERE state_hash = $1")
                .bind(&hash)
                .fetch_one(self.db.pool())
                .await
                .map_err(internal)?;
            return Err(if known > 0 {
                CallbackProblem::ReusedState
            } else {
                CallbackProblem::UnknownState
            }
            .into());
        };
        let owner_session: String = row.try_get("session_id").map_err(internal)?;
        let owner_merchant: i64 = row.try_get("merchant_id").map_err(internal)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(internal)?;
        if owner_merchant != merchant_id
            || !session_id.is_some_and(|s| {
                crate::secret::constant_time_eq(crate::sessions::stored_id(s).as_bytes(), owner_session.as_bytes())
            })
        {
            // Not this browser's: its connect session (if any) is not this browser's to end.
            return Err(CallbackProblem::OtherSession.into());
        }
        let connect_session: Option<String> = row.try_get("connect_session_id").map_err(internal)?;
        let failed = |problem: CallbackProblem| CallbackFailure {
            problem,
            connect_session: connect_session.clone(),
        };
        if expires_at <= now {
            return Err(failed(CallbackProblem::ExpiredState));
        }
        if let Some(error) = params.error.as_deref() {
            return Err(failed(if error == "access_denied" {
                CallbackProblem::Declined
            } else {
                CallbackProblem::AirwallexError(error.chars().take(64).collect())
            }));
        }
        let code = params
            .code
            .as_ref()
            .filter(|c| !c.expose().is_empty())
            .ok_or_else(|| failed(CallbackProblem::ExchangeFailed))?;
        let key_id: String = row.try_get("key_id").map_err(|e| failed(internal(e)))?;
        let sealed: Vec<u8> = row.try_get("pkce_verifier").map_err(|e| failed(internal(e)))?;
        let verifier = self
            .vault
            .cipher()
            .decrypt_string(&key_id, &sealed, &verifier_aad(&hash))
            .map_err(|_| failed(CallbackProblem::Internal))?;
        let stored_pin: Option<String> = row.try_get("account_pin").map_err(|e| failed(internal(e)))?;
        let pin = match (
            stored_pin.as_deref().and_then(AccountPin::parse),
            connect_session.as_deref(),
        ) {
            (Some(pin), _) => pin,
            (None, None) => AccountPin::UnlessDisconnected,
            // Started before pins were stored: the connect session decides.
            (None, Some(id)) => {
                let allowed: Option<i64> =
                    sqlx::query_scalar("SELECT allow_account_change FROM connect_sessions WHERE id = $1")
                        .bind(id)
                        .fetch_optional(self.db.pool())
                        .await
                        .map_err(|e| failed(internal(e)))?;
                AccountPin::of_connect_session(allowed.unwrap_or(0) != 0)
            }
        };
        let actor = format!("merchant:{merchant_id}");
        match self
            .connect(
                merchant_id,
                code,
                &self.settings.redirect_uri,
                Some(&PkceCodeVerifier::new(verifier)),
                &actor,
                pin,
            )
            .await
        {
            Ok((connection_id, account, kind)) => Ok(Completed {
                connection_id,
                account,
                kind,
                connect_session,
            }),
            Err(ConnectError::Exchange(error) | ConnectError::Account(error)) => {
                tracing::warn!(merchant_id, error = %error, "authorization could not be completed");
                Err(failed(match error {
                    AirwallexError::Connect
                    | AirwallexError::Timeout
                    | AirwallexError::Transport
                    | AirwallexError::Server { .. } => CallbackProblem::Unreachable,
                    _ => CallbackProblem::ExchangeFailed,
                }))
            }
            Err(ConnectError::AccountMismatch { expected }) => {
                tracing::warn!(
                    merchant_id,
                    "a consent for another Airwallex account was refused; nothing stored"
                );
                Err(failed(CallbackProblem::AccountMismatch { expected }))
            }
            Err(ConnectError::Database(error)) => Err(failed(internal(error))),
        }
    }

    /// Exchanges an authorization code and stores the new connection (or reconnection)
    /// with the account details; tokens are committed before this returns.
    pub async fn connect(
        &self,
        merchant_id: i64,
        code: &AuthorizationCode,
        redirect_uri: &str,
        code_verifier: Option<&PkceCodeVerifier>,
        actor: &str,
        pin: AccountPin,
    ) -> Result<(i64, AccountDetails, EventKind), ConnectError> {
        let client = self.vault.client();
        let tokens = client
            .exchange_code(code, redirect_uri, code_verifier)
            .await
            .map_err(ConnectError::Exchange)?;
        let account = client
            .account(&tokens.access_token)
            .await
            .map_err(ConnectError::Account)?;
        let store = self.vault.store();
        let previous = store.by_merchant(merchant_id).await.map_err(ConnectError::Database)?;
        let expected = match (pin, previous) {
            (AccountPin::Free, _) | (_, None) => None,
            (AccountPin::UnlessDisconnected, Some(row)) if row.status == ConnectionStatus::Disconnected => None,
            (_, Some(row)) => row.account_id,
        };
        if let Some(expected) = expected {
            if account.id.as_deref() != Some(expected.as_str()) {
                // The tokens of that other account are dropped here, never stored.
                return Err(ConnectError::AccountMismatch { expected });
            }
        }
        let now = self.clock.now();
        let connection_id = store
            .ensure_row(merchant_id, now)
            .await
            .map_err(ConnectError::Database)?;
        let sealed = self.vault.seal(connection_id, &tokens, now);
        let account_json = serde_json::to_string(&account).unwrap_or_default();
        let kind = store
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
        Ok((connection_id, account, kind))
    }

    /// Deletes authorization requests that can no longer be completed.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(self.clock.now() - STATE_TTL_SECONDS)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

fn internal(error: sqlx::Error) -> CallbackProblem {
    tracing::error!(%error, "callback database error");
    CallbackProblem::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_params_never_print_the_code() {
        let params: CallbackParams =
            serde_urlencoded::from_str("code=secret-code-123&state=s&error=access_denied").unwrap();
        let shown = format!("{params:?}");
        assert!(!shown.contains("secret-code-123"), "{shown}");
        assert!(shown.contains("AuthorizationCode([redacted])"), "{shown}");
    }
}
