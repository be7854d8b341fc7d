//! tower-sessions on the app's own database (SQLite or PostgreSQL through sqlx `Any`),
//! with expired sessions swept in the background.

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};

use awx_onboard::db::Database;

/// Session key holding the signed-in account (id, email, role).
pub const SIGNED_IN: &str = app::api::ssr::SIGNED_IN;
/// Sessions end after this long without a request.
pub const INACTIVITY_LIMIT: time::Duration = time::Duration::hours(12);

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Database,
}

impl DbSessionStore {
    pub fn new(db: Database) -> DbSessionStore {
        DbSessionStore { db }
    }
}

fn backend(error: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_vec(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // A fresh id until one is free (collisions of 128 random bits are theoretical).
        loop {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(record.id.to_string())
            .bind(&data)
            .bind(record.expiry_date.unix_timestamp())
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_vec(&record.data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        sqlx::query(
            "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
        )
        .bind(record.id.to_string())
        .bind(&data)
        .bind(record.expiry_date.unix_timestamp())
        .execute(self.db.pool())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let row = sqlx::query("SELECT data, expiry_date FROM sessions WHERE id = $1 AND expiry_date > $2")
            .bind(session_id.to_string())
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .fetch_optional(self.db.pool())
            .await
            .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: Vec<u8> = row.try_get("data").map_err(backend)?;
        let expiry: i64 = row.try_get("expiry_date").map_err(backend)?;
        Ok(Some(Record {
            id: *session_id,
            data: serde_json::from_slice(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: OffsetDateTime::from_unix_timestamp(expiry)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id.to_string())
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expiry_date <= $1")
            .bind(OffsetDateTime::now_utc().unix_timestamp())
            .execute(self.db.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The session layer: HttpOnly, SameSite=Lax, expiring after inactivity; behind https
/// also Secure with the `__Host-` prefix.
pub fn layer(store: DbSessionStore, secure: bool) -> SessionManagerLayer<DbSessionStore> {
    SessionManagerLayer::new(store)
        .with_name(if secure { "__Host-awx_session" } else { "awx_session" })
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(INACTIVITY_LIMIT))
}
