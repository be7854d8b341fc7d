//! Everything the web layer calls, bundled once at start-up and shared (cheap to clone).

use std::sync::Arc;

use secrecy::SecretString;

use crate::accounts::Accounts;
use crate::db::Database;
use crate::keeper::Keeper;
use crate::store::ConnectionStore;
use crate::time::Clock;
use crate::vault::TokenVault;

/// How this app asks Airwallex for authorization.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub authorize_url: String,
    pub redirect_uri: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

#[derive(Clone)]
pub struct Services {
    pub db: Database,
    pub clock: Clock,
    pub accounts: Accounts,
    pub vault: Arc<TokenVault>,
    pub keeper: Arc<Keeper>,
    pub oauth: OAuthSettings,
    /// Reuse account details this long (seconds); 0 fetches on every view.
    pub account_cache_seconds: i64,
    pub webhook_secret: Option<SecretString>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("oauth", &self.oauth)
            .field("account_cache_seconds", &self.account_cache_seconds)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Services {
    pub fn store(&self) -> &ConnectionStore {
        self.vault.store()
    }
}
