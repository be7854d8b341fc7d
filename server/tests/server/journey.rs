//! The merchant journey over real HTTP: accounts, sessions, CSRF, and every path of the
//! OAuth callback against the embedded simulator.

use awx_onboard::db::Engine;
use awx_onboard::simulator::{Endpoint, FaultKind};
use awx_onboard::store::{ConnectionStatus, EventKind};
use awx_onboard_server::testing::{assert_to_log_in, eventually, location, query, TestApp, HARBOUR_COFFEE, PASSWORD};
use reqwest::StatusCode;

const ACCOUNT: &str = HARBOUR_COFFEE;

#[tokio::test]
async fn the_authorize_redirect_carries_exactly_the_documented_parameters() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    let url = browser.start("existing").await;
    assert!(url.starts_with(&app.services().authorization.settings().authorize_url));
    let params = query(&url);
    let mut keys: Vec<&str> = params.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["redirect_uri"], format!("{}/oauth/callback", app.base));
    assert_eq!(params["scope"], "account_details:read");
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params["state"].len() >= 43, "at least 256 random bits, base64url");
    assert_eq!(params["code_challenge"].len(), 43);
    let sign_up = query(&browser.start("signup").await);
    assert_eq!(sign_up["sign_up"], "true");
    assert_ne!(sign_up["state"], params["state"], "a fresh state every time");
    app.stop().await;
}

async fn connecting_stores_the_connection(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    assert_eq!(app.connection_status("ana@example.com").await, None);
    let callback = browser.authorized_callback(ACCOUNT).await;
    assert_eq!(browser.callback(&callback).await, "/connection?notice=connected");
    assert_eq!(
        app.connection_status("ana@example.com").await,
        Some(ConnectionStatus::Connected)
    );
    let page = browser.get("/connection").await.text().await.unwrap();
    assert!(page.contains("Harbour Coffee Roasters Pty Ltd"));
    assert!(
        !page.contains("awx_at_") && !page.contains("awx_rt_"),
        "no token reaches the browser"
    );
    // Replaying the same callback is refused and changes nothing.
    assert_eq!(
        browser.callback(&callback).await,
        "/connect/problem?reason=reused_state"
    );
    app.stop().await;
}

awx_onboard::both_engines!(connecting_stores_the_connection);

#[tokio::test]
async fn every_bad_callback_has_its_own_page_and_stores_nothing() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    let redirect_base = format!("{}/oauth/callback", app.base);

    assert_eq!(
        browser.callback(&format!("{redirect_base}?code=x")).await,
        "/connect/problem?reason=missing_state"
    );
    assert_eq!(
        browser
            .callback(&format!("{redirect_base}?code=x&state=never-issued"))
            .await,
        "/connect/problem?reason=unknown_state"
    );

    // Declined on Airwallex.
    let declined = browser
        .consent(&browser.start("existing").await, "decline", ACCOUNT)
        .await;
    assert!(declined.contains("error=access_denied"));
    assert_eq!(browser.callback(&declined).await, "/connect/problem?reason=declined");

    // Another error from Airwallex, and a code Airwallex does not accept.
    for (answer, problem) in [
        (
            "error=server_error",
            "/connect/problem?reason=airwallex_error&code=server_error",
        ),
        ("code=forged", "/connect/problem?reason=exchange_failed"),
    ] {
        let state = query(&browser.start("existing").await)["state"].clone();
        let callback = format!("{redirect_base}?{answer}&state={state}");
        assert_eq!(browser.callback(&callback).await, problem, "{answer}");
    }

    // Airwallex failing while we exchange the code.
    let callback = browser.authorized_callback(ACCOUNT).await;
    app.sim().inject(Endpoint::Token, FaultKind::Error500, 1);
    assert_eq!(browser.callback(&callback).await, "/connect/problem?reason=unreachable");

    // Too slow: more than 10 minutes between start and callback.
    let callback = browser.authorized_callback(ACCOUNT).await;
    app.services().clock.advance(601);
    assert_eq!(
        browser.callback(&callback).await,
        "/connect/problem?reason=expired_state"
    );

    assert_eq!(
        app.connection_status("ana@example.com").await,
        None,
        "nothing was stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_state_only_works_in_the_session_that_started_it() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let first = app.signed_up_merchant("ana@example.com").await;
    let callback = first.authorized_callback(ACCOUNT).await;

    // The same merchant, logged in from another browser.
    let second = app.browser();
    let login = second.log_in_with("ana@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        second.callback(&callback).await,
        "/connect/problem?reason=other_session"
    );

    // Another merchant.
    let third = app.signed_up_merchant("bo@example.com").await;
    let callback = first.authorized_callback(ACCOUNT).await;
    assert_eq!(third.callback(&callback).await, "/connect/problem?reason=other_session");
    assert_eq!(app.connection_status("ana@example.com").await, None);
    assert_eq!(app.connection_status("bo@example.com").await, None);

    // Not logged in at all: to the login page, the state untouched.
    let anonymous = app.browser();
    let callback = first.authorized_callback(ACCOUNT).await;
    assert_eq!(
        anonymous.callback(&callback).await,
        "/login?next=%2Fconnection&notice=login_to_connect"
    );
    assert_eq!(first.callback(&callback).await, "/connection?notice=connected");
    app.stop().await;
}

