//! Test support (feature `testing`): a real server on a free port with a throwaway
//! database and its embedded simulator, a browser-like client that signs up, logs in and
//! connects Airwallex over real HTTP, and polling for what happens in the background.

pub mod bench;
pub mod receiver;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::oneshot;

use app::paths;
use awx_onboard::accounts::{Account, Password, Role};
use awx_onboard::db::Engine;
use awx_onboard::services::Services;
use awx_onboard::simulator::Simulator;
use awx_onboard::store::{ConnectionRow, ConnectionStatus};
use awx_onboard::testing::TestDatabase;

pub use awx_onboard::simulator::{HARBOUR_COFFEE, LIM_WEI_LING, MAPLE_FINCH};

use crate::config::Config;
use crate::state::AppState;
use crate::Application;

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery staple";

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
        // PUBLIC_URL must be known before binding: take a free port first.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
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
        let app = Application::build(config).await.expect("the app builds");
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

    /// The merchant's connection id (the merchant must have connected once).
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

    pub async fn connection_id(&self, email: &str) -> i64 {
        self.connection(email).await.expect("the merchant has a connection").id
    }

    pub async fn connection_status(&self, email: &str) -> Option<ConnectionStatus> {
        self.connection(email).await.map(|row| row.status)
    }

    /// A merchant signed up and connected to `account` in a browser of their own.
    pub async fn connected_merchant(&self, email: &str, account: &str) -> Browser {
        let browser = self.browser();
        browser.sign_up(email).await;
        browser.connect_airwallex(account).await;
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

/// A browser: its own cookie jar, no automatic redirects, `Origin` set like a browser's.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

/// Where a redirect points.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The query parameters of a URL or a path.
pub fn query(url: &str) -> HashMap<String, String> {
    let absolute = if url.starts_with('/') {
        format!("http://x{url}")
    } else {
        url.to_string()
    };
    url::Url::parse(&absolute)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            base: base.to_string(),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_string()
        }
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        self.http.get(self.url(path_or_url)).send().await.expect("GET")
    }

    /// A form post from one of this app's pages.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("origin", &self.base)
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    pub async fn page(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("a page")
    }

    pub async fn sign_up(&self, email: &str) {
        let response = self
            .post(paths::SIGNUP, &[("email", email), ("password", PASSWORD)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} signs up");
        assert_eq!(location(&response), "/connection?notice=welcome");
    }

    /// Logs in with the password, and with the second factor when one is asked for (an
    /// operator enrols the first time, as a person would: with the key the page shows);
    /// returns the answer that ends the log-in.
    pub async fn log_in(&self, email: &str) -> reqwest::Response {
        let response = self
            .post(paths::LOGIN, &[("email", email), ("password", PASSWORD)])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} logs in");
        if location(&response) != crate::second_factor::SECOND_FACTOR {
            return response;
        }
        self.give_second_factor(email).await
    }

    /// On the second-factor page: enrols (keeping the key and the recovery codes for the
    /// next log-ins of `email` on this app) or enters a code; returns the final answer.
    pub async fn give_second_factor(&self, email: &str) -> reqwest::Response {
        let page = self.page(crate::second_factor::SECOND_FACTOR).await;
        let factor_key = format!("{}|{email}", self.base);
        if let Some(secret) = attribute(&page, "data-secret") {
            let secret = awx_onboard::accounts::second_factor::base32_decode(&secret).expect("a base32 key");
            let code = FACTORS.code_for(&factor_key, &secret);
            let response = self.post(crate::second_factor::SECOND_FACTOR, &[("code", &code)]).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} enrols");
            assert_eq!(location(&response), crate::second_factor::RECOVERY_CODES);
            let codes = self.page(crate::second_factor::RECOVERY_CODES).await;
            FACTORS.keep_recovery(&factor_key, all_attributes(&codes, "data-recovery-code"));
            return response;
        }
        let code = FACTORS.next_code(&factor_key);
        let response = self.post(crate::second_factor::SECOND_FACTOR, &[("code", &code)]).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{email} gives a second factor"
        );
        response
    }

    /// A second-factor code of `email` (enrolled by this browser's app in this process) not
    /// given before, as the person's authenticator app shows it.
    pub fn fresh_code(&self, email: &str) -> String {
        FACTORS.next_code(&format!("{}|{email}", self.base))
    }

    /// Starts the flow; returns the authorize URL the app sent the browser to.
    pub async fn start(&self, mode: &str) -> String {
        let response = self.post(paths::OAUTH_START, &[("mode", mode)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "the flow starts");
        location(&response)
    }

    /// Decides on the simulator's consent page for `account`; returns the callback URL
    /// the simulator redirected to.
    pub async fn consent(&self, authorize_url: &str, decision: &str, account: &str) -> String {
        let mut form: Vec<(String, String)> = query(authorize_url).into_iter().collect();
        form.push(("decision".into(), decision.into()));
        form.push(("account".into(), account.into()));
        let action = authorize_url.split('?').next().expect("a URL");
        let response = self.http.post(action).form(&form).send().await.expect("consent");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "the simulator redirects back");
        location(&response)
    }

    /// Follows the callback; returns where the app sent the browser.
    pub async fn callback(&self, callback_url: &str) -> String {
        let response = self.get(callback_url).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "callback answers with a redirect"
        );
        location(&response)
    }

    /// The whole consent: start, authorize `account` on the simulator, come back connected.
    pub async fn connect_airwallex(&self, account: &str) {
        let callback = self.consent(&self.start("existing").await, "authorize", account).await;
        assert_eq!(self.callback(&callback).await, "/connection?notice=connected");
    }

    /// Uses a connect link as a merchant does: its landing page, its button, then
    /// `decision` for `account` on the simulator's consent page; returns where the callback
    /// sent the browser (the platform's return URL, with the outcome).
    pub async fn use_connect_link(&self, link: &str, decision: &str, account: &str) -> String {
        assert_eq!(
            self.get(link).await.status(),
            StatusCode::OK,
            "the landing page answers"
        );
        let path = link.strip_prefix(&self.base).expect("a link under PUBLIC_URL");
        let response = self.post(path, &[]).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "the link's button starts the flow"
        );
        let callback = self.consent(&location(&response), decision, account).await;
        self.callback(&callback).await
    }

    /// The value of the session cookie (`name=value`), for load generators.
    pub async fn session_cookie_after(&self, response: &reqwest::Response) -> String {
        response.headers()["set-cookie"]
            .to_str()
            .expect("a cookie header")
            .split(';')
            .next()
            .expect("a cookie")
            .to_string()
    }
}

