//! Operators' second factor over real HTTP on both engines: the password alone opens
//! nothing; enrolment with the key the page shows; each code once; recovery codes once;
//! wrong codes count against the password's limits; secrets encrypted at rest.

use awx_onboard::accounts::second_factor::{base32_decode, hotp, STEP_SECONDS};
use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard_server::second_factor::{RECOVERY_CODES, SECOND_FACTOR};
use awx_onboard_server::testing::{
    all_attributes, assert_to_log_in, attribute, location, Browser, TestApp, HARBOUR_COFFEE, PASSWORD,
};
use reqwest::StatusCode;

fn step_now() -> i64 {
    awx_onboard::time::Clock::system().now() / STEP_SECONDS
}

async fn password(browser: &Browser, email: &str) {
    let response = browser.log_in_with(email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        SECOND_FACTOR,
        "the password is only the first step"
    );
}

async fn code(browser: &Browser, code: &str) -> reqwest::Response {
    browser.post(SECOND_FACTOR, &[("code", code)]).await
}

async fn the_password_alone_opens_nothing(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    app.connected_merchant("shop@example.com", HARBOUR_COFFEE).await;
    let connection = app.connection_id("shop@example.com").await;
    app.create_operator("ops@example.com").await;
    let browser = app.browser();
    password(&browser, "ops@example.com").await;
    let pages = [
        "/operator".to_string(),
        "/operator/api-keys".into(),
        "/operator/webhooks".into(),
        "/operator/emails".into(),
        "/operator/team".into(),
        format!("/operator/connections/{connection}"),
        "/operator/token-reads.csv".into(),
        "/operator/proxy-calls.csv".into(),
        format!("/operator/connections/{connection}/token-reads.csv"),
        format!("/operator/connections/{connection}/proxy-calls.csv"),
    ];
    for page in &pages {
        assert_to_log_in(&browser.get(page).await, page);
    }
    for action in [
        "/operator/api-keys".to_string(),
        "/operator/webhooks".into(),
        "/operator/connect-links".into(),
        "/operator/team/invite".into(),
        "/operator/team/1/remove".into(),
        "/operator/team/1/log-out-everywhere".into(),
        "/operator/confirm".into(),
        format!("/operator/connections/{connection}/refresh"),
        format!("/operator/connections/{connection}/check"),
    ] {
        let response = browser.post(&action, &[("name", "x"), ("scope", "tokens:read")]).await;
        assert_to_log_in(&response, &action);
    }
    let server_fn = browser
        .http
        .post(format!("{}/api/operator/overview", app.base))
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert_eq!(
        server_fn.status(),
        StatusCode::SEE_OTHER,
        "refused as for anyone not signed in"
    );
    assert!(location(&server_fn).starts_with("/login"));
    assert_eq!(app.row_count("api_keys").await, 0, "no key was made");
    app.stop().await;
}
both_engines!(the_password_alone_opens_nothing);

async fn enrolment_codes_and_recovery_codes_each_work_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let operator = app.create_operator("ops@example.com").await;
    let browser = app.browser();
    password(&browser, "ops@example.com").await;
    let page = browser.page(SECOND_FACTOR).await;
    assert!(
        page.contains("<svg") && page.contains("QR code"),
        "a QR code drawn on the server"
    );
    let shown = attribute(&page, "data-secret").expect("the key as text");
    let secret = base32_decode(&shown).unwrap();
    assert_eq!(secret.len(), 20);
    // A reload shows the same key (what the phone scanned stays good).
    assert_eq!(
        attribute(&browser.page(SECOND_FACTOR).await, "data-secret"),
        Some(shown.clone())
    );

    let wrong = code(&browser, "000000").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let step = step_now();
    let first = hotp(&secret, step as u64);
    let enrolled = code(&browser, &first).await;
    assert_eq!(enrolled.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&enrolled), RECOVERY_CODES);
    // Between the enrolment and the page that shows them, the codes wait in the session:
    // sealed, never readable in the sessions table.
    let waiting: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM sessions")
        .fetch_all(app.services().db.pool())
        .await
        .unwrap();
    let codes = all_attributes(&browser.page(RECOVERY_CODES).await, "data-recovery-code");
    assert_eq!(codes.len(), 10);
    for data in &waiting {
        let text = String::from_utf8_lossy(data);
        assert!(
            codes.iter().all(|c| !text.contains(c.as_str())),
            "a recovery code in the sessions table"
        );
    }
    let again = browser.get(RECOVERY_CODES).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER, "shown once");
    assert_eq!(browser.get("/operator").await.status(), StatusCode::OK);

    // At rest: the key encrypted, the recovery codes hashed.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret FROM second_factors WHERE account_id = $1")
        .bind(operator.id)
        .fetch_one(app.services().db.pool())
        .await
        .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));
    let hashes: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM recovery_codes WHERE account_id = $1")
        .bind(operator.id)
        .fetch_all(app.services().db.pool())
        .await
        .unwrap();
    assert_eq!(hashes.len(), 10);
    assert!(hashes
        .iter()
        .all(|h| codes.iter().all(|c| !h.contains(&c.replace('-', "")))));

    // A code is taken once: the same one again (a replay) is refused; the next step's works.
    let second = app.browser();
    password(&second, "ops@example.com").await;
    assert_eq!(
        code(&second, &first).await.status(),
        StatusCode::UNAUTHORIZED,
        "replayed"
    );
    let next = hotp(&secret, (step + 1) as u64);
    let response = code(&second, &next).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/operator");

    // Recovery codes, once each.
    let third = app.browser();
    password(&third, "ops@example.com").await;
    let response = code(&third, &codes[3].to_uppercase()).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "a recovery code, as typed");
    let fourth = app.browser();
    password(&fourth, "ops@example.com").await;
    assert_eq!(
        code(&fourth, &codes[3]).await.status(),
        StatusCode::UNAUTHORIZED,
        "used"
    );
    assert_eq!(
        app.services()
            .second_factors
            .recovery_codes_left(operator.id)
            .await
            .unwrap(),
        9
    );
    assert_eq!(fourth.get("/operator").await.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}
both_engines!(enrolment_codes_and_recovery_codes_each_work_once);

#[tokio::test]
async fn wrong_codes_count_against_the_passwords_limits() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.create_operator("ops@example.com").await;
    // Enrolled once (through the test browser's phone).
    app.browser().log_in("ops@example.com").await;
    let guesser = app.browser();
    password(&guesser, "ops@example.com").await;
    let mut statuses = Vec::new();
    for guess in 0..6 {
        statuses.push(code(&guesser, &format!("{:06}", 111_111 + guess)).await.status());
    }
    assert_eq!(statuses[..5], [StatusCode::UNAUTHORIZED; 5], "{statuses:?}");
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    app.stop().await;
}