#[tokio::test]
async fn account_rules() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.browser();
    let refused = [
        ("not-an-email", PASSWORD, 422, "valid email"),
        ("ana@example.com", "short", 422, "at least 12"),
        ("ana@example.com", "password1234", 422, "too common"),
    ];
    for (email, password, status, message) in refused {
        let response = browser.sign_up_with(email, password).await;
        assert_eq!(response.status().as_u16(), status);
        assert!(response.text().await.unwrap().contains(message), "{message}");
    }
    browser.sign_up("  Ana@Example.com ").await;
    let again = app.browser().sign_up_with("ana@example.com", PASSWORD).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);

    // Wrong password and unknown account: the same answer.
    let stranger = app.browser();
    let wrong = stranger.log_in_with("ana@example.com", "wrong password!").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let wrong_text = wrong.text().await.unwrap();
    let unknown = stranger.log_in_with("nobody@example.com", "wrong password!").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let unknown_text = unknown.text().await.unwrap();
    for text in [&wrong_text, &unknown_text] {
        assert!(text.contains("Email or password is incorrect."));
        assert!(!text.contains("wrong password!"), "the password is not echoed");
    }
    let ok = stranger.log_in_with("ANA@example.com", PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ok), "/connection");
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_429() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.browser().sign_up("ana@example.com").await;
    let attacker = app.browser();
    for _ in 0..5 {
        let response = attacker.log_in_with("ana@example.com", "guess guess guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = attacker.log_in_with("ana@example.com", PASSWORD).await;
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert!(blocked.text().await.unwrap().contains("Too many failed attempts"));
    // After the window the account opens again.
    app.services().clock.advance(15 * 60 + 1);
    let later = attacker.log_in_with("ana@example.com", PASSWORD).await;
    assert_eq!(later.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

#[tokio::test]
async fn sessions_are_safe_cookies_cycled_at_login_and_deleted_at_logout() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.browser();
    let response = browser.sign_up_with("ana@example.com", PASSWORD).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("awx_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http in tests");
    let first_id = cookie.split(';').next().unwrap().to_string();

    let login = browser.log_in_with("ana@example.com", PASSWORD).await;
    let cycled = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert_ne!(cycled.split(';').next().unwrap(), first_id, "a new session id at login");

    assert_eq!(app.row_count("sessions").await, 1);
    let logout = browser.post("/logout", &[]).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.row_count("sessions").await, 0, "deleted on the server");
    assert_to_log_in(&browser.get("/connection").await, "after logging out");
    app.stop().await;
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = [("email", "ana@example.com"), ("password", PASSWORD)];
    let signup = format!("{}/signup", app.base);
    for (header, status, why) in [
        (None, StatusCode::FORBIDDEN, "no Origin"),
        (
            Some(("origin", "https://evil.example")),
            StatusCode::FORBIDDEN,
            "another origin",
        ),
        (
            Some(("referer", signup.as_str())),
            StatusCode::SEE_OTHER,
            "a same-origin Referer is enough",
        ),
    ] {
        let mut request = client.post(&signup).form(&form);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        assert_eq!(request.send().await.unwrap().status(), status, "{why}");
    }
    assert_eq!(app.row_count("merchants").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_connection_page_shows_revocation_and_reconnecting_keeps_history() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.connected_merchant("ana@example.com", ACCOUNT).await;
    assert_eq!(app.sim().revoke_account(ACCOUNT), 1);
    // Past the account cache, the page goes through the vault and meets the 401.
    app.services().clock.advance(61);
    let page = eventually(
        "the page shows the revocation",
        std::time::Duration::from_secs(5),
        || async {
            let page = browser.page("/connection").await;
            page.contains("Needs reconnection").then_some(page)
        },
    )
    .await;
    assert!(page.contains("Reconnect Airwallex"));
    let callback = browser.authorized_callback(ACCOUNT).await;
    assert_eq!(browser.callback(&callback).await, "/connection?notice=connected");
    let id = app.connection_id("ana@example.com").await;
    let kinds: Vec<EventKind> = app
        .services()
        .store()
        .events(id, None, 10)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Connected, EventKind::Revoked, EventKind::Reconnected]
    );
    app.stop().await;
}

/// A platform's launch day on the embedded SQLite: 64 signed-up merchants click
/// **Connect Airwallex** at once, 32 in parallel. An authorization code is exchanged once
/// only, so every callback that fails loses that merchant's consent.
async fn merchants_connecting_at_once_all_connect(engine: Engine) {
    use futures::StreamExt;
    const MERCHANTS: usize = 64;
    let app = TestApp::spawn_with(engine, &[("SIGN_UPS_PER_ADDRESS_PER_HOUR", "1000")]).await;
    let mut browsers = Vec::new();
    for i in 0..MERCHANTS {
        let browser = app.signed_up_merchant(&format!("launch{i}@example.com")).await;
        browsers.push(browser);
    }
    let outcomes: Vec<String> = futures::stream::iter(browsers)
        .map(|browser| async move {
            let callback = browser.authorized_callback(ACCOUNT).await;
            let response = browser.get(&callback).await;
            format!("{} {}", response.status().as_u16(), location(&response))
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let failed: Vec<&String> = outcomes
        .iter()
        .filter(|o| *o != "303 /connection?notice=connected")
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {MERCHANTS} callbacks failed: {failed:?}",
        failed.len()
    );
    for i in 0..MERCHANTS {
        assert_eq!(
            app.connection_status(&format!("launch{i}@example.com")).await,
            Some(ConnectionStatus::Connected)
        );
    }
    app.stop().await;
}
awx_onboard::both_engines!(merchants_connecting_at_once_all_connect);
