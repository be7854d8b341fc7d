//! A running app on a free port: its own throwaway database, token key and embedded
//! simulator, stopped (or restarted on the same database) when the test says so.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::oneshot;

use awx_onboard::accounts::{Account, Password, Role};
use awx_onboard::db::Engine;
use awx_onboard::services::Services;
use awx_onboard::simulator::Simulator;
use awx_onboard::store::{ConnectionRow, ConnectionStatus};
use awx_onboard::testing::TestDatabase;

use super::{Browser, MAIL_FROM, PASSWORD};
use crate::config::Config;
use crate::state::AppState;
use crate::Application;

/// A running app on a free port.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`, also the `PUBLIC_URL`.
    pub base: String,
    pub state: AppState,
    pub db: TestDatabase,
    /// The token encryption key's file (shared by other instances of the same app).
    pub key_file: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> TestApp {
        TestApp::spawn_with(engine, &[]).await
    }

    /// Starts with extra (or overriding) configuration variables.
    pub async fn spawn_with(engine: Engine, extra: &[(&'static str, &str)]) -> TestApp {
        TestApp::spawn_on(TestDatabase::new(engine).await, None, extra).await
    }

    /// Starts with its mail sent through the SMTP server at `smtp_url` from [`MAIL_FROM`], and
    /// `extra` variables (which may give another `MAIL_FROM`).
    pub async fn spawn_with_mail(engine: Engine, smtp_url: &str, extra: &[(&'static str, &str)]) -> TestApp {
        let mut vars: Vec<(&'static str, &str)> = vec![("SMTP_URL", smtp_url), ("MAIL_FROM", MAIL_FROM)];
        vars.extend_from_slice(extra);
        TestApp::spawn_with(engine, &vars).await
    }

    /// Another instance of this app: the same database, key and simulator (the first
    /// instance's), its own port, pools, vault and background tasks.
    pub async fn another_instance(&self, extra: &[(&'static str, &str)]) -> TestApp {
        let authorize = format!("{}/oauth/authorize", self.sim_url());
        let mut vars: Vec<(&'static str, &str)> = vec![
            ("AIRWALLEX_AUTHORIZE_URL", &authorize),
            ("AIRWALLEX_API_URL", self.sim_url()),
        ];
        vars.extend_from_slice(extra);
        TestApp::spawn_on(self.db.shared(), Some(self.key_file.clone()), &vars).await
    }

    async fn spawn_on(
        db: TestDatabase,
        key_file: Option<std::path::PathBuf>,
        extra: &[(&'static str, &str)],
    ) -> TestApp {
        // PUBLIC_URL names the port: bound here and handed over, so that no other socket
        // can take it between this choice and the app's start.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("a bound address").port();
        let key_file = key_file.unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "awx-test-{port}-{}.key",
                awx_onboard::secret::random_urlsafe(6)
            ))
        });
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", db.url.clone()),
            ("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}")),
            ("PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("AIRWALLEX_SIM_ADDR", "127.0.0.1:0".to_string()),
            ("TOKEN_ENCRYPTION_KEY_FILE", key_file.display().to_string()),
            ("DRAIN_SECONDS", "0".to_string()),
            // Messages wait in the outbox unless a test gives an SMTP server (or asks for
            // the local mailbox).
            ("LOCAL_MAILBOX", "false".to_string()),
        ]);
        for (name, value) in extra {
            vars.insert(name, value.to_string());
        }
        let config = Config::from_lookup(&move |name| vars.get(name).cloned()).expect("test configuration");
        let app = Application::build_on(config, listener).await.expect("the app builds");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            state,
            db,
            key_file,
            stop: Some(stop),
            server,
        }
    }

    pub fn services(&self) -> &Services {
        &self.state.services
    }

    /// The embedded simulator (tests run in `sim` mode).
    pub fn sim(&self) -> &Simulator {
        self.state
            .simulator
            .as_ref()
            .expect("the test app runs the embedded simulator")
    }

    /// The simulator's base URL, for its HTTP controls.
    pub fn sim_url(&self) -> &str {
        &self.state.airwallex.api_url
    }

    /// A new browser: its own cookie jar, no automatic redirects.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// Creates an operator directly (the `create-operator` command has its own test).
    pub async fn create_operator(&self, email: &str) -> Account {
        self.services()
            .accounts
            .create(email, &Password::new(PASSWORD), Role::Operator)
            .await
            .expect("create an operator")
    }

    pub async fn merchant_id(&self, email: &str) -> i64 {
        sqlx::query_scalar("SELECT id FROM merchants WHERE email = $1")
            .bind(email)
            .fetch_one(self.services().db.pool())
            .await
            .expect("the merchant exists")
    }

    /// The merchant's connection row, if the merchant ever connected.
    pub async fn connection(&self, email: &str) -> Option<ConnectionRow> {
        let merchant = self.merchant_id(email).await;
        self.services()
            .store()
            .by_merchant(merchant)
            .await
            .expect("read the connection")
    }

    /// Verifies `email`'s address as its owner would: the link of its newest verification
    /// message (opened from the outbox with the app's key), its button posted.
    pub async fn verify_email(&self, email: &str) {
        let context: String = sqlx::query_scalar(
            "SELECT o.context FROM mail_outbox o JOIN merchants m ON m.id = o.account_id \
             WHERE m.email = $1 AND o.kind = 'verify_email' ORDER BY o.id DESC LIMIT 1",
        )
        .bind(email)
        .fetch_one(self.services().db.pool())
        .await
        .expect("a verification message");
        let link = awx_onboard::mail::SealedLink::from_json(&context).expect("a sealed link");
        let token = self
            .services()
            .vault
            .shared_cipher()
            .open_text(&link.sealed, &link.aad())
            .expect("the link opens");
        let response = self.browser().post(&format!("{}{token}", link.path), &[]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} is verified");
    }

    /// The merchant's connection id (the merchant must have connected once).
    pub async fn connection_id(&self, email: &str) -> i64 {
        self.connection(email).await.expect("the merchant has a connection").id
    }

    pub async fn connection_status(&self, email: &str) -> Option<ConnectionStatus> {
        self.connection(email).await.map(|row| row.status)
    }

    /// How many rows `table` holds.
    pub async fn row_count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.services().db.pool())
            .await
            .expect("count the rows")
    }

    /// Expires the merchant's stored access token, as five minutes would.
    pub async fn expire_access_token(&self, merchant: i64) {
        sqlx::query("UPDATE connections SET access_expires_at = $1 WHERE merchant_id = $2")
            .bind(self.services().clock.now() - 1)
            .bind(merchant)
            .execute(self.services().db.pool())
            .await
            .expect("the access token expires");
    }

    /// A merchant signed up in a browser of their own.
    pub async fn signed_up_merchant(&self, email: &str) -> Browser {
        let browser = self.browser();
        browser.sign_up(email).await;
        browser
    }

    /// A merchant signed up and connected to `account` in a browser of their own.
    pub async fn connected_merchant(&self, email: &str, account: &str) -> Browser {
        let browser = self.signed_up_merchant(email).await;
        browser.connect_airwallex(account).await;
        browser
    }

    /// `email` logged in (with its second factor, if it has one) in a browser of its own.
    pub async fn logged_in(&self, email: &str) -> Browser {
        let browser = self.browser();
        browser.log_in(email).await;
        browser
    }

    /// Requests `path` in `browser` with Airwallex's next account answer `delay_ms` late;
    /// returns once the request waits at the simulator, with its status to come.
    pub async fn slow_page_in_flight(
        &self,
        browser: &Browser,
        path: &str,
        delay_ms: u64,
    ) -> tokio::task::JoinHandle<StatusCode> {
        use awx_onboard::simulator::{Endpoint, FaultKind};
        self.sim()
            .inject(Endpoint::Account, FaultKind::Delay { ms: delay_ms }, 1);
        let calls = self.sim().counters().account_calls;
        let slow = {
            let (browser, path) = (browser.clone(), path.to_string());
            tokio::spawn(async move { browser.get(&path).await.status() })
        };
        awx_onboard::testing::wait_until("the slow page waits for Airwallex", || {
            self.sim().counters().account_calls > calls
        })
        .await;
        slow
    }

    /// Signals shutdown (as SIGTERM would): the drain begins; [`stop`](Self::stop) waits.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server as a restart would, keeping its database (and its embedded
    /// simulator, which keeps serving); [`spawn_on_database`](Self::spawn_on_database) starts
    /// the app again on it.
    pub async fn stop_keeping_database(mut self) -> TestDatabase {
        self.begin_shutdown();
        match tokio::time::timeout(crate::SHUTDOWN_GRACE + Duration::from_secs(5), self.server).await {
            Ok(joined) => joined.expect("server task").expect("server stops cleanly"),
            Err(_) => panic!("the server did not stop within its shutdown grace period"),
        }
        self.db
    }

    /// The app started on a database an earlier one left (a restart), with `extra`.
    pub async fn spawn_on_database(db: TestDatabase, extra: &[(&'static str, &str)]) -> TestApp {
        TestApp::spawn_on(db, None, extra).await
    }

    /// Stops the server (in-flight requests finish) and removes the database.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        // Bounded: a test must fail, not hang, if the server cannot stop.
        match tokio::time::timeout(crate::SHUTDOWN_GRACE + Duration::from_secs(5), self.server).await {
            Ok(joined) => joined.expect("server task").expect("server stops cleanly"),
            Err(_) => panic!("the server did not stop within its shutdown grace period"),
        }
        self.db.remove().await;
    }
}
