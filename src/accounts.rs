//! Merchant and operator accounts: parsed emails and a password policy ([`credentials`]),
//! argon2id hashes through a bounded queue ([`hashing`]), and log-ins and
//! sign-ups bounded in the database ([`throttle`]) that cost the same whether or not the
//! account exists.

mod credentials;
mod hashing;
pub mod lifecycle;
pub mod second_factor;
mod throttle;

use std::fmt;
use std::sync::Arc;

use sqlx::Row;

use crate::db::{Database, WriteTx};
use crate::time::Clock;

pub use credentials::{check_new_password, Email, Password, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use hashing::{hash_blocking, verify_blocking, HashingPool, Priority};
use throttle::Throttle;
pub use throttle::{
    client_key, MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS, MAX_FAILURES_PER_ADDRESS, MAX_SIGN_UPS_PER_ADDRESS,
    SIGN_UP_WINDOW_SECONDS, THROTTLE_WINDOW_SECONDS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Merchant,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Merchant => "merchant",
            Role::Operator => "operator",
        }
    }
}

/// A signed-in person. No password hash in here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub role: Role,
}

/// The account signed in on the current request (`None`: anonymous), looked up once per
/// request by the server and read from the request's extensions by the pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAccount(pub Option<Account>);

/// Who may enter a part of the app. The one rule that pages, plain handlers and server
/// functions all apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Anyone,
    SignedIn,
    Operator,
}

/// Why [`Access::check`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Nobody is signed in: log in first.
    LoginRequired,
    /// Signed in, but not as an operator.
    OperatorsOnly,
}

impl Access {
    pub fn check(self, account: Option<&Account>) -> Result<(), Denied> {
        match (self, account) {
            (Access::Anyone, _) => Ok(()),
            (_, None) => Err(Denied::LoginRequired),
            (Access::SignedIn, Some(_)) => Ok(()),
            (Access::Operator, Some(account)) if account.role == Role::Operator => Ok(()),
            (Access::Operator, Some(_)) => Err(Denied::OperatorsOnly),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("Enter a valid email address, like name@example.com.")]
    InvalidEmail,
    #[error("Use at least 12 characters for your password.")]
    PasswordTooShort,
    #[error("Use at most 256 characters for your password.")]
    PasswordTooLong,
    #[error(
        "That password is too common or too easy to guess: it is one of the most used passwords, \
         perhaps with digits or symbols added. Try a phrase of three or four unrelated words."
    )]
    PasswordTooCommon,
    #[error("An account with this email already exists. Log in instead.")]
    EmailTaken,
    #[error("Email or password is incorrect.")]
    InvalidCredentials,
    #[error("Too many failed attempts. Wait 15 minutes, then try again.")]
    Throttled,
    #[error("That code is not right. Enter the 6 digits your app shows now, or a recovery code.")]
    WrongCode,
    #[error("Too many new accounts from your network. Please try again in an hour.")]
    SignUpThrottled,
    #[error("We are busy right now. Please try again in a moment.")]
    Busy,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

crate::database_errors_are_logged!(AccountError => AccountError::Internal, "accounts");

