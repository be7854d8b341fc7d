//! Creating a session: for a merchant the platform named before and whose email and tags
//! are as given, one statement; otherwise the merchant is created (or updated) and the
//! session written in one transaction.

use sqlx::Row;

use super::{check_external_id, check_tags, LINK_PREFIX, MAX_BUSINESS_NAME_CHARS};
use super::{invalid, secret_hash, ConnectSessions, CreatedSession, SessionError, SessionLink, SessionRequest};
use crate::accounts::Email;
use crate::secret::random_urlsafe;

/// A session about to be written.
struct NewRow<'a> {
    id: String,
    secret: String,
    return_url: &'a str,
    business_name: Option<&'a str>,
    request: &'a SessionRequest,
    created_by: &'a str,
    now: i64,
}

impl ConnectSessions {
    /// Creates a session for the merchant the platform names by `external_id`: a new one
    /// (no password), or the known one (its email and tags updated when given).
    pub async fn create(&self, request: &SessionRequest, created_by: &str) -> Result<CreatedSession, SessionError> {
        check_external_id(&request.external_id)?;
        let email = match request.email.as_deref() {
            Some(email) => Some(Email::parse(email).map_err(|_| invalid("email", "is not a valid email address"))?),
            None => None,
        };
        let return_url = self.check_return_url(&request.return_url)?;
        let business_name = request
            .business_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if business_name.is_some_and(|n| n.chars().count() > MAX_BUSINESS_NAME_CHARS || n.chars().any(char::is_control))
        {
            return Err(invalid(
                "business_name",
                format!("must be at most {MAX_BUSINESS_NAME_CHARS} characters, without control characters"),
            ));
        }
        if let Some(tags) = &request.tags {
            check_tags(tags)?;
        }
        let tags_text = request
            .tags
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap_or_else(|_| "{}".into()));
        let now = self.clock.now();
        let new = NewRow {
            id: format!("cs_{}", random_urlsafe(16)),
            secret: random_urlsafe(32),
            return_url: return_url.as_str(),
            business_name,
            request,
            created_by,
            now,
        };
        let merchant_id = match self
            .for_known_as_it_is(&new, email.as_ref(), tags_text.as_deref())
            .await?
        {
            Some(merchant_id) => merchant_id,
            None => {
                self.for_new_or_changed(&new, email.as_ref(), tags_text.as_deref())
                    .await?
            }
        };
        Ok(CreatedSession {
            url: SessionLink(format!("{}{LINK_PREFIX}{}", self.settings.public_origin, new.secret)),
            id: new.id,
            expires_at: now + self.settings.ttl_seconds,
            merchant_id,
            external_id: request.external_id.clone(),
        })
    }

    /// The common case, in one statement: a merchant the platform named before, whose email
    /// and tags are as given. `None` when that is not the case (nothing written).
    async fn for_known_as_it_is(
        &self,
        new: &NewRow<'_>,
        email: Option<&Email>,
        tags: Option<&str>,
    ) -> Result<Option<i64>, SessionError> {
        let _gate = self.db.write_gate().await;
        Ok(sqlx::query_scalar(
            "INSERT INTO connect_sessions (id, secret_hash, merchant_id, return_url, business_name, sign_up, \
             allow_account_change, created_by, created_at, expires_at) \
             SELECT $1, $2, m.id, $3, $4, $5, $6, $7, $8, $9 FROM merchants m \
             WHERE m.external_id = $10 AND m.role = 'merchant' AND ($11 IS NULL OR m.email = $11) \
             AND ($12 IS NULL OR m.tags = $12) RETURNING merchant_id",
        )
        .bind(&new.id)
        .bind(secret_hash(&new.secret))
        .bind(new.return_url)
        .bind(new.business_name)
        .bind(i64::from(new.request.sign_up))
        .bind(i64::from(new.request.allow_account_change))
        .bind(new.created_by)
        .bind(new.now)
        .bind(new.now + self.settings.ttl_seconds)
        .bind(&new.request.external_id)
        .bind(email.map(Email::as_str))
        .bind(tags)
        .fetch_optional(self.db.pool())
        .await?)
    }

    /// A new merchant (no password), or a known one whose email or tags change (the email
    /// change in its timeline), and the session, in one transaction.
    async fn for_new_or_changed(
        &self,
        new: &NewRow<'_>,
        email: Option<&Email>,
        tags: Option<&str>,
    ) -> Result<i64, SessionError> {
        let request = new.request;
        let mut tx = self.db.begin().await?;
        // Any conflict (the email, or the same new external id created at this very moment
        // elsewhere) inserts nothing; which one is told apart below.
        let inserted: Option<i64> = match email {
            Some(email) => {
                sqlx::query_scalar(
                    // The platform vouches for the address: verified.
                    "INSERT INTO merchants (email, password_hash, role, created_at, external_id, tags, email_verified_at) \
                     VALUES ($1, '', 'merchant', $2, $3, $4, $2) ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(email.as_str())
                .bind(new.now)
                .bind(&request.external_id)
                .bind(tags)
                .fetch_optional(&mut *tx)
                .await?
            }
            None => None,
        };
        let merchant_id = match inserted {
            Some(id) => id,
            None => {
                let known = sqlx::query("SELECT id, email FROM merchants WHERE external_id = $1 AND role = 'merchant'")
                    .bind(&request.external_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = known else {
                    return Err(match email {
                        Some(_) => SessionError::EmailInUse,
                        None => invalid("email", "is required for a new external_id"),
                    });
                };
                let id: i64 = row.try_get("id")?;
                let current: String = row.try_get("email")?;
                if let Some(email) = email.filter(|e| e.as_str() != current) {
                    let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM merchants WHERE email = $1")
                        .bind(email.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    if taken.is_some() {
                        return Err(SessionError::EmailInUse);
                    }
                    sqlx::query("UPDATE merchants SET email = $1 WHERE id = $2")
                        .bind(email.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let connection: Option<i64> =
                        sqlx::query_scalar("SELECT id FROM connections WHERE merchant_id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some(connection_id) = connection {
                        crate::store::append_event(
                            &mut tx,
                            connection_id,
                            crate::store::NewEvent::new(crate::store::EventKind::EmailChanged, new.created_by),
                            new.now,
                        )
                        .await?;
                    }
                }
                if let Some(tags) = tags {
                    sqlx::query("UPDATE merchants SET tags = $1 WHERE id = $2")
                        .bind(tags)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                id
            }
        };
        sqlx::query(
            "INSERT INTO connect_sessions (id, secret_hash, merchant_id, return_url, business_name, sign_up, \
             allow_account_change, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&new.id)
        .bind(secret_hash(&new.secret))
        .bind(merchant_id)
        .bind(new.return_url)
        .bind(new.business_name)
        .bind(i64::from(request.sign_up))
        .bind(i64::from(request.allow_account_change))
        .bind(new.created_by)
        .bind(new.now)
        .bind(new.now + self.settings.ttl_seconds)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(merchant_id)
    }
}
