//! Throwaway databases for tests: a SQLite file in a temporary folder, or a fresh
//! PostgreSQL database on the local server (`TEST_POSTGRES_URL`), dropped afterwards.

pub mod pg_wire;
pub mod smtp;

use std::sync::Arc;

use futures::StreamExt;
use sqlx::{Connection, Executor, PgConnection};

use crate::db::{Database, Engine};
use crate::secret::{random_urlsafe, AuthorizationCode};
use crate::simulator::{SimClient, SimConfig, Simulator, DEFAULT_CLIENT_ID};
use crate::store::AccountRecord;
use crate::time::Clock;
use crate::vault::TokenVault;

/// Runs a test scenario `async fn name(engine: Engine)` on both engines: generates
/// `name::sqlite` and `name::postgres` tests.
#[macro_export]
macro_rules! both_engines {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario($crate::db::Engine::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$scenario($crate::db::Engine::Postgres).await;
            }
        }
    };
}

pub const DEFAULT_TEST_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database that exists for one test.
pub struct TestDatabase {
    pub url: String,
    pub engine: Engine,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(std::path::PathBuf),
    PostgresDatabase {
        admin_url: String,
        name: String,
    },
    /// Another handle on a database someone else removes.
    Nothing,
}

impl TestDatabase {
    pub async fn new(engine: Engine) -> TestDatabase {
        match engine {
            Engine::Sqlite => TestDatabase::sqlite(),
            Engine::Postgres => TestDatabase::postgres().await,
        }
    }

    pub fn sqlite() -> TestDatabase {
        let folder = std::env::temp_dir().join(format!("awx-t-{}", random_urlsafe(9)));
        std::fs::create_dir_all(&folder).expect("temporary folder");
        TestDatabase {
            url: format!("sqlite://{}/test.db", folder.display()),
            engine: Engine::Sqlite,
            cleanup: Cleanup::Folder(folder),
        }
    }

    /// Creates `awx_t_<random>` on the local PostgreSQL server. Fails the test if the
    /// server is not reachable: the PostgreSQL tests are real.
    pub async fn postgres() -> TestDatabase {
        let admin_url = std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_POSTGRES_URL.to_string());
        let name = format!("awx_t_{}", random_urlsafe(9).to_lowercase().replace(['-', '_'], "x"));
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is needed for this test: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        let mut url = url::Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        TestDatabase {
            url: url.to_string(),
            engine: Engine::Postgres,
            cleanup: Cleanup::PostgresDatabase { admin_url, name },
        }
    }

    /// The same database for another user (a second instance); its owner removes it.
    pub fn shared(&self) -> TestDatabase {
        TestDatabase {
            url: self.url.clone(),
            engine: self.engine,
            cleanup: Cleanup::Nothing,
        }
    }

    /// Connects and migrates a pool on this database.
    pub async fn connect(&self) -> Database {
        Database::connect_and_migrate(&self.url)
            .await
            .expect("connect and migrate")
    }

    /// Removes the database; call at the end of the test with every pool closed.
    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::Folder(folder) => {
                let _ = std::fs::remove_dir_all(folder);
            }
            Cleanup::PostgresDatabase { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            }
            Cleanup::Nothing => {}
        }
    }
}

/// An Airwallex client for the simulator at `sim_url`, with the simulator's credentials.
pub fn sim_client(sim_url: &str) -> crate::airwallex::AirwallexClient {
    crate::airwallex::AirwallexClient::new(crate::airwallex::AirwallexSettings {
        api_url: sim_url.to_string(),
        client_id: DEFAULT_CLIENT_ID.into(),
        client_secret: secrecy::SecretString::from(crate::simulator::DEFAULT_CLIENT_SECRET),
        api_version: "2024-09-27".into(),
        connect_timeout: std::time::Duration::from_secs(2),
        request_timeout: std::time::Duration::from_secs(5),
    })
}

/// A simulator on a free port, on `clock`, whose one client redirects to `redirect_uri`;
/// with its base URL.
pub async fn spawn_simulator(redirect_uri: &str, clock: &Clock) -> (Simulator, String) {
    let mut config = SimConfig::new(vec![SimClient::default_with_redirect(redirect_uri)]);
    config.clock = clock.clone();
    let sim = Simulator::new(config);
    let addr = sim
        .spawn("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the simulator listens");
    (sim, format!("http://{addr}"))
}

/// Waits until `condition` holds, checking every 5 ms; panics naming `what` after 20 s.
/// What a test waits for instead of sleeping through a race it sets up.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "waited 20 s for: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Inserts a merchant with an unusable password hash; returns its id.
pub async fn insert_merchant(db: &Database, email: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO merchants (email, password_hash, role, created_at) VALUES ($1, 'unusable', 'merchant', 0) \
         RETURNING id",
    )
    .bind(email)
    .fetch_one(db.pool())
    .await
    .expect("insert merchant")
}

/// Connects `count` new merchants to `account` quickly: consent approved on the simulator,
/// the code exchanged over HTTP, the tokens sealed and stored by the vault. Returns the
/// merchants' ids.
pub async fn connect_merchants(
    vault: &Arc<TokenVault>,
    sim: &Simulator,
    redirect_uri: &str,
    account: &str,
    count: usize,
) -> Vec<i64> {
    futures::stream::iter(0..count)
        .map(|i| {
            let (vault, sim, account) = (vault.clone(), sim.clone(), account.to_string());
            let redirect_uri = redirect_uri.to_string();
            async move {
                let db = vault.store().db().clone();
                let merchant = insert_merchant(&db, &format!("bulk{i}-{}@x.example", random_urlsafe(4))).await;
                let code = sim.approve(DEFAULT_CLIENT_ID, &redirect_uri, &account, None);
                let tokens = vault
                    .client()
                    .exchange_code(&AuthorizationCode::new(code), &redirect_uri, None)
                    .await
                    .expect("the code is exchanged");
                let now = vault.clock().now();
                let id = vault.store().ensure_row(merchant, now).await.expect("a row");
                let sealed = vault.seal(id, &tokens, now);
                let record = AccountRecord {
                    account_id: Some(&account),
                    business_name: Some("Bulk Co"),
                    account_json: None,
                };
                vault
                    .store()
                    .store_authorization(id, &sealed, &record, "test", now)
                    .await
                    .expect("stored");
                merchant
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}
