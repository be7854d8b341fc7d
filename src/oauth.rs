//! The authorization flow: starting it (a single-use `state` bound to the merchant's
//! session, a PKCE S256 verifier kept encrypted on the server for 10 minutes) and
//! completing it at the callback (state consumed atomically, code exchanged, account
//! fetched, connection stored). A failed callback stores nothing.

use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::airwallex::{AccountDetails, AirwallexError};
use crate::crypto::associated_data;
use crate::secret::{random_urlsafe, Token};
use crate::services::Services;
use crate::vault::ConnectError;

/// How long a started authorization may take.
pub const STATE_TTL_SECONDS: i64 = 600;

/// What went wrong at the callback; each has its own page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackProblem {
    #[error("the callback had no state")]
    MissingState,
    #[error("the state is unknown")]
    UnknownState,
    #[error("the state was already used")]
    ReusedState,
    #[error("the state expired")]
    ExpiredState,
    #[error("the state belongs to another session")]
    OtherSession,
    #[error("the merchant declined")]
    Declined,
    #[error("Airwallex reported an error")]
    AirwallexError(String),
    #[error("the code exchange failed")]
    ExchangeFailed,
    #[error("Airwallex could not be reached")]
    Unreachable,
    #[error("internal error")]
    Internal,
}

impl CallbackProblem {
    /// A stable slug for URLs and logs.
    pub fn slug(&self) -> &'static str {
        match self {
            CallbackProblem::MissingState => "missing_state",
            CallbackProblem::UnknownState => "unknown_state",
            CallbackProblem::ReusedState => "reused_state",
            CallbackProblem::ExpiredState => "expired_state",
            CallbackProblem::OtherSession => "other_session",
            CallbackProblem::Declined => "declined",
            CallbackProblem::AirwallexError(_) => "airwallex_error",
            CallbackProblem::ExchangeFailed => "exchange_failed",
            CallbackProblem::Unreachable => "unreachable",
            CallbackProblem::Internal => "internal",
        }
    }
}

/// The query of `GET /oauth/callback`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

fn verifier_aad(hash: &str) -> Vec<u8> {
    associated_data("oauth_states", 0, &format!("pkce_verifier:{hash}"))
}

impl Services {
    /// Starts an authorization for a signed-in merchant; returns the authorize URL to
    /// send the browser to.
    pub async fn start_authorization(
        &self,
        merchant_id: i64,
        session_id: &str,
        sign_up: bool,
    ) -> Result<String, sqlx::Error> {
        let state = random_urlsafe(32);
        let verifier = random_urlsafe(32);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let hash = state_hash(&state);
        let cipher = self.vault.cipher();
        let now = self.clock.now();
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, session_id, merchant_id, pkce_verifier, key_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&hash)
        .bind(session_id)
        .bind(merchant_id)
        .bind(cipher.encrypt(verifier.as_bytes(), &verifier_aad(&hash)))
        .bind(cipher.current_key_id())
        .bind(now)
        .bind(now + STATE_TTL_SECONDS)
        .execute(self.db.pool())
        .await?;

        let mut url = url::Url::parse(&self.oauth.authorize_url).expect("authorize URL was checked at start-up");
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.oauth.client_id)
                .append_pair("redirect_uri", &self.oauth.redirect_uri)
                .append_pair("scope", &self.oauth.scopes.join(" "))
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
    pub async fn complete_authorization(
        &self,
        merchant_id: i64,
        session_id: Option<&str>,
        params: &CallbackParams,
    ) -> Result<(i64, AccountDetails), CallbackProblem> {
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
             RETURNING session_id, merchant_id, pkce_verifier, key_id, expires_at",
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
            });
        };
        let owner_session: String = row.try_get("session_id").map_err(internal)?;
        let owner_merchant: i64 = row.try_get("merchant_id").map_err(internal)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(internal)?;
        if expires_at <= now {
            return Err(CallbackProblem::ExpiredState);
        }
        if owner_merchant != merchant_id
            || !session_id.is_some_and(|s| crate::secret::constant_time_eq(s.as_bytes(), owner_session.as_bytes()))
        {
            return Err(CallbackProblem::OtherSession);
        }
        if let Some(error) = params.error.as_deref() {
            return Err(if error == "access_denied" {
                CallbackProblem::Declined
            } else {
                CallbackProblem::AirwallexError(error.chars().take(64).collect())
            });
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(CallbackProblem::ExchangeFailed)?;
        let key_id: String = row.try_get("key_id").map_err(internal)?;
        let sealed: Vec<u8> = row.try_get("pkce_verifier").map_err(internal)?;
        let verifier = self
            .vault
            .cipher()
            .decrypt_string(&key_id, &sealed, &verifier_aad(&hash))
            .map_err(|_| CallbackProblem::Internal)?;
        let actor = format!("merchant:{merchant_id}");
        match self
            .vault
            .connect(
                merchant_id,
                &Token::new(code),
                &self.oauth.redirect_uri,
                Some(&Token::new(verifier)),
                &actor,
            )
            .await
        {
            Ok(done) => Ok(done),
            Err(ConnectError::Exchange(error) | ConnectError::Account(error)) => {
                tracing::warn!(merchant_id, error = %error, "authorization could not be completed");
                Err(match error {
                    AirwallexError::Connect
                    | AirwallexError::Timeout
                    | AirwallexError::Transport
                    | AirwallexError::Server { .. } => CallbackProblem::Unreachable,
                    _ => CallbackProblem::ExchangeFailed,
                })
            }
            Err(ConnectError::Database(error)) => Err(internal(error)),
        }
    }

    /// Deletes authorization requests that can no longer be completed.
    pub async fn sweep_oauth_states(&self) -> Result<u64, sqlx::Error> {
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
