//! Bounds on guessing and on sign-ups, kept in the database so they hold across
//! instances. An attempt is reserved before any hashing, in one transaction that first
//! locks its keys (a row per key in `auth_locks`), then counts and records: thirty guesses
//! arriving at once get exactly the allowed number of evaluations.
//!
//! - Per account and client address: [`MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS`] failed
//!   log-ins per window. The owner at another address is not affected.
//! - Per client address, across accounts: [`MAX_FAILURES_PER_ADDRESS`] per window.
//! - Per account, from anywhere: no lock (that would let anyone lock anyone out), but a
//!   growing delay once [`SLOW_DOWN_AFTER`] failures are in the window.
//! - Sign-ups per client address: [`MAX_SIGN_UPS_PER_ADDRESS`] per hour by default.

use std::time::Duration;

use crate::db::{Database, WriteTx};

pub const THROTTLE_WINDOW_SECONDS: i64 = 15 * 60;
pub const MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS: i64 = 5;
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;
/// Failures of one account (any address) in the window after which each attempt waits.
pub const SLOW_DOWN_AFTER: i64 = 10;
const SLOW_DOWN_STEP: Duration = Duration::from_millis(100);
const SLOW_DOWN_MAX: Duration = Duration::from_secs(2);
pub const SIGN_UP_WINDOW_SECONDS: i64 = 3600;
/// The default of `SIGN_UPS_PER_ADDRESS_PER_HOUR`.
pub const MAX_SIGN_UPS_PER_ADDRESS: i64 = 10;

/// The client an attempt is counted for: an IPv4 address as it is, an IPv6 address by its
/// `/64` (one subscriber's network: its 2^64 addresses are one client).
pub fn client_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        _ => ip.to_string(),
    }
}

/// What an attempt counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Login,
    SignUp,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::SignUp => "signup",
        }
    }
}

/// A reserved attempt, to be forgotten if it turns out not to be a failure.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reserved {
    id: i64,
}

#[derive(Debug, Clone)]
pub(super) struct Throttle {
    db: Database,
    sign_ups_per_address: i64,
}

async fn lock_key(tx: &mut WriteTx, key: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_locks (lock_key, touched_at) VALUES ($1, $2) \
         ON CONFLICT (lock_key) DO UPDATE SET touched_at = excluded.touched_at",
    )
    .bind(key)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn count(tx: &mut WriteTx, kind: Kind, email: Option<&str>, ip: &str, since: i64) -> Result<i64, sqlx::Error> {
    match email {
        Some(email) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM auth_attempts WHERE kind = $1 AND email = $2 AND ip = $3 AND created_at > $4",
            )
            .bind(kind.as_str())
            .bind(email)
            .bind(ip)
            .bind(since)
            .fetch_one(&mut **tx)
            .await
        }
        None => {
            sqlx::query_scalar("SELECT COUNT(*) FROM auth_attempts WHERE kind = $1 AND ip = $2 AND created_at > $3")
                .bind(kind.as_str())
                .bind(ip)
                .bind(since)
                .fetch_one(&mut **tx)
                .await
        }
    }
}

impl Throttle {
    pub(super) fn new(db: Database, sign_ups_per_address: i64) -> Throttle {
        Throttle {
            db,
            sign_ups_per_address,
        }
    }

    /// Reserves a log-in attempt for (`email`, `ip`), or `None` when a bound is reached.
    /// Keys are always locked in the same order (address, then account and address).
    pub(super) async fn reserve_login(&self, email: &str, ip: &str, now: i64) -> Result<Option<Reserved>, sqlx::Error> {
        let ip = &client_key(ip);
        let since = now - THROTTLE_WINDOW_SECONDS;
        let mut tx = self.db.begin().await?;
        lock_key(&mut tx, &format!("login-ip:{ip}"), now).await?;
        lock_key(&mut tx, &format!("login:{email}|{ip}"), now).await?;
        let by_address = count(&mut tx, Kind::Login, None, ip, since).await?;
        let by_pair = count(&mut tx, Kind::Login, Some(email), ip, since).await?;
        if by_address >= MAX_FAILURES_PER_ADDRESS || by_pair >= MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS {
            tx.commit().await?;
            return Ok(None);
        }
        let reserved = self.record(&mut tx, Kind::Login, email, ip, now).await?;
        tx.commit().await?;
        Ok(Some(reserved))
    }

    /// Reserves a sign-up for `ip`, or `None` past the hourly bound.
    pub(super) async fn reserve_sign_up(
        &self,
        email: &str,
        ip: &str,
        now: i64,
    ) -> Result<Option<Reserved>, sqlx::Error> {
        let ip = &client_key(ip);
        let mut tx = self.db.begin().await?;
        lock_key(&mut tx, &format!("signup-ip:{ip}"), now).await?;
        if count(&mut tx, Kind::SignUp, None, ip, now - SIGN_UP_WINDOW_SECONDS).await? >= self.sign_ups_per_address {
            tx.commit().await?;
            return Ok(None);
        }
        let reserved = self.record(&mut tx, Kind::SignUp, email, ip, now).await?;
        tx.commit().await?;
        Ok(Some(reserved))
    }

    async fn record(
        &self,
        tx: &mut WriteTx,
        kind: Kind,
        email: &str,
        ip: &str,
        now: i64,
    ) -> Result<Reserved, sqlx::Error> {
        let id = sqlx::query_scalar(
            "INSERT INTO auth_attempts (kind, email, ip, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(email)
        .bind(ip)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        Ok(Reserved { id })
    }

    /// The attempt was not a failure (a successful log-in): forget it, and the failures of
    /// this account from this address.
    pub(super) async fn succeeded(&self, reserved: Reserved, email: &str, ip: &str) -> Result<(), sqlx::Error> {
        let ip = &client_key(ip);
        sqlx::query("DELETE FROM auth_attempts WHERE id = $1 OR (kind = 'login' AND email = $2 AND ip = $3)")
            .bind(reserved.id)
            .bind(email)
            .bind(ip)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// How long an attempt on `email` waits: nothing until the account has
    /// [`SLOW_DOWN_AFTER`] failures in the window (from any address), then more with each.
    pub(super) async fn slow_down(&self, email: &str, now: i64) -> Result<Duration, sqlx::Error> {
        let failures: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM auth_attempts WHERE kind = 'login' AND email = $1 AND created_at > $2",
        )
        .bind(email)
        .bind(now - THROTTLE_WINDOW_SECONDS)
        .fetch_one(self.db.pool())
        .await?;
        let beyond = (failures - SLOW_DOWN_AFTER).max(0) as u32;
        Ok((SLOW_DOWN_STEP * beyond).min(SLOW_DOWN_MAX))
    }

    /// Forgets attempts and locks older than every window.
    pub(super) async fn sweep(&self, now: i64) -> Result<u64, sqlx::Error> {
        let horizon = now - THROTTLE_WINDOW_SECONDS.max(SIGN_UP_WINDOW_SECONDS);
        let done = sqlx::query("DELETE FROM auth_attempts WHERE created_at <= $1")
            .bind(horizon)
            .execute(self.db.pool())
            .await?;
        sqlx::query("DELETE FROM auth_locks WHERE touched_at <= $1")
            .bind(horizon)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::client_key;

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(client_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(client_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:db8:1:2:ffff::9"), client_key("2001:db8:1:2::1"));
        assert_ne!(client_key("2001:db8:1:3::1"), client_key("2001:db8:1:2::1"));
        assert_eq!(client_key("::ffff:198.51.100.4"), "198.51.100.4");
    }
}
