//! Airwallex's OAuth rules as the simulator keeps them: single-use codes bound to their
//! redirect URI and PKCE challenge, 5-minute access tokens, refresh tokens that rotate on
//! use with a grace minute, reuse that kills the connection, revocation.

use super::*;

impl SimState {
    /// Issues a single-use authorization code for an approved consent.
    pub fn issue_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        account_id: &str,
        scopes: Vec<String>,
        code_challenge: Option<String>,
    ) -> String {
        let code = random_urlsafe(24);
        let record = AuthCode {
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            account_id: account_id.to_string(),
            scopes,
            code_challenge,
            expires_at: self.now() + CODE_TTL,
            used: false,
        };
        self.lock().codes.insert(code.clone(), record);
        code
    }

    /// `grant_type=authorization_code`: single use, 10-minute life, same redirect URI,
    /// PKCE verified when a challenge was sent.
    pub fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<TokenGrant, TokenError> {
        let now = self.now();
        let mut data = self.lock();
        let record = data
            .codes
            .get_mut(code)
            .ok_or(TokenError::InvalidGrant("invalid authorization code"))?;
        if record.used {
            return Err(TokenError::InvalidGrant("authorization code already used"));
        }
        record.used = true;
        if record.expires_at <= now {
            return Err(TokenError::InvalidGrant("authorization code expired"));
        }
        if record.client_id != client_id {
            return Err(TokenError::InvalidGrant(
                "authorization code was issued to another client",
            ));
        }
        if record.redirect_uri != redirect_uri {
            return Err(TokenError::InvalidGrant(
                "redirect_uri does not match the authorization request",
            ));
        }
        if let Some(challenge) = &record.code_challenge {
            let Some(verifier) = code_verifier else {
                return Err(TokenError::InvalidGrant("code_verifier is required"));
            };
            if pkce_challenge(verifier) != *challenge {
                return Err(TokenError::InvalidGrant("code_verifier does not match code_challenge"));
            }
        }
        let connection = SimConnection {
            id: format!("conn_{}", random_urlsafe(9)),
            client_id: record.client_id.clone(),
            account_id: record.account_id.clone(),
            scopes: record.scopes.clone(),
            status: ConnectionStatus::Active,
            created_at: now,
            refreshing: false,
        };
        let grant = issue_tokens(&mut data, &connection, now, self.config.refresh_token_ttl);
        data.connections.insert(connection.id.clone(), connection);
        Ok(grant)
    }

    /// First half of `grant_type=refresh_token`: finds the connection and marks a refresh
    /// in flight, or answers 429 when one already is.
    pub fn begin_refresh(&self, client_id: &str, refresh_token: &str) -> Result<String, TokenError> {
        let mut data = self.lock();
        let connection_id = data
            .refresh_tokens
            .get(refresh_token)
            .map(|r| r.connection_id.clone())
            .ok_or(TokenError::InvalidGrant("invalid or expired refresh token"))?;
        let connection = data
            .connections
            .get_mut(&connection_id)
            .ok_or(TokenError::InvalidGrant("invalid or expired refresh token"))?;
        if connection.client_id != client_id {
            return Err(TokenError::InvalidGrant("invalid or expired refresh token"));
        }
        if connection.refreshing {
            data.counters.too_many_requests += 1;
            return Err(TokenError::ConcurrentRefresh);
        }
        connection.refreshing = true;
        Ok(connection_id)
    }

    /// Second half: applies rotation, the grace minute and reuse detection. Returns the
    /// grant, or the error and, when reuse killed the connection, the revocation to announce.
    pub fn finish_refresh(
        &self,
        connection_id: &str,
        refresh_token: &str,
    ) -> (Result<TokenGrant, TokenError>, Option<Revocation>) {
        let now = self.now();
        let mut data = self.lock();
        if let Some(connection) = data.connections.get_mut(connection_id) {
            connection.refreshing = false;
        }
        let Some(connection) = data.connections.get(connection_id).cloned() else {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        };
        if connection.status == ConnectionStatus::Revoked {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        }
        let Some(record) = data.refresh_tokens.get(refresh_token) else {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        };
        if let Some(superseded_at) = record.superseded_at {
            if now > superseded_at + GRACE_SECONDS {
                // A superseded token outside its grace minute: treated as a leak.
                data.counters.reuse_detections += 1;
                let revocation = self.revoke_locked(&mut data, connection_id);
                return (
                    Err(TokenError::InvalidGrant("invalid or expired refresh token")),
                    revocation,
                );
            }
        }
        if record.expires_at <= now {
            return (Err(TokenError::InvalidGrant("invalid or expired refresh token")), None);
        }
        // Rotation: every live refresh token of this connection is superseded now.
        for other in data.refresh_tokens.values_mut() {
            if other.connection_id == connection_id && other.superseded_at.is_none() {
                other.superseded_at = Some(now);
            }
        }
        let grant = issue_tokens(&mut data, &connection, now, self.config.refresh_token_ttl);
        data.counters.refreshes += 1;
        *data
            .counters
            .refreshes_per_connection
            .entry(connection_id.to_string())
            .or_default() += 1;
        (Ok(grant), None)
    }

    /// Checks a bearer token for the account API; returns the account it may read.
    pub fn authenticate(&self, access_token: &str) -> Result<SimAccount, (&'static str, &'static str)> {
        let now = self.now();
        let data = self.lock();
        let record = data
            .access_tokens
            .get(access_token)
            .ok_or(("credentials_invalid", "The access token is invalid."))?;
        let connection = data
            .connections
            .get(&record.connection_id)
            .ok_or(("credentials_invalid", "The access token is invalid."))?;
        if connection.status == ConnectionStatus::Revoked {
            return Err(("credentials_invalid", "The access token has been revoked."));
        }
        if record.expires_at <= now {
            return Err(("credentials_expired", "The access token has expired."));
        }
        if !connection.scopes.iter().any(|s| grants_account_details(s)) {
            return Err(("insufficient_scope", "The token lacks the account_details:read scope."));
        }
        data.accounts
            .iter()
            .find(|a| a.id == connection.account_id)
            .cloned()
            .ok_or(("credentials_invalid", "The account no longer exists."))
    }

    /// Revokes a connection: both of its tokens stop working at once.
    pub fn revoke(&self, connection_id: &str) -> Option<Revocation> {
        let mut data = self.lock();
        self.revoke_locked(&mut data, connection_id)
    }

    fn revoke_locked(&self, data: &mut SimData, connection_id: &str) -> Option<Revocation> {
        let connection = data.connections.get_mut(connection_id)?;
        if connection.status == ConnectionStatus::Revoked {
            return None;
        }
        connection.status = ConnectionStatus::Revoked;
        let connection = connection.clone();
        data.counters.revocations += 1;
        let client = self.client(&connection.client_id);
        Some(Revocation {
            webhook_url: client.and_then(|c| c.webhook_url.clone()),
            webhook_secret: client.and_then(|c| c.webhook_secret.clone()),
            connection,
        })
    }
}

