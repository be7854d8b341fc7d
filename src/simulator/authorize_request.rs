//! What an authorization request (`GET /oauth/authorize` and its consent form) carries,
//! and how the simulator checks it, as Airwallex does.

use serde::Deserialize;

use super::state::grants_account_details;
use super::Simulator;

/// Query of `GET /oauth/authorize`, and the hidden fields of the consent form.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub sign_up: Option<String>,
}

impl AuthorizeParams {
    pub fn sign_up(&self) -> bool {
        self.sign_up.as_deref() == Some("true")
    }
}

/// A checked authorization request.
pub struct ValidAuthorize {
    pub app_name: String,
    pub scopes: Vec<String>,
}

/// Why an authorization request is refused.
pub enum AuthorizeFailure {
    /// The client or redirect URI cannot be trusted: show an error, never redirect.
    Page(String),
    /// The redirect URI is registered: report the error to the client there.
    Redirect {
        error: &'static str,
        description: &'static str,
    },
}

/// Checks an authorization request as Airwallex does.
pub fn check_authorize(sim: &Simulator, params: &AuthorizeParams) -> Result<ValidAuthorize, AuthorizeFailure> {
    let client_id = params.client_id.as_deref().unwrap_or_default();
    let Some(client) = sim.inner.client(client_id) else {
        return Err(AuthorizeFailure::Page(format!(
            "Unknown client_id {client_id:?}. The app that sent you here is not registered with Airwallex."
        )));
    };
    let redirect_uri = params.redirect_uri.as_deref().unwrap_or_default();
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(AuthorizeFailure::Page(format!(
            "The redirect_uri {redirect_uri:?} is not registered for this app."
        )));
    }
    let fail = |error: &'static str, description: &'static str| AuthorizeFailure::Redirect { error, description };
    if params.response_type.as_deref() != Some("code") {
        return Err(fail("unsupported_response_type", "response_type must be code"));
    }
    if params.state.as_deref().unwrap_or_default().is_empty() {
        return Err(fail("invalid_request", "state is required"));
    }
    let scopes: Vec<String> = params
        .scope
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() || !scopes.iter().all(|s| grants_account_details(s)) {
        return Err(fail("invalid_scope", "unknown or missing scope"));
    }
    match (
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    ) {
        (None, None) => {}
        (Some(challenge), Some("S256")) if challenge.len() >= 43 => {}
        _ => {
            return Err(fail(
                "invalid_request",
                "PKCE needs a code_challenge with code_challenge_method=S256",
            ))
        }
    }
    Ok(ValidAuthorize {
        app_name: client.app_name.clone(),
        scopes,
    })
}
