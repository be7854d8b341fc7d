//! Everything the web layer calls, bundled once at start-up and shared (cheap to clone).
//! Each concern is its own type in its own module; this only holds them together.

use std::sync::Arc;

use secrecy::SecretString;

use crate::accounts::lifecycle::AccountLinks;
use crate::accounts::second_factor::SecondFactors;
use crate::accounts::Accounts;
use crate::db::Database;
use crate::keeper::Keeper;
use crate::mail::{MailOutbox, MailSettings, Mailer, SmtpUrlError};
use crate::oauth::{Authorization, OAuthSettings};
use crate::operator::team::Team;
use crate::operator::OperatorDesk;
use crate::outbox_queue::Schedule;
use crate::overview::MerchantConnections;
use crate::platform::audit::TokenReads;
use crate::platform::connect_sessions::{ConnectSessions, ConnectSettings};
use crate::platform::directory::Directory;
use crate::platform::keys::ApiKeys;
use crate::platform::outbox::{Deliverer, TargetPolicy, WebhookEndpoints};
use crate::platform::proxy_calls::ProxyCalls;
use crate::retention::Retention;
use crate::security_log::SecurityLog;
use crate::store::ConnectionStore;
use crate::time::Clock;
use crate::trends::Trends;
use crate::vault::TokenVault;

#[derive(Clone)]
pub struct Services {
    pub db: Database,
    pub clock: Clock,
    pub accounts: Accounts,
    pub vault: Arc<TokenVault>,
    pub keeper: Arc<Keeper>,
    /// Starting and completing merchants' authorizations.
    pub authorization: Authorization,
    /// A merchant's view of their connection, and disconnecting it.
    pub connections: MerchantConnections,
    /// The operator dashboard and its actions.
    pub operator: OperatorDesk,
    pub webhook_secret: Option<SecretString>,
    /// The platform API's service keys.
    pub api_keys: ApiKeys,
    /// Connections as the platform API lists them.
    pub directory: Directory,
    /// Who read which access token.
    pub token_reads: TokenReads,
    /// The platform's webhook endpoints and their deliveries.
    pub webhooks: WebhookEndpoints,
    /// Sends due webhook deliveries (a task on every instance).
    pub deliverer: Arc<Deliverer>,
    /// Emails to merchants and operators: the outbox.
    pub mail: MailOutbox,
    /// Sends the outbox (a task on every instance).
    pub mailer: Arc<Mailer>,
    /// The operators' trends.
    pub trends: Trends,
    /// Links the platform creates for its own merchants to connect.
    pub connect_sessions: ConnectSessions,
    /// Every call made to Airwallex through the proxy.
    pub proxy_calls: ProxyCalls,
    /// Accounts' second factors (TOTP and recovery codes).
    pub second_factors: SecondFactors,
    /// Operators managing operators: invitations, removals, sessions ended.
    pub team: Team,
    /// What happened to the keys of the house (append-only).
    pub security_log: SecurityLog,
    /// Prunes what is kept only for a while.
    pub retention: Retention,
    /// Verification and reset links, and deleting an account.
    pub links: AccountLinks,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("oauth", self.authorization.settings())
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// What [`Services::new`] needs beyond the vault.
pub struct ServiceSettings {
    pub oauth: OAuthSettings,
    pub account_cache_seconds: i64,
    pub webhook_secret: Option<SecretString>,
    /// Concurrent password hashes allowed (each takes 19 MiB and a core).
    pub hashing_slots: usize,
    /// Sign-ups allowed per client address and hour.
    pub sign_ups_per_address_per_hour: i64,
    pub deliveries: Schedule,
    pub mail: MailSettings,
    /// From this hour (UTC) on, the operators' daily digest is due.
    pub digest_hour: u32,
    pub connect: ConnectSettings,
    /// Where webhooks may go.
    pub webhook_targets: TargetPolicy,
    /// `RETENTION_DAYS`.
    pub retention_days: i64,
}

impl Services {
    /// Fails only on a mail setting that cannot work (checked by the configuration first).
    pub fn new(
        vault: Arc<TokenVault>,
        keeper: Arc<Keeper>,
        settings: ServiceSettings,
    ) -> Result<Services, SmtpUrlError> {
        let db = vault.store().db().clone();
        let clock = vault.clock().clone();
        let mail = MailOutbox::new(db.clone(), clock.clone(), settings.digest_hour);
        let mailer = Arc::new(
            Mailer::new(db.clone(), clock.clone(), mail.clone(), settings.mail)?.with_cipher(vault.shared_cipher()),
        );
        Ok(Services {
            trends: Trends::new(db.clone(), clock.clone()),
            connect_sessions: ConnectSessions::new(db.clone(), clock.clone(), settings.connect),
            proxy_calls: ProxyCalls::new(db.clone(), clock.clone()),
            second_factors: SecondFactors::new(db.clone(), clock.clone(), vault.shared_cipher()),
            team: Team::new(db.clone(), clock.clone(), vault.shared_cipher()),
            security_log: SecurityLog::new(db.clone(), clock.clone()),
            retention: Retention::new(db.clone(), clock.clone(), settings.retention_days),
            links: AccountLinks::new(db.clone(), clock.clone(), vault.shared_cipher()),
            mail,
            mailer,
            accounts: Accounts::with_sign_up_limit(
                db.clone(),
                clock.clone(),
                settings.hashing_slots,
                settings.sign_ups_per_address_per_hour,
            ),
            authorization: Authorization::new(db.clone(), clock.clone(), vault.clone(), settings.oauth),
            connections: MerchantConnections::new(vault.clone(), clock.clone(), settings.account_cache_seconds),
            operator: OperatorDesk::new(db.clone(), clock.clone(), vault.clone()),
            api_keys: ApiKeys::new(db.clone(), clock.clone()),
            directory: Directory::new(db.clone()),
            token_reads: TokenReads::new(db.clone(), clock.clone()),
            webhooks: WebhookEndpoints::new(
                db.clone(),
                clock.clone(),
                vault.shared_cipher(),
                settings.webhook_targets,
            ),
            deliverer: Arc::new(Deliverer::new(
                db.clone(),
                clock.clone(),
                vault.shared_cipher(),
                settings.deliveries,
                settings.webhook_targets,
            )),
            db,
            clock,
            vault,
            keeper,
            webhook_secret: settings.webhook_secret,
        })
    }

    pub fn store(&self) -> &ConnectionStore {
        self.vault.store()
    }
}
