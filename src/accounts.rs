//! Merchant and operator accounts: parsed emails, a password policy, argon2id hashes on
//! the blocking pool with bounded concurrency, and throttled log-ins that cost the same
//! whether or not the account exists.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sqlx::Row;
use tokio::sync::Semaphore;

use crate::db::Database;
use crate::time::Clock;

/// Failed log-ins allowed per account and per address in [`THROTTLE_WINDOW_SECONDS`].
pub const MAX_FAILURES: i64 = 5;
pub const THROTTLE_WINDOW_SECONDS: i64 = 15 * 60;
pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

const COMMON_PASSWORDS: &str = include_str!("accounts/common_passwords.txt");

/// An email address, trimmed and lower-cased, checked for a plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, AccountError> {
        let email = input.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        if valid {
            Ok(Email(email))
        } else {
            Err(AccountError::InvalidEmail)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed. Prints as `[redacted]`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Password {
        Password(value.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Checks a new password against the policy: 12 to 256 characters, not a common
/// password, not the email, not one repeated character.
pub fn check_new_password(password: &Password, email: &Email) -> Result<(), AccountError> {
    let text = password.expose();
    let chars = text.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooLong);
    }
    let lower = text.to_lowercase();
    let local = email.as_str().split('@').next().unwrap_or_default();
    let first = lower.chars().next().unwrap_or_default();
    if COMMON_PASSWORDS.lines().any(|common| common.trim() == lower)
        || lower.chars().all(|c| c == first)
        || lower == email.as_str()
        || (local.len() >= 4 && lower.contains(local) && chars < local.len() + 6)
    {
        return Err(AccountError::PasswordTooCommon);
    }
    Ok(())
}

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
    #[error("That password is too common or too easy to guess. Try a longer phrase.")]
    PasswordTooCommon,
    #[error("An account with this email already exists. Log in instead.")]
    EmailTaken,
    #[error("Email or password is incorrect.")]
    InvalidCredentials,
    #[error("Too many failed attempts. Wait 15 minutes, then try again.")]
    Throttled,
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

impl From<sqlx::Error> for AccountError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "accounts database error");
        AccountError::Internal
    }
}

#[derive(Clone)]
pub struct Accounts {
    db: Database,
    clock: Clock,
    hashing: Arc<Semaphore>,
    dummy_hash: Arc<str>,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
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

/// argon2id with OWASP's minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing of a bounded password succeeds")
        .to_string()
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// Runs CPU-heavy hashing at a lower scheduling priority (nice +10 for this thread), so a
/// burst of log-ins does not slow page serving. Best effort: where the priority cannot be
/// changed (or restored, without the privilege), hashing still runs.
fn with_low_priority<T>(work: impl FnOnce() -> T) -> T {
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with who = 0 applies to the calling thread only.
        // SAFETY: getpriority/setpriority take plain integers and touch no memory of ours.
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, before + 10) };
        let result = work();
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, before) };
        result
    }
    #[cfg(not(target_os = "linux"))]
    {
        work()
    }
}

impl Accounts {
    /// `hashing_slots` bounds concurrent hashes (each takes 19 MiB and a core).
    pub fn new(db: Database, clock: Clock, hashing_slots: usize) -> Accounts {
        Accounts {
            db,
            clock,
            hashing: Arc::new(Semaphore::new(hashing_slots.max(1))),
            dummy_hash: hash_blocking("a password no account has, used to even out timing").into(),
        }
    }

    async fn hash(&self, password: &Password) -> Result<String, AccountError> {
        let _slot = self.hashing.acquire().await.map_err(|_| AccountError::Internal)?;
        let password = password.expose().to_string();
        tokio::task::spawn_blocking(move || with_low_priority(|| hash_blocking(&password)))
            .await
            .map_err(|_| AccountError::Internal)
    }

    async fn verify(&self, password: &Password, hash: &str) -> Result<bool, AccountError> {
        let _slot = self.hashing.acquire().await.map_err(|_| AccountError::Internal)?;
        let (password, hash) = (password.expose().to_string(), hash.to_string());
        tokio::task::spawn_blocking(move || with_low_priority(|| verify_blocking(&password, &hash)))
            .await
            .map_err(|_| AccountError::Internal)
    }

