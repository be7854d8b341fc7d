//! Service keys: `awx_pk_<id>_<secret>`. The id finds the row; the secret (256 random
//! bits) is stored only as its SHA-256 and compared in constant time. Keys carry scopes and
//! are revoked in the database, so a revocation holds on every instance at the next request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::db::Database;
use crate::secret::{constant_time_eq, random_urlsafe};
use crate::time::Clock;

const PREFIX: &str = "awx_pk_";
/// `last_used_at` is written at most this often per key (a read is not a write).
const TOUCH_EVERY_SECONDS: i64 = 60;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// List merchants' connections and read one.
    #[serde(rename = "connections:read")]
    ConnectionsRead,
    /// Get a merchant's access token.
    #[serde(rename = "tokens:read")]
    TokensRead,
    /// Create connect sessions for the platform's own merchants, read them, and disconnect
    /// a merchant on the platform's behalf.
    #[serde(rename = "connect:write")]
    ConnectWrite,
    /// Call Airwallex on a merchant's behalf through the proxy (the token never leaves).
    #[serde(rename = "airwallex:proxy")]
    AirwallexProxy,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::ConnectionsRead,
        Scope::TokensRead,
        Scope::ConnectWrite,
        Scope::AirwallexProxy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ConnectionsRead => "connections:read",
            Scope::TokensRead => "tokens:read",
            Scope::ConnectWrite => "connect:write",
            Scope::AirwallexProxy => "airwallex:proxy",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A key's secret as shown once. Prints as `[redacted]`.
pub struct NewKey(String);

impl NewKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewKey([redacted])")
    }
}

/// A key as operators see it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_by: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
    /// When the key stops working, if it was given an end.
    pub expires_at: Option<i64>,
}

/// The longest life a key may be given, in days.
pub const MAX_EXPIRY_DAYS: i64 = 3650;

/// Reads an `expires_in_days` field: empty means no end; else 1 to [`MAX_EXPIRY_DAYS`].
pub fn parse_expiry_days(text: &str) -> Result<Option<i64>, KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i64>() {
        Ok(days) if (1..=MAX_EXPIRY_DAYS).contains(&days) => Ok(Some(days)),
        _ => Err(KeyError::BadExpiry),
    }
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a key needs a name (1 to 100 characters)")]
    BadName,
    #[error("a key needs at least one scope, of connections:read, tokens:read, connect:write and airwallex:proxy")]
    NoScope,
    #[error("unknown scope {0:?}: use connections:read, tokens:read, connect:write or airwallex:proxy")]
    UnknownScope(String),
    #[error("expires_in_days must be a whole number of days from 1 to 3650 (or empty: no end)")]
    BadExpiry,
    #[error("no such key")]
    NotFound,
    #[error("database error")]
    Database,
}

crate::database_errors_are_logged!(KeyError => KeyError::Database, "api keys");