/// The value of the first `name="…"` attribute in `html`.
pub fn attribute(html: &str, name: &str) -> Option<String> {
    all_attributes(html, name).into_iter().next()
}

/// Every value of `name="…"` attributes in `html`, in order.
pub fn all_attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!("{name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| html[at + needle.len()..].chars().take_while(|c| *c != '"').collect())
        .collect()
}

/// Second factors that test browsers enrolled, by app and email: what the person's phone
/// would hold. Each code is given once, as the server requires: the current step's, the
/// next one's, then recovery codes.
struct Factors(std::sync::Mutex<HashMap<String, Factor>>);

struct Factor {
    secret: Vec<u8>,
    last_step: i64,
    recovery: Vec<String>,
}

static FACTORS: std::sync::LazyLock<Factors> =
    std::sync::LazyLock::new(|| Factors(std::sync::Mutex::new(HashMap::new())));

impl Factors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Factor>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_step() -> i64 {
        awx_onboard::time::Clock::system().now() / awx_onboard::accounts::second_factor::STEP_SECONDS
    }

    /// The enrolment's first code (and the key kept).
    fn code_for(&self, key: &str, secret: &[u8]) -> String {
        let step = Self::now_step();
        self.lock().insert(
            key.to_string(),
            Factor {
                secret: secret.to_vec(),
                last_step: step,
                recovery: Vec::new(),
            },
        );
        awx_onboard::accounts::second_factor::hotp(secret, step as u64)
    }

    fn keep_recovery(&self, key: &str, codes: Vec<String>) {
        if let Some(factor) = self.lock().get_mut(key) {
            factor.recovery = codes;
        }
    }

    /// A code not given before: this step's or the next's, else a recovery code.
    fn next_code(&self, key: &str) -> String {
        let mut factors = self.lock();
        let factor = factors
            .get_mut(key)
            .unwrap_or_else(|| panic!("no second factor enrolled for {key} in this process"));
        let step = Self::now_step().max(factor.last_step + 1);
        if step <= Self::now_step() + 1 {
            factor.last_step = step;
            return awx_onboard::accounts::second_factor::hotp(&factor.secret, step as u64);
        }
        factor.recovery.pop().expect("a recovery code left")
    }
}

/// Polls `check` until it returns `Some`, at most `within`; panics naming `what` after.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
