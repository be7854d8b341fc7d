//! Hostile input over real HTTP: redirects, guessing, sign-up floods, common passwords,
//! session lifetimes, Airwallex webhooks taken with care, callback problem pages.

use std::time::Duration;

use awx_onboard::db::Engine;
use awx_onboard::simulator::DEFAULT_WEBHOOK_SECRET;
use awx_onboard::store::ConnectionStatus;
use awx_onboard::webhook_signature;
use awx_onboard_server::testing::{assert_to_log_in, eventually, location, Browser, TestApp, HARBOUR_COFFEE, PASSWORD};
use reqwest::StatusCode;

#[tokio::test]
async fn logging_in_never_continues_to_another_origin() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.browser().sign_up("ana@example.com").await;
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "//evil.example",
        "/%2F%2Fevil.example",
        "/%09/evil.example",
        "https://evil.example",
    ] {
        let browser = app.browser();
        let response = browser
            .post(
                "/login",
                &[("email", "ana@example.com"), ("password", PASSWORD), ("next", next)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(location(&response), "/connection", "{next:?} is not followed");
    }
    // A local target is followed.
    let response = app
        .browser()
        .post(
            "/login",
            &[
                ("email", "ana@example.com"),
                ("password", PASSWORD),
                ("next", "/connect/problem?reason=declined"),
            ],
        )
        .await;
    assert_eq!(location(&response), "/connect/problem?reason=declined");
    app.stop().await;
}

#[tokio::test]
async fn thirty_parallel_wrong_passwords_are_not_all_evaluated() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.browser().sign_up("ana@example.com").await;
    let guesses = (0..30).map(|_| {
        let browser = app.browser();
        tokio::spawn(async move {
            browser
                .log_in_with("ana@example.com", "guess guess guess")
                .await
                .status()
        })
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let evaluated = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(evaluated, 5, "{statuses:?}");
    assert_eq!(refused, 25, "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_sign_ups_from_one_address_is_throttled() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..40 {
        let response = app
            .browser()
            .sign_up_with(&format!("flood{i}@example.com"), PASSWORD)
            .await;
        match response.status() {
            StatusCode::SEE_OTHER => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        accepted,
        awx_onboard::accounts::MAX_SIGN_UPS_PER_ADDRESS,
        "sign-ups accepted from one address"
    );
    assert_eq!(accepted + refused, 40);
    app.stop().await;
}

#[tokio::test]
async fn a_common_password_is_refused_with_a_helpful_message() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for password in ["Password@123", "PASSWORD1234", "Dragon2026!!!", "!!sunshine!!2024"] {
        let response = app.browser().sign_up_with("ana@example.com", password).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{password}");
        let page = response.text().await.unwrap();
        assert!(page.contains("too common"), "{password}");
        assert!(!page.contains(password), "the password is not echoed");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_after_seven_days_however_active() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    let mut hours = 0;
    while hours + 9 < 7 * 24 {
        app.services().clock.advance(9 * 3600);
        hours += 9;
        let response = browser.get("/connection").await;
        assert_eq!(response.status(), StatusCode::OK, "still signed in after {hours} h");
    }
    app.services().clock.advance(9 * 3600);
    assert_to_log_in(&browser.get("/connection").await, "signed out after 7 days");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_session_ends_after_twelve_hours() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    app.services().clock.advance(11 * 3600);
    assert_eq!(browser.get("/connection").await.status(), StatusCode::OK);
    app.services().clock.advance(12 * 3600 + 60);
    assert_eq!(browser.get("/connection").await.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}

async fn set_role(app: &TestApp, email: &str, role: &str) {
    sqlx::query("UPDATE merchants SET role = $1 WHERE email = $2")
        .bind(role)
        .bind(email)
        .execute(app.services().db.pool())
        .await
        .unwrap();
}

async fn a_role_change_takes_effect_at_the_next_request(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    assert_eq!(browser.get("/operator").await.status(), StatusCode::FORBIDDEN);
    set_role(&app, "ana@example.com", "operator").await;
    assert_eq!(browser.get("/operator").await.status(), StatusCode::OK, "promoted");
    set_role(&app, "ana@example.com", "merchant").await;
    assert_eq!(
        browser.get("/operator").await.status(),
        StatusCode::FORBIDDEN,
        "demoted"
    );
    let refused = browser.post("/api/operator/overview", &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}
awx_onboard::both_engines!(a_role_change_takes_effect_at_the_next_request);

#[tokio::test]
async fn a_deleted_account_is_signed_out_at_the_next_request() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    assert_eq!(browser.get("/connection").await.status(), StatusCode::OK);
    // The row gone from under the session (what it refers to first).
    let id = app.merchant_id("ana@example.com").await;
    for table in ["account_tokens", "mail_outbox"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
            .bind(id)
            .execute(app.services().db.pool())
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM merchants WHERE email = $1")
        .bind("ana@example.com")
        .execute(app.services().db.pool())
        .await
        .unwrap();
    assert_to_log_in(&browser.get("/connection").await, "signed out with the account gone");
    app.stop().await;
}

#[tokio::test]
async fn a_request_in_flight_during_logout_does_not_bring_the_session_back() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("ACCOUNT_CACHE_SECONDS", "0")]).await;
    let browser = app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    // Past the keep-alive interval: the next request saves the session again at its end.
    app.services().clock.advance(11 * 60);
    // A slow page (Airwallex answers after 1.5 s) is in flight while the merchant logs out.
    let slow = app.slow_page_in_flight(&browser, "/connection", 1500).await;
    let logout = browser.post("/logout", &[]).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    assert_eq!(
        app.row_count("sessions").await,
        0,
        "the deleted session was not written back"
    );
    let after = browser.get("/connection").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "still logged out");
    app.stop().await;
}

/// A disconnection event as Airwallex signs it, created at `created_at`.
async fn deliver(app: &TestApp, id: &str, account: &str, created_at: &str) -> reqwest::Response {
    let body = serde_json::json!({
        "id": id,
        "name": "connection.disconnected",
        "account_id": account,
        "data": {"id": "conn_x", "account_id": account, "status": "DISCONNECTED", "authorized_scopes": []},
        "created_at": created_at,
        "version": "2024-09-27",
        "source_id": "conn_x",
    })
    .to_string();
    let timestamp = (app.services().clock.now() * 1000).to_string();
    let signature = webhook_signature::sign(DEFAULT_WEBHOOK_SECRET.as_bytes(), &timestamp, body.as_bytes());
    Browser::new(&app.base)
        .http
        .post(format!("{}/webhooks/airwallex", app.base))
        .header("content-type", "application/json")
        .header("x-timestamp", timestamp)
        .header("x-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Airwallex's own timestamp form, `2025-07-24T07:16:00+0000`.
fn airwallex_time(unix: i64) -> String {
    awx_onboard::time::rfc3339(unix).replace('Z', "+0000")
}

#[tokio::test]
async fn a_late_disconnect_does_not_revoke_the_connection_made_after_it() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let before_reconnect = app.services().clock.now();
    app.services().clock.advance(30);
    // The merchant reconnects (a new consent) ...
    browser.connect_airwallex(HARBOUR_COFFEE).await;
    // ... and a retry of a disconnection from before that arrives late.
    let late = deliver(
        &app,
        "6d5b23e7-6f12-4179-b3a6-cbefb532798e",
        HARBOUR_COFFEE,
        &airwallex_time(before_reconnect),
    )
    .await;
    assert_eq!(late.status(), StatusCode::OK);
    assert_eq!(
        app.connection_status("ana@example.com").await,
        Some(ConnectionStatus::Connected),
        "the new connection stands"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_disconnect_for_an_unknown_account_is_acknowledged() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let response = deliver(
        &app,
        "0b7e0a4e-9a53-4b8e-8f0c-3a1d2f9b6c11",
        "acct_nobodyWeKnow",
        &airwallex_time(app.services().clock.now()),
    )
    .await;
    assert!(response.status().is_success(), "{}", response.status());
    app.stop().await;
}

#[tokio::test]
async fn the_same_event_is_applied_once() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    app.services().clock.advance(5);
    let id = "5f0c7a2e-1b7d-4f6a-9e3c-0d8b2a4c6e10";
    let first = deliver(&app, id, HARBOUR_COFFEE, &airwallex_time(app.services().clock.now())).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        app.connection_status("ana@example.com").await,
        Some(ConnectionStatus::NeedsReconnect)
    );
    app.services().clock.advance(30);
    browser.connect_airwallex(HARBOUR_COFFEE).await;
    app.services().clock.advance(30);
    // The same event id again, even claiming a later time, changes nothing.
    let again = deliver(&app, id, HARBOUR_COFFEE, &airwallex_time(app.services().clock.now())).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        app.connection_status("ana@example.com").await,
        Some(ConnectionStatus::Connected)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_late_retry_from_the_simulator_is_ignored_end_to_end() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    assert_eq!(app.sim().revoke_account(HARBOUR_COFFEE), 1);
    eventually("the disconnection arrives", Duration::from_secs(5), || async {
        (app.connection_status("ana@example.com").await == Some(ConnectionStatus::NeedsReconnect)).then_some(())
    })
    .await;
    app.services().clock.advance(10);
    browser.connect_airwallex(HARBOUR_COFFEE).await;
    // Airwallex retries the old delivery (same event) much later.
    app.services().clock.advance(3600);
    let redelivered = app.sim().sent_webhooks();
    assert_eq!(redelivered.len(), 1);
    app.sim().redeliver(&redelivered[0].id).await.expect("redelivered");
    let connection = app.connection_id("ana@example.com").await;
    let events = eventually("the retry is recorded", Duration::from_secs(5), || async {
        let events = app.services().store().events(connection, None, 20).await.unwrap();
        (events[0].kind == awx_onboard::store::EventKind::WebhookIgnored).then_some(events)
    })
    .await;
    assert_eq!(events[0].reason.as_deref(), Some("duplicate_event"));
    assert_eq!(
        app.connection_status("ana@example.com").await,
        Some(ConnectionStatus::Connected)
    );
    app.stop().await;
}

#[tokio::test]
async fn callback_problems_answer_4xx_and_show_only_oauth_error_codes() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.signed_up_merchant("ana@example.com").await;
    let state = awx_onboard_server::testing::query(&browser.start("existing").await)["state"].clone();
    let target = browser
        .callback(&format!(
            "/oauth/callback?error=Call+us+at+%2B1+800+555+0100&state={state}"
        ))
        .await;
    assert_eq!(
        target, "/connect/problem?reason=airwallex_error",
        "no attacker text passed on"
    );
    let forged = browser
        .get("/connect/problem?reason=airwallex_error&code=Call%20us%20at%20%2B1%20800%20555%200100")
        .await;
    assert!(forged.status().is_client_error(), "{}", forged.status());
    let page = forged.text().await.unwrap();
    assert!(!page.contains("Call us"), "attacker text is not shown");
    let genuine = browser
        .get("/connect/problem?reason=airwallex_error&code=temporarily_unavailable")
        .await;
    assert!(genuine.status().is_client_error());
    assert!(genuine.text().await.unwrap().contains("temporarily_unavailable"));
    for reason in [
        "declined",
        "unknown_state",
        "reused_state",
        "expired_state",
        "other_session",
        "exchange_failed",
    ] {
        let response = browser.get(&format!("/connect/problem?reason={reason}")).await;
        assert!(response.status().is_client_error(), "{reason}: {}", response.status());
    }
    app.stop().await;
}