#[derive(Clone)]
pub struct Accounts {
    db: Database,
    clock: Clock,
    hashing: Arc<HashingPool>,
    throttle: Throttle,
    dummy_hash: Arc<str>,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

/// Everything that lets someone into the account ends, inside the caller's transaction: its
/// sessions, its links, its second factor and its recovery codes.
pub(crate) async fn end_access(tx: &mut WriteTx, account_id: i64) -> Result<(), sqlx::Error> {
    for table in ["sessions", "account_tokens", "recovery_codes", "second_factors"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
            .bind(account_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<Account, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(Account {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        role: if role == "operator" {
            Role::Operator
        } else {
            Role::Merchant
        },
    })
}

impl Accounts {
    /// `hashing_slots` bounds concurrent hashes (each takes 19 MiB and a core).
    pub fn new(db: Database, clock: Clock, hashing_slots: usize) -> Accounts {
        Accounts::with_sign_up_limit(db, clock, hashing_slots, MAX_SIGN_UPS_PER_ADDRESS)
    }

    /// [`Accounts::new`] with at most `sign_ups_per_address` sign-ups per address and hour.
    pub fn with_sign_up_limit(db: Database, clock: Clock, hashing_slots: usize, sign_ups_per_address: i64) -> Accounts {
        credentials::load_common_passwords();
        Accounts {
            throttle: Throttle::new(db.clone(), sign_ups_per_address),
            db,
            clock,
            hashing: HashingPool::new(hashing_slots),
            dummy_hash: hash_blocking("a password no account has, used to even out timing").into(),
        }
    }

    /// Hashes waiting for a slot right now (what a test of the queue's order waits for).
    pub fn hashes_waiting(&self) -> usize {
        self.hashing.waiting()
    }

    async fn hash(&self, password: &Password, priority: Priority) -> Result<String, AccountError> {
        let password = password.expose().to_string();
        self.hashing
            .run(priority, move || hash_blocking(&password))
            .await
            .map_err(|_| AccountError::Busy)
    }

    async fn verify(&self, password: &Password, hash: &str) -> Result<bool, AccountError> {
        let (password, hash) = (password.expose().to_string(), hash.to_string());
        self.hashing
            .run(Priority::Login, move || verify_blocking(&password, &hash))
            .await
            .map_err(|_| AccountError::Busy)
    }

    /// Creates an account with the given role (operators, from the command line).
    pub async fn create(&self, email: &str, password: &Password, role: Role) -> Result<Account, AccountError> {
        let email = Email::parse(email)?;
        check_new_password(password, &email)?;
        let hash = self.hash(password, Priority::SignUp).await?;
        self.insert(&email, &hash, role).await
    }

    /// The argon2 hash of a new password for `email`, after the password rules.
    pub async fn hash_new_password(&self, email: &str, password: &Password) -> Result<String, AccountError> {
        let email = Email::parse(email)?;
        check_new_password(password, &email)?;
        self.hash(password, Priority::SignUp).await
    }

    /// Checks the signed-in account's password again (before a change or a deletion),
    /// counted against the same limits as a log-in.
    pub async fn confirm_password(&self, account: &Account, password: &Password, ip: &str) -> Result<(), AccountError> {
        let now = self.clock.now();
        let Some(reserved) = self.throttle.reserve_login(&account.email, ip, now).await? else {
            crate::metrics::record_login_failure("throttled");
            return Err(AccountError::Throttled);
        };
        let hash: Option<String> = sqlx::query_scalar("SELECT password_hash FROM merchants WHERE id = $1")
            .bind(account.id)
            .fetch_optional(self.db.pool())
            .await?;
        let hash = hash
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| self.dummy_hash.to_string());
        if self.verify(password, &hash).await? && hash.as_str() != &*self.dummy_hash {
            self.throttle.succeeded(reserved, &account.email, ip).await?;
            Ok(())
        } else {
            crate::metrics::record_login_failure("invalid_credentials");
            Err(AccountError::InvalidCredentials)
        }
    }

    /// Changes the password after the current one is confirmed; every other session of
    /// the account ends (`keep`: the stored id of the session that asked).
    pub async fn change_password(
        &self,
        account: &Account,
        current: &Password,
        new: &Password,
        ip: &str,
        keep: Option<&str>,
    ) -> Result<(), AccountError> {
        let email = Email::parse(&account.email)?;
        check_new_password(new, &email)?;
        self.confirm_password(account, current, ip).await?;
        let hash = self.hash(new, Priority::SignUp).await?;
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE merchants SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(account.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id <> $2")
            .bind(account.id)
            .bind(keep.unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        // A reset link asked for before stops working too.
        let now = self.clock.now();
        lifecycle::end_reset_links(&mut tx, account.id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Notes that the account signed in now (shown on the operators' team page).
    pub async fn record_login(&self, account_id: i64) -> Result<(), AccountError> {
        let _gate = self.db.write_gate().await;
        sqlx::query("UPDATE merchants SET last_login_at = $1 WHERE id = $2")
            .bind(self.clock.now())
            .bind(account_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    async fn insert(&self, email: &Email, hash: &str, role: Role) -> Result<Account, AccountError> {
        let inserted = sqlx::query_scalar::<_, i64>(
            // Operators (created on the server) are verified; merchants verify by a link.
            "INSERT INTO merchants (email, password_hash, role, created_at, email_verified_at) \
             VALUES ($1, $2, $3, $4, CASE WHEN $3 = 'operator' THEN $4 END) \
             ON CONFLICT (email) DO NOTHING RETURNING id",
        )
        .bind(email.as_str())
        .bind(hash)
        .bind(role.as_str())
        .bind(self.clock.now())
        .fetch_optional(self.db.pool())
        .await?;
        match inserted {
            Some(id) => Ok(Account {
                id,
                email: email.to_string(),
                role,
            }),
            None => Err(AccountError::EmailTaken),
        }
    }

    /// A merchant signs up from client address `ip` (at most a few sign-ups per address
    /// and hour; input mistakes do not count).
    pub async fn sign_up(&self, email: &str, password: &Password, ip: &str) -> Result<Account, AccountError> {
        let email = Email::parse(email)?;
        check_new_password(password, &email)?;
        if self
            .throttle
            .reserve_sign_up(email.as_str(), ip, self.clock.now())
            .await?
            .is_none()
        {
            crate::metrics::record_login_failure("sign_up_throttled");
            return Err(AccountError::SignUpThrottled);
        }
        let hash = self.hash(password, Priority::SignUp).await?;
        self.insert(&email, &hash, Role::Merchant).await
    }

    /// Checks credentials from client address `ip`. The attempt is counted before any
    /// hashing (see [`throttle`]); unknown emails cost the same argon2 work as known ones.
    pub async fn log_in(&self, email: &str, password: &Password, ip: &str) -> Result<Account, AccountError> {
        let now = self.clock.now();
        let normalized = email.trim().to_lowercase();
        let Some(reserved) = self.throttle.reserve_login(&normalized, ip, now).await? else {
            crate::metrics::record_login_failure("throttled");
            return Err(AccountError::Throttled);
        };
        let wait = self.throttle.slow_down(&normalized, now).await?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let row = sqlx::query(
            "SELECT id, email, password_hash, role FROM merchants WHERE email = $1 AND removed_at IS NULL \
             AND deleted_at IS NULL",
        )
        .bind(&normalized)
        .fetch_optional(self.db.pool())
        .await?;
        // A merchant a platform created has no password ('' is stored): the same work as
        // for an unknown email, and never a match.
        let (account, hash) = match &row {
            Some(row) => (Some(account_from_row(row)?), row.try_get::<String, _>("password_hash")?),
            None => (None, String::new()),
        };
        let has_password = !hash.is_empty();
        let hash = if has_password {
            hash
        } else {
            self.dummy_hash.to_string()
        };
        let matches = self.verify(password, &hash).await?;
        match account {
            Some(account) if matches && has_password => {
                self.throttle.succeeded(reserved, &normalized, ip).await?;
                Ok(account)
            }
            _ => {
                crate::metrics::record_login_failure("invalid_credentials");
                Err(AccountError::InvalidCredentials)
            }
        }
    }

    /// A second-factor code for `email` from `ip`, checked by `check`: it counts against
    /// the same limits as a password (a wrong code is a failed attempt).
    pub async fn second_factor_attempt(
        &self,
        email: &str,
        ip: &str,
        check: impl std::future::Future<Output = Result<bool, sqlx::Error>>,
    ) -> Result<(), AccountError> {
        let now = self.clock.now();
        let normalized = email.trim().to_lowercase();
        let Some(reserved) = self.throttle.reserve_login(&normalized, ip, now).await? else {
            crate::metrics::record_login_failure("throttled");
            return Err(AccountError::Throttled);
        };
        if check.await? {
            self.throttle.succeeded(reserved, &normalized, ip).await?;
            Ok(())
        } else {
            crate::metrics::record_login_failure("wrong_second_factor");
            Err(AccountError::WrongCode)
        }
    }

    pub async fn by_id(&self, id: i64) -> Result<Option<Account>, AccountError> {
        // Removed operators and deleted accounts are no one.
        let row = sqlx::query(
            "SELECT id, email, role FROM merchants WHERE id = $1 AND removed_at IS NULL AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    /// Forgets attempts older than every throttling window.
    pub async fn sweep_attempts(&self) -> Result<u64, AccountError> {
        Ok(self.throttle.sweep(self.clock.now()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_is_decided_by_one_rule() {
        let merchant = Account {
            id: 1,
            email: "m@example.com".into(),
            role: Role::Merchant,
        };
        let operator = Account {
            role: Role::Operator,
            ..merchant.clone()
        };
        assert_eq!(Access::Anyone.check(None), Ok(()));
        assert_eq!(Access::SignedIn.check(None), Err(Denied::LoginRequired));
        assert_eq!(Access::SignedIn.check(Some(&merchant)), Ok(()));
        assert_eq!(Access::Operator.check(None), Err(Denied::LoginRequired));
        assert_eq!(Access::Operator.check(Some(&merchant)), Err(Denied::OperatorsOnly));
        assert_eq!(Access::Operator.check(Some(&operator)), Ok(()));
    }
}
