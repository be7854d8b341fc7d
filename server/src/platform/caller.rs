//! Who calls: the service key a request carries (`Authorization: Bearer awx_pk_…`),
//! checked and within its rate limit, and the merchant its path names.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;

use awx_onboard::platform::keys::{ApiKey, Scope};

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
        let path: Result<Path<i64>, PathRejection> = Path::from_request_parts(parts, state).await;
        path.map(|Path(id)| MerchantPath(id))
            .map_err(|_| ApiError::BadRequest("merchant_id must be a whole number".into()))
    }
}
