//! Start-up, health, headers, error pages, webhooks.

use std::collections::HashMap;

use awx_onboard::db::Engine;
use awx_onboard::store::{ConnectionStatus, EventKind};
use awx_onboard_server::config::Config;
use awx_onboard_server::testing::{eventually, styled_page, TestApp, HARBOUR_COFFEE};
use awx_onboard_server::Application;

async fn health_and_readiness(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let browser = app.browser();
    let health = browser.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = browser.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    // With the database gone, the instance is alive but not ready.
    app.state.services.db.close().await;
    assert_eq!(browser.get("/healthz").await.status(), 200);
    let ready = browser.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    app.stop().await;
}

awx_onboard::both_engines!(health_and_readiness);

#[tokio::test]
async fn pages_render_on_the_server_with_security_headers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.browser();
    let home = browser.get("/").await;
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

    let missing = browser.get("/definitely/not/here").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("We could not find that page"));

    let health = browser.get("/healthz").await;
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

#[tokio::test]
async fn a_revocation_on_the_simulator_reaches_the_app_by_signed_webhook() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.connected_merchant("m@x.example", HARBOUR_COFFEE).await;
    let merchant = app.merchant_id("m@x.example").await;
    let store = app.services().store().clone();
    assert_eq!(
        store.by_merchant(merchant).await.unwrap().unwrap().status,
        ConnectionStatus::Connected
    );

    // A forged delivery is refused and changes nothing.
    let forged = browser
        .http
        .post(format!("{}/webhooks/airwallex", app.base))
        .header("x-timestamp", (app.state.services.clock.now() * 1000).to_string())
        .header("x-signature", "deadbeef")
        .body(format!(
            r#"{{"name":"connection.disconnected","account_id":"{HARBOUR_COFFEE}"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(
        store.by_merchant(merchant).await.unwrap().unwrap().status,
        ConnectionStatus::Connected
    );

    assert_eq!(app.sim().revoke_account(HARBOUR_COFFEE), 1);
    let row = eventually(
        "the webhook marks the connection",
        std::time::Duration::from_secs(5),
        || async {
            let row = store.by_merchant(merchant).await.unwrap().unwrap();
            (row.status != ConnectionStatus::Connected).then_some(row)
        },
    )
    .await;
    assert_eq!(row.status, ConnectionStatus::NeedsReconnect);
    assert_eq!(row.status_reason.as_deref(), Some("revoked"));
    let events = store.events(row.id, None, 10).await.unwrap();
    assert_eq!(events[0].kind, EventKind::Revoked);
    assert_eq!(events[0].actor, "airwallex:webhook");
    app.stop().await;
}

#[tokio::test]
async fn bodiless_errors_become_pages_in_the_app_style() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.browser();
    // A public form endpoint asked with the wrong method (guarded areas send anonymous
    // visitors to the login page first).
    let wrong_method = browser.get("/logout").await;
    let html = styled_page(wrong_method, 405).await;
    assert!(html.contains("Not allowed"), "{html}");
    app.stop().await;
}

/// Leptos 0.8 keeps one process-wide flag that suppresses every resource while a route
/// list is generated (`IS_SUPPRESSING_RESOURCE_LOAD` in leptos_server's `resource.rs`); a
/// page whose resource first polls inside that window waits forever. Apps built while
/// pages render (as the tests and benches do, one app each) must never leave a page
/// without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_answer_while_other_apps_are_built() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    let app = TestApp::spawn(Engine::Sqlite).await;
    let stop = Arc::new(AtomicBool::new(false));
    let builder = std::thread::spawn({
        let (stop, state, runtime) = (stop.clone(), app.state.clone(), tokio::runtime::Handle::current());
        move || {
            let _entered = runtime.enter();
            let mut built = 0u32;
            while !stop.load(Ordering::Relaxed) {
                drop(awx_onboard_server::build_router(state.clone()));
                built += 1;
            }
            built
        }
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let requests = (0..24).map(|i| {
        let (client, url) = (client.clone(), format!("{}/", app.base));
        async move {
            tokio::time::sleep(Duration::from_millis(25 * i)).await;
            match client.get(&url).send().await {
                Ok(response) if response.status() == 200 => None,
                Ok(response) => Some(format!("request {i}: {}", response.status())),
                Err(error) => Some(format!("request {i}: no answer within 10 s ({error})")),
            }
        }
    });
    let failures: Vec<String> = futures::future::join_all(requests)
        .await
        .into_iter()
        .flatten()
        .collect();
    stop.store(true, Ordering::Relaxed);
    let built = builder.join().unwrap();
    assert!(built > 0, "apps were built meanwhile");
    assert!(
        failures.is_empty(),
        "{} of 24 pages failed: {failures:?}",
        failures.len()
    );
    app.stop().await;
}
