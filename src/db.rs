//! The database: one sqlx pool for SQLite or PostgreSQL, chosen by the URL.
//!
//! Queries go through sqlx's `Any` driver and are written once for both engines (numbered
//! `$N` parameters, integers for times, text and blobs otherwise). Migrations differ per
//! engine and are embedded in the binary.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Implements `From<sqlx::Error>` for an error type whose database variant tells callers
/// only that storage failed: the cause is logged, naming what failed, where it happens.
#[macro_export]
macro_rules! database_errors_are_logged {
    ($error:ty => $variant:expr, $what:literal) => {
        impl From<sqlx::Error> for $error {
            fn from(error: sqlx::Error) -> Self {
                tracing::error!(%error, what = $what, "database error");
                $variant
            }
        }
    };
}

/// A pooled connection idle this long is checked (a ping) before it is handed out.
const CHECK_IDLE_CONNECTIONS_AFTER: Duration = Duration::from_secs(5);

/// Which database engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn from_url(url: &str) -> Option<Engine> {
        if url.starts_with("sqlite:") {
            Some(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Engine::Postgres)
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL must start with sqlite: or postgres:// (got {0:?})")]
    UnsupportedUrl(String),
    #[error("could not create the folder {path} for the SQLite database: {source}")]
    CreateFolder { path: String, source: std::io::Error },
    #[error("could not connect to the database at {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// The shared connection pool and the engine behind it.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    engine: Engine,
    /// On SQLite: one writer at a time in this process, queued fairly, before any
    /// connection asks SQLite for its write lock (see [`Database::begin`]).
    write_gate: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction from [`Database::begin`]: use it as a connection (`&mut *tx`), then
/// [`commit`](WriteTx::commit). On SQLite it holds the process's write gate until it ends.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &sqlx::AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

impl Database {
    /// Connects (creating a SQLite file and its folder when missing) without migrating.
    pub async fn connect(url: &str) -> Result<Database, DbError> {
        sqlx::any::install_default_drivers();
        let engine = Engine::from_url(url).ok_or_else(|| DbError::UnsupportedUrl(redact_url(url)))?;
        let target = redact_url(url);
        let mut options = AnyConnectOptions::from_str(url).map_err(|source| DbError::Connect {
            target: target.clone(),
            source,
        })?;
        options = options.disable_statement_logging();

        let pool_options = match engine {
            Engine::Sqlite => {
                prepare_sqlite_file(url)?;
                AnyPoolOptions::new()
                    .max_connections(8)
                    .min_connections(1)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
            }
            Engine::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = pool_options
            // sqlx checks every connection it hands out by default (a ping: on PostgreSQL
            // a round trip before every query, doubling the cost of a one-statement
            // request). Only a connection idle for 5 s is checked, so under load none
            // is. The price: after a database restart, a connection used within the last
            // 5 s fails its next query (an error answer, or an outbox round retried)
            // instead of being replaced quietly; sqlx then drops it. sqlx still checks
            // every connection as it goes back to the pool, after the query's answer.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= CHECK_IDLE_CONNECTIONS_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect { target, source })?;
        Ok(Database {
            pool,
            engine,
            write_gate: Arc::default(),
        })
    }

    /// Connects and brings the schema up to date; what the server does at start-up.
    pub async fn connect_and_migrate(url: &str) -> Result<Database, DbError> {
        let db = Database::connect(url).await?;
        db.migrate().await?;
        Ok(db)
    }

    pub async fn migrate(&self) -> Result<(), DbError> {
        let migrator = match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Applies the migrations up to `version` only: a database as an older release left it,
    /// for tests of what a later migration does to existing rows.
    #[doc(hidden)]
    pub async fn migrate_until(&self, version: i64) -> Result<(), DbError> {
        let all = match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        };
        let older = Migrator {
            migrations: std::borrow::Cow::Owned(all.iter().filter(|m| m.version <= version).cloned().collect()),
            ..Migrator::DEFAULT
        };
        older.run(&self.pool).await?;
        Ok(())
    }

    /// Begins a transaction that writes; every write transaction begins here.
    ///
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`). A deferred `BEGIN`
    /// (sqlx's default) takes no lock: the transaction's first read pins a snapshot, and its
    /// first write must then upgrade; a fresh pooled connection reads inside the transaction
    /// before its first write, since preparing a statement for the first time reads the
    /// schema. An upgrade that meets another writer fails at once with `SQLITE_BUSY`
    /// ("database is locked"): the busy timeout does not apply, since waiting could
    /// deadlock. Under a burst of callbacks that lost merchants' consents.
    ///
    /// And before that, writers of this process queue at one gate, in order: SQLite lets one
    /// writer in at a time anyway, and a connection that finds the lock taken waits in
    /// SQLite's busy handler, which sleeps 1, 2, 5, … up to 100 ms between tries. Under a
    /// burst of writes that put a tenth of a second on the slowest of them.
    ///
    /// Never call it while holding a [`WriteTx`] (or [`Database::write_gate`]): on SQLite
    /// the second would wait for the first forever.
    pub async fn begin(&self) -> Result<WriteTx, sqlx::Error> {
        match self.engine {
            Engine::Sqlite => {
                let gate = self.write_gate.clone().lock_owned().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx { tx, _gate: Some(gate) })
            }
            Engine::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _gate: None,
            }),
        }
    }

    /// On SQLite, this process's write gate (see [`Database::begin`]), for a write made
    /// outside a transaction; `None` on PostgreSQL. Hold it while the statement runs.
    pub async fn write_gate(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.engine {
            Engine::Sqlite => Some(self.write_gate.clone().lock_owned().await),
            Engine::Postgres => None,
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the folder of a `sqlite:` URL's file and asks sqlx to create the file.
fn prepare_sqlite_file(url: &str) -> Result<(), DbError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::create_dir_all(parent).map_err(|source| DbError::CreateFolder {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    if !Path::new(path).exists() {
        // sqlx opens read-write without create unless asked; create an empty file instead
        // of rewriting the URL, so every query string the operator wrote still applies.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| DbError::CreateFolder {
                path: path.to_string(),
                source,
            })?;
    }
    Ok(())
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_chosen_by_scheme() {
        assert_eq!(Engine::from_url("sqlite://data/x.db"), Some(Engine::Sqlite));
        assert_eq!(Engine::from_url("sqlite::memory:"), Some(Engine::Sqlite));
        assert_eq!(Engine::from_url("postgres://u@h/d"), Some(Engine::Postgres));
        assert_eq!(Engine::from_url("postgresql://u@h/d"), Some(Engine::Postgres));
        assert_eq!(Engine::from_url("mysql://u@h/d"), None);
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        let shown = redact_url("postgres://app:hunter2@db.internal:5432/awx");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal"));
    }
}