/// The database holds only hashes of session ids: a copy of it (or a backup) opens no
/// session, and the OAuth state's binding to a session is a hash too.
async fn a_copy_of_the_database_opens_no_session(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let browser = app.browser();
    let response = browser.sign_up_with("ana@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = browser.session_cookie_after(&response).await;
    let (name, value) = cookie.split_once('=').expect("name=value");
    assert!(value.len() >= 20, "{cookie}");
    // An authorization in flight is bound to this session.
    browser.start("existing").await;

    let pool = app.services().db.pool();
    let sessions: Vec<String> = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_all(pool)
        .await
        .unwrap();
    let states: Vec<String> = sqlx::query_scalar("SELECT session_id FROM oauth_states")
        .fetch_all(pool)
        .await
        .unwrap();
    assert!(!sessions.is_empty() && !states.is_empty());
    for stored in sessions.iter().chain(&states) {
        assert!(!stored.contains(value), "a stored value is the cookie's");
    }
    if engine == Engine::Sqlite {
        // The file itself (and its write-ahead log), byte for byte.
        let path = app.db.url.trim_start_matches("sqlite://").to_string();
        for file in [path.clone(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "the cookie's value is in {file}"
            );
        }
    }
    // A stored value used as a cookie opens nothing; the real cookie does.
    let thief = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for stored in sessions.iter().chain(&states) {
        let answer = thief
            .get(format!("{}/connection", app.base))
            .header("cookie", format!("{name}={stored}"))
            .send()
            .await
            .unwrap();
        assert_to_log_in(&answer, "a stored value opened a session");
    }
    assert_eq!(browser.get("/connection").await.status(), StatusCode::OK);
    // And the authorization still completes for its own session.
    browser.connect_airwallex(HARBOUR_COFFEE).await;
    app.stop().await;
}
awx_onboard::both_engines!(a_copy_of_the_database_opens_no_session);

/// No route reads a body without a bound: forms and server functions stop at 64 KiB, the
/// platform API at 1 MiB, each with 413 before the handler reads it.
#[tokio::test]
async fn request_bodies_are_bounded_on_every_route() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let browser = app.browser();
    let big = "a=".to_string() + &"x".repeat(70 * 1024);
    for path in [
        "/login",
        "/signup",
        "/api/operator/overview",
        "/api/connection",
        "/operator/api-keys",
    ] {
        let response = browser
            .http
            .post(format!("{}{path}", app.base))
            .header("origin", &app.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    let key = app
        .service_key("k", &[awx_onboard::platform::keys::Scope::ConnectWrite])
        .await;
    let huge = format!("{{\"external_id\":\"{}\"}}", "x".repeat(1_100_000));
    let response = reqwest::Client::new()
        .post(format!("{}/api/platform/v1/connect-sessions", app.base))
        .header("authorization", &key.header)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    app.stop().await;
}

/// Webhook endpoints cannot reach inside the network: refused at registration (addresses
/// and names that resolve there), and again at each delivery (an endpoint stored before
/// the rule, or a name that changed). Loopback is allowed while PUBLIC_URL is loopback.
async fn webhooks_do_not_reach_inside(engine: awx_onboard::db::Engine) {
    use awx_onboard::platform::outbox::PlatformEvent;
    let app = TestApp::spawn(engine).await;
    let webhooks = &app.services().webhooks;
    for inside in [
        "https://10.0.0.8/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.1.20/hooks",
        "https://[fd00::1]/hooks",
        "https://[::ffff:10.0.0.1]/hooks",
    ] {
        let refused = webhooks.create(inside, &[PlatformEvent::Connected], "test").await;
        assert!(
            matches!(refused, Err(awx_onboard::platform::outbox::EndpointError::Refused(_))),
            "{inside}: {refused:?}"
        );
    }
    // Not https (and not this machine): refused too.
    assert!(webhooks
        .create("http://93.184.216.34/hooks", &[PlatformEvent::Connected], "test")
        .await
        .is_err());
    // This machine while PUBLIC_URL is on it too (a developer's set-up): accepted.
    assert!(webhooks
        .create("http://localhost:9/hooks", &[PlatformEvent::Connected], "test")
        .await
        .is_ok());

    // An endpoint stored before the rule: its deliveries are refused, said so, and nothing
    // tells which ports answer inside.
    let (endpoint, _) = webhooks
        .create("http://127.0.0.1:9/hooks", &[PlatformEvent::Connected], "test")
        .await
        .unwrap();
    sqlx::query("UPDATE webhook_endpoints SET url = 'https://10.1.2.3:8443/hooks' WHERE id = $1")
        .bind(endpoint)
        .execute(app.services().db.pool())
        .await
        .unwrap();
    app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let error = eventually("the delivery is refused", Duration::from_secs(15), || async {
        let deliveries = webhooks.deliveries(endpoint, 10).await.unwrap();
        deliveries.into_iter().find_map(|d| d.last_error)
    })
    .await;
    assert!(error.contains("not sent") && error.contains("10.1.2.3"), "{error}");
    app.stop().await;

    // A deployment that delivers inside its own network says so.
    let inside = TestApp::spawn_with(engine, &[("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")]).await;
    assert!(inside
        .services()
        .webhooks
        .create("http://10.0.0.8/hooks", &[PlatformEvent::Connected], "test")
        .await
        .is_ok());
    inside.stop().await;
}
awx_onboard::both_engines!(webhooks_do_not_reach_inside);
