//! Access tokens for the platform, through the vault (one refresh for all callers, across
//! instances), every read recorded.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use awx_onboard::platform::keys::Scope;
use awx_onboard::vault::VaultError;

use super::caller::{Caller, ExternalId, MerchantPath};
use super::connections::reconnect_url;
use super::errors::{internal, ApiError, ErrorBody, KeyAnswers, MerchantAnswers};
use crate::state::AppState;

/// A valid Airwallex access token for the merchant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessTokenOut {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// RFC 3339; at least `REFRESH_MARGIN_SECONDS` away.
    pub expires_at: String,
    pub account_id: Option<String>,
}

/// A valid access token for the merchant's Airwallex account, refreshed if needed (one
/// refresh for all callers, across instances). Every read is recorded for operators.
#[utoipa::path(
    post,
    path = "/api/platform/v1/merchants/{merchant_id}/access-token",
    params(("merchant_id" = i64, Path, description = "The merchant's id in awx-onboard")),
    responses(
        (status = 200, description = "A token with at least REFRESH_MARGIN_SECONDS left", body = AccessTokenOut),
        (status = 403, description = "The key lacks tokens:read", body = ErrorBody),
        (status = 409, description = "`needs_reconnect` (with `reason`) or `not_connected`", body = ErrorBody),
        (status = 503, description = "`airwallex_unavailable`; see Retry-After", body = ErrorBody),
        KeyAnswers,
        MerchantAnswers,
    ),
    security(("bearer" = [])),
    tag = "tokens"
)]
pub async fn access_token(
    State(state): State<AppState>,
    caller: Caller,
    MerchantPath(merchant_id): MerchantPath,
) -> Result<Json<AccessTokenOut>, ApiError> {
    caller.require(Scope::TokensRead)?;
    token_for(&state, &caller, merchant_id).await.map(Json)
}

/// [`access_token`], the merchant named by the platform's id for them.
#[utoipa::path(
    post,
    path = "/api/platform/v1/merchants/external/{external_id}/access-token",
    params(("external_id" = String, Path, description = "The platform's id for the merchant")),
    responses(
        (status = 200, description = "A token with at least REFRESH_MARGIN_SECONDS left", body = AccessTokenOut),
        (status = 400, description = "external_id is not valid", body = ErrorBody),
        (status = 403, description = "The key lacks tokens:read", body = ErrorBody),
        (status = 404, description = "No merchant with this external id", body = ErrorBody),
        (status = 409, description = "`needs_reconnect` (with `reason`) or `not_connected`", body = ErrorBody),
        (status = 503, description = "`airwallex_unavailable`; see Retry-After", body = ErrorBody),
        KeyAnswers,
    ),
    security(("bearer" = [])),
    tag = "tokens"
)]
pub async fn access_token_by_external_id(
    State(state): State<AppState>,
    caller: Caller,
    external: ExternalId,
) -> Result<Json<AccessTokenOut>, ApiError> {
    caller.require(Scope::TokensRead)?;
    let merchant_id = external.merchant(&state).await?;
    token_for(&state, &caller, merchant_id).await.map(Json)
}

async fn token_for(state: &AppState, caller: &Caller, merchant_id: i64) -> Result<AccessTokenOut, ApiError> {
    let services = &state.services;
    let grant = match services.vault.access_token_for(merchant_id).await {
        Ok(grant) => grant,
        Err(error) => return Err(refusal(state, merchant_id, error).await),
    };
    // No token leaves unrecorded.
    services
        .token_reads
        .record(&caller.0.id, grant.connection_id)
        .await
        .map_err(internal)?;
    Ok(AccessTokenOut {
        access_token: grant.token.expose().to_string(),
        token_type: "Bearer".into(),
        expires_at: awx_onboard::time::rfc3339(grant.expires_at),
        account_id: grant.account_id,
    })
}

/// What the API answers when the vault has no token for the merchant: 404 (no such
/// merchant), 409 `not_connected` or `needs_reconnect`, 503 `airwallex_unavailable`.
pub async fn refusal(state: &AppState, merchant_id: i64, error: VaultError) -> ApiError {
    match error {
        VaultError::NotConnected => match state.services.directory.of_merchant(merchant_id).await {
            Ok(None) => ApiError::NotFound,
            Ok(Some(_)) => ApiError::NotConnected {
                message: "The merchant has not connected Airwallex.",
                reconnect_url: reconnect_url(state),
            },
            Err(error) => internal(error),
        },
        VaultError::Disconnected => ApiError::NotConnected {
            message: "The merchant disconnected Airwallex.",
            reconnect_url: reconnect_url(state),
        },
        VaultError::NeedsReconnect(reason) => ApiError::NeedsReconnect {
            reason: reason.as_str().to_string(),
            reconnect_url: reconnect_url(state),
        },
        VaultError::Unavailable => ApiError::Unavailable,
        error => internal(error),
    }
}
