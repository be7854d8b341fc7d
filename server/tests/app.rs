//! The real server on a random port, over real HTTP, on SQLite and PostgreSQL.

use std::collections::HashMap;

use awx_onboard::db::Engine;
use awx_onboard::store::ConnectionStatus;
use awx_onboard_server::config::Config;
use awx_onboard_server::testing::TestServer;
use awx_onboard_server::Application;

struct TestApp {
    server: TestServer,
    base: String,
    state: awx_onboard_server::state::AppState,
    client: reqwest::Client,
}

async fn spawn_app(engine: Engine) -> TestApp {
    let server = TestServer::start(engine).await;
    TestApp {
        base: server.base.clone(),
        state: server.state.clone(),
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        server,
    }
}

impl TestApp {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request")
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

async fn health_and_readiness(engine: Engine) {
    let app = spawn_app(engine).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    // With the database gone, the instance is alive but not ready.
    app.state.services.db.close().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    app.stop().await;
}

#[tokio::test]
async fn sqlite_health_and_readiness() {
    health_and_readiness(Engine::Sqlite).await;
}

#[tokio::test]
async fn postgres_health_and_readiness() {
    health_and_readiness(Engine::Postgres).await;
}

#[tokio::test]
async fn pages_render_on_the_server_with_security_headers() {
    let app = spawn_app(Engine::Sqlite).await;
    let home = app.get("/").await;
    assert_eq!(home.status(), 200);
    let headers = home.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("'nonce-"), "pages carry a script nonce: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = home.text().await.unwrap();
    assert!(html.contains("Connect your Airwallex account in a minute"));
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the header's nonce"
    );

    let missing = app.get("/definitely/not/here").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("We could not find that page"));

    let health = app.get("/healthz").await;
    assert!(health.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    app.stop().await;
}

#[tokio::test]
async fn a_bad_database_url_stops_start_up_with_a_clear_message() {
    let vars: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing".to_string()),
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0".to_string()),
        ("AIRWALLEX_SIM_ADDR", "127.0.0.1:0".to_string()),
    ]);
    let config = Config::from_lookup(&move |name| vars.get(name).cloned()).unwrap();
    let error = match Application::build(config).await {
        Ok(_) => panic!("start-up must fail without a database"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("database start-up failed"), "{error}");
    assert!(error.contains("could not connect"), "{error}");
}

/// Consents on the embedded simulator over HTTP and stores the connection through the
/// vault; returns the merchant id.
async fn connect_through_the_simulator(app: &TestApp, email: &str) -> i64 {
    let services = &app.state.services;
    let merchant = awx_onboard::testing::insert_merchant(&services.db, email).await;
    let form = [
        ("response_type", "code"),
        ("client_id", services.oauth.client_id.as_str()),
        ("redirect_uri", services.oauth.redirect_uri.as_str()),
        ("scope", "account_details:read"),
        ("state", "s1"),
        ("decision", "authorize"),
        ("account", "acct_hX2kq9TfRz3Lw8VbN4aP1c"),
    ];
    let consent = app
        .client
        .post(&services.oauth.authorize_url)
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = consent.headers()["location"].to_str().unwrap().to_string();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    services
        .vault
        .connect(
            merchant,
            &awx_onboard::secret::Token::new(code),
            &services.oauth.redirect_uri,
            None,
            "test",
        )
        .await
        .unwrap();
    merchant
}

#[tokio::test]
async fn a_revocation_on_the_simulator_reaches_the_app_by_signed_webhook() {
    let app = spawn_app(Engine::Sqlite).await;
    let merchant = connect_through_the_simulator(&app, "m@x.example").await;
    let store = app.state.services.store().clone();
    assert_eq!(
        store.by_merchant(merchant).await.unwrap().unwrap().status,
        ConnectionStatus::Connected
    );

    // A forged delivery is refused and changes nothing.
    let forged = app
        .client
        .post(format!("{}/webhooks/airwallex", app.base))
        .header("x-timestamp", (app.state.services.clock.now() * 1000).to_string())
        .header("x-signature", "deadbeef")
        .body(r#"{"name":"connection.disconnected","account_id":"acct_hX2kq9TfRz3Lw8VbN4aP1c"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(
        store.by_merchant(merchant).await.unwrap().unwrap().status,
        ConnectionStatus::Connected
    );

    let revoked = app
        .client
        .post(format!("{}/__sim/revoke", app.state.airwallex.api_url))
        .json(&serde_json::json!({"account_id": "acct_hX2kq9TfRz3Lw8VbN4aP1c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let mut status = ConnectionStatus::Connected;
    for _ in 0..100 {
        status = store.by_merchant(merchant).await.unwrap().unwrap().status;
        if status != ConnectionStatus::Connected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let row = store.by_merchant(merchant).await.unwrap().unwrap();
    assert_eq!(status, ConnectionStatus::NeedsReconnect);
    assert_eq!(row.status_reason.as_deref(), Some("revoked"));
    let events = store.events(row.id, None, 10).await.unwrap();
    assert_eq!(events[0].kind, "revoked");
    assert_eq!(events[0].actor, "airwallex:webhook");
    app.stop().await;
}

#[tokio::test]
async fn bodiless_errors_become_pages_in_the_app_style() {
    let app = spawn_app(Engine::Sqlite).await;
    let wrong_method = app.get("/oauth/start").await;
    assert_eq!(wrong_method.status(), 405);
    assert!(wrong_method.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = wrong_method.text().await.unwrap();
    assert!(html.contains("Not allowed") && html.contains("/pkg/awx-onboard.css"));
    app.stop().await;
}
