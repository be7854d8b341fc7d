//! Who calls: the service key a request carries (`Authorization: Bearer awx_pk_…`),
//! checked and within its rate limit, and the merchant its path names.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;

use awx_onboard::platform::connect_sessions::check_external_id;
use awx_onboard::platform::keys::{ApiKey, Refused, Scope};

use super::errors::ApiError;
use crate::state::AppState;

/// The key a request carries, checked, within its rate limit.
pub struct Caller(pub ApiKey);

impl Caller {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }

    /// At least one of `scopes`.
    pub fn require_any(&self, scopes: &'static [Scope]) -> Result<(), ApiError> {
        if scopes.iter().any(|scope| self.0.allows(*scope)) {
            Ok(())
        } else {
            Err(ApiError::ForbiddenAll(scopes))
        }
    }

    /// Who this key is in audit logs: `key:<id>`.
    pub fn actor(&self) -> String {
        format!("key:{}", self.0.id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let key = match state.services.api_keys.authenticate(presented).await {
            Ok(Ok(key)) => key,
            Ok(Err(Refused::Expired)) => return Err(ApiError::KeyExpired),
            Ok(Err(_)) => return Err(ApiError::Unauthorized),
            Err(_) => return Err(ApiError::Internal),
        };
        state
            .rate_limiter
            .take(&key.id, state.config.platform.rate_limit)
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        Ok(Caller(key))
    }
}

/// The merchant named by the path's `{merchant_id}`, or a JSON 400.
pub struct MerchantPath(pub i64);

impl FromRequestParts<AppState> for MerchantPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<MerchantPath, ApiError> {
        path_param(parts, state, "merchant_id")
            .await
            .and_then(|id| id.parse::<i64>().ok())
            .map(MerchantPath)
            .ok_or_else(|| ApiError::BadRequest("merchant_id must be a whole number".into()))
    }
}

/// The path's `{external_id}` (the platform's own id for a merchant), checked for shape;
/// looked up with [`ExternalId::merchant`] once the key's scope is known to allow the call
/// (a key without it learns nothing of which ids exist).
pub struct ExternalId(pub String);

impl FromRequestParts<AppState> for ExternalId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ExternalId, ApiError> {
        let external_id = path_param(parts, state, "external_id")
            .await
            .ok_or_else(|| ApiError::BadRequest("external_id is not valid".into()))?;
        check_external_id(&external_id).map_err(|error| ApiError::BadRequest(error.to_string()))?;
        Ok(ExternalId(external_id))
    }
}

impl ExternalId {
    /// The merchant, or a JSON 404.
    pub async fn merchant(&self, state: &AppState) -> Result<i64, ApiError> {
        match state.services.connect_sessions.merchant_of(&self.0).await {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(ApiError::Missing("No merchant with this external id.")),
            Err(error) => Err(super::errors::internal(error)),
        }
    }
}

/// One named parameter of the route's path, decoded (routes may have more than one).
async fn path_param(parts: &mut Parts, state: &AppState, name: &str) -> Option<String> {
    let path: Result<Path<std::collections::HashMap<String, String>>, PathRejection> =
        Path::from_request_parts(parts, state).await;
    path.ok().and_then(|Path(mut params)| params.remove(name))
}