    /// Creates an account with the given role.
    pub async fn create(&self, email: &str, password: &Password, role: Role) -> Result<Account, AccountError> {
        let email = Email::parse(email)?;
        check_new_password(password, &email)?;
        let hash = self.hash(password).await?;
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO merchants (email, password_hash, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING RETURNING id",
        )
        .bind(email.as_str())
        .bind(&hash)
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

    pub async fn sign_up(&self, email: &str, password: &Password) -> Result<Account, AccountError> {
        self.create(email, password, Role::Merchant).await
    }

    /// Checks credentials. Unknown emails cost the same argon2 work as known ones; after
    /// [`MAX_FAILURES`] failures in 15 minutes for the account or the address, refuses.
    pub async fn log_in(&self, email: &str, password: &Password, ip: &str) -> Result<Account, AccountError> {
        let now = self.clock.now();
        let normalized = email.trim().to_lowercase();
        if self.recent_failures(&normalized, ip, now).await? >= MAX_FAILURES {
            crate::metrics::record_login_failure("throttled");
            return Err(AccountError::Throttled);
        }
        let row = sqlx::query("SELECT id, email, password_hash, role FROM merchants WHERE email = $1")
            .bind(&normalized)
            .fetch_optional(self.db.pool())
            .await?;
        let (account, hash) = match &row {
            Some(row) => (Some(account_from_row(row)?), row.try_get::<String, _>("password_hash")?),
            None => (None, self.dummy_hash.to_string()),
        };
        let matches = self.verify(password, &hash).await?;
        match account {
            Some(account) if matches => {
                sqlx::query("DELETE FROM login_failures WHERE email = $1")
                    .bind(&normalized)
                    .execute(self.db.pool())
                    .await?;
                Ok(account)
            }
            _ => {
                sqlx::query("INSERT INTO login_failures (email, ip, created_at) VALUES ($1, $2, $3)")
                    .bind(&normalized)
                    .bind(ip)
                    .bind(now)
                    .execute(self.db.pool())
                    .await?;
                crate::metrics::record_login_failure("invalid_credentials");
                Err(AccountError::InvalidCredentials)
            }
        }
    }

    /// The larger of the account's and the address's failures in the window.
    async fn recent_failures(&self, email: &str, ip: &str, now: i64) -> Result<i64, AccountError> {
        let since = now - THROTTLE_WINDOW_SECONDS;
        let by_email: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE email = $1 AND created_at > $2")
                .bind(email)
                .bind(since)
                .fetch_one(self.db.pool())
                .await?;
        let by_ip: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM login_failures WHERE ip = $1 AND created_at > $2")
            .bind(ip)
            .bind(since)
            .fetch_one(self.db.pool())
            .await?;
        Ok(by_email.max(by_ip))
    }

    pub async fn by_id(&self, id: i64) -> Result<Option<Account>, AccountError> {
        let row = sqlx::query("SELECT id, email, role FROM merchants WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.as_ref().map(account_from_row).transpose()?)
    }

    /// Forgets failures older than the throttle window.
    pub async fn sweep_failures(&self) -> Result<u64, AccountError> {
        let done = sqlx::query("DELETE FROM login_failures WHERE created_at <= $1")
            .bind(self.clock.now() - THROTTLE_WINDOW_SECONDS)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "a b@example.com",
            "ana@example..com",
            "<a>@x.com",
        ] {
            assert_eq!(Email::parse(bad), Err(AccountError::InvalidEmail), "{bad:?}");
        }
    }

    #[test]
    fn the_password_policy_refuses_short_common_and_obvious_passwords() {
        let email = Email::parse("ana.lima@example.com").unwrap();
        let check = |p: &str| check_new_password(&Password::new(p), &email);
        assert_eq!(check("short"), Err(AccountError::PasswordTooShort));
        assert_eq!(check("elevenchars"), Err(AccountError::PasswordTooShort));
        assert_eq!(check(&"x".repeat(257)), Err(AccountError::PasswordTooLong));
        assert_eq!(check("password1234"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("QWERTY123456"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("aaaaaaaaaaaaaaa"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("ana.lima@example.com"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("ana.lima1234"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("correct horse battery staple"), Ok(()));
        assert_eq!(check("harbour-coffee-2026!"), Ok(()));
    }

    #[test]
    fn hashes_are_argon2id_with_the_required_cost() {
        let hash = hash_blocking("correct horse battery staple");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_blocking("correct horse battery staple", &hash));
        assert!(!verify_blocking("correct horse battery stapler", &hash));
        assert!(!verify_blocking("anything", "not a hash"));
    }

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

    #[test]
    fn passwords_do_not_print() {
        assert_eq!(format!("{:?}", Password::new("hunter2hunter2")), "Password([redacted])");
    }
}