fn issue_tokens(data: &mut SimData, connection: &SimConnection, now: i64, refresh_ttl: i64) -> TokenGrant {
    let access_token = format!("awx_at_{}", random_urlsafe(32));
    let refresh_token = format!("awx_rt_{}", random_urlsafe(32));
    data.access_tokens.insert(
        access_token.clone(),
        AccessTokenRecord {
            connection_id: connection.id.clone(),
            expires_at: now + ACCESS_TOKEN_TTL,
        },
    );
    data.refresh_tokens.insert(
        refresh_token.clone(),
        RefreshTokenRecord {
            connection_id: connection.id.clone(),
            expires_at: now + refresh_ttl,
            superseded_at: None,
        },
    );
    TokenGrant {
        access_token,
        refresh_token,
        expires_in: ACCESS_TOKEN_TTL,
        refresh_token_expires_in: refresh_ttl,
        token_type: "Bearer",
        scope: connection.scopes.join(" "),
    }
}

/// The S256 PKCE challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Scopes the simulator knows, in the short and the long form.
pub const KNOWN_SCOPES: [&str; 2] = ["account_details:read", "r:awx_action:settings.account_details_view"];

pub fn grants_account_details(scope: &str) -> bool {
    KNOWN_SCOPES.contains(&scope)
}