/// Why a presented key was refused (all answered 401 alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    Unknown,
    Revoked,
    /// Its expiry has passed (answered 401 `key_expired`).
    Expired,
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Parses scope names (`connections:read`, `tokens:read`, `connect:write`,
/// `airwallex:proxy`), deduplicated and sorted.
pub fn parse_scopes<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<Scope>, KeyError> {
    let mut scopes = Vec::new();
    for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
        let scope = Scope::parse(name).ok_or_else(|| KeyError::UnknownScope(name.to_string()))?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.sort();
    if scopes.is_empty() {
        return Err(KeyError::NoScope);
    }
    Ok(scopes)
}

fn key_from_row(row: &sqlx::any::AnyRow) -> Result<ApiKey, sqlx::Error> {
    let scopes: String = row.try_get("scopes")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Service keys on the app's database.
#[derive(Clone)]
pub struct ApiKeys {
    db: Database,
    clock: Clock,
    /// When each key's `last_used_at` was last written by this instance.
    touched: Arc<Mutex<HashMap<String, i64>>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

impl ApiKeys {
    pub fn new(db: Database, clock: Clock) -> ApiKeys {
        ApiKeys {
            db,
            clock,
            touched: Arc::default(),
        }
    }

    /// Creates a key; its secret is returned here and nowhere else, ever.
    /// `expires_in_days`: none for a key without an end.
    pub async fn create(
        &self,
        name: &str,
        scopes: &[Scope],
        created_by: &str,
        expires_in_days: Option<i64>,
    ) -> Result<(ApiKey, NewKey), KeyError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(KeyError::BadName);
        }
        if scopes.is_empty() {
            return Err(KeyError::NoScope);
        }
        if expires_in_days.is_some_and(|days| !(1..=MAX_EXPIRY_DAYS).contains(&days)) {
            return Err(KeyError::BadExpiry);
        }
        let id = random_urlsafe(9).replace(['-', '_'], "x");
        let secret = random_urlsafe(32);
        let now = self.clock.now();
        let scope_text = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        let expires_at = expires_in_days.map(|days| now + days * 86_400);
        sqlx::query(
            "INSERT INTO api_keys (id, name, secret_hash, scopes, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(name)
        .bind(hash(&secret))
        .bind(&scope_text)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .execute(self.db.pool())
        .await?;
        let key = ApiKey {
            id: id.clone(),
            name: name.to_string(),
            scopes: scopes.to_vec(),
            created_by: created_by.to_string(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
            expires_at,
        };
        Ok((key, NewKey(format!("{PREFIX}{id}_{secret}"))))
    }

    /// Every key, newest first.
    pub async fn list(&self) -> Result<Vec<ApiKey>, KeyError> {
        let rows = sqlx::query(
            "SELECT id, name, scopes, created_by, created_at, last_used_at, revoked_at, revoked_by, expires_at FROM api_keys \
             ORDER BY created_at DESC, id",
        )
        .fetch_all(self.db.pool())
        .await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn revoke(&self, id: &str, revoked_by: &str) -> Result<(), KeyError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1, revoked_by = $2 WHERE id = $3 AND revoked_at IS NULL")
                .bind(self.clock.now())
                .bind(revoked_by)
                .bind(id)
                .execute(self.db.pool())
                .await?;
        if done.rows_affected() == 0 {
            let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE id = $1")
                .bind(id)
                .fetch_one(self.db.pool())
                .await?;
            if exists == 0 {
                return Err(KeyError::NotFound);
            }
        }
        Ok(())
    }

    /// The key a request presents (`awx_pk_<id>_<secret>`), if it is known and not revoked.
    pub async fn authenticate(&self, presented: &str) -> Result<Result<ApiKey, Refused>, KeyError> {
        let Some((id, secret)) = presented
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .filter(|(id, secret)| !id.is_empty() && secret.len() >= 40)
        else {
            return Ok(Err(Refused::Malformed));
        };
        let row = sqlx::query(
            "SELECT id, name, secret_hash, scopes, created_by, created_at, last_used_at, revoked_at, revoked_by, expires_at \
             FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else {
            // As much work as for a known key: no timing difference tells ids apart.
            let _ = constant_time_eq(&hash(secret), &[0u8; 32]);
            return Ok(Err(Refused::Unknown));
        };
        let stored: Vec<u8> = row.try_get("secret_hash")?;
        if !constant_time_eq(&hash(secret), &stored) {
            return Ok(Err(Refused::Unknown));
        }
        let key = key_from_row(&row)?;
        if key.revoked_at.is_some() {
            return Ok(Err(Refused::Revoked));
        }
        if key.expires_at.is_some_and(|at| at <= self.clock.now()) {
            return Ok(Err(Refused::Expired));
        }
        self.touch(&key.id).await;
        Ok(Ok(key))
    }

    /// Notes the key's use, at most once a minute per key and instance.
    async fn touch(&self, id: &str) {
        let now = self.clock.now();
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if touched.get(id).is_some_and(|at| now - at < TOUCH_EVERY_SECONDS) {
                return;
            }
            touched.insert(id.to_string(), now);
        }
        if let Err(error) = sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.db.pool())
            .await
        {
            tracing::warn!(%error, "could not note a key's use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_unknown_ones_are_named() {
        assert_eq!(
            parse_scopes(["tokens:read", "connections:read", "tokens:read"]),
            Ok(vec![Scope::ConnectionsRead, Scope::TokensRead])
        );
        assert_eq!(parse_scopes([]), Err(KeyError::NoScope));
        assert_eq!(parse_scopes(["admin"]), Err(KeyError::UnknownScope("admin".into())));
    }

    #[test]
    fn expiries_are_whole_days_within_ten_years() {
        assert_eq!(parse_expiry_days(""), Ok(None));
        assert_eq!(parse_expiry_days(" 30 "), Ok(Some(30)));
        for bad in ["0", "-1", "3651", "1.5", "soon"] {
            assert_eq!(parse_expiry_days(bad), Err(KeyError::BadExpiry), "{bad}");
        }
    }

    #[test]
    fn new_keys_do_not_print() {
        assert_eq!(format!("{:?}", NewKey("awx_pk_x_secret".into())), "NewKey([redacted])");
    }
}
