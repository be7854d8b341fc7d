//! A merchant's account, whole, over real HTTP on both engines: the address verified by a
//! link before any other mail, "Forgot your password?", changing the password, deleting
//! the account (also by an operator), and the local mailbox of the embedded mode.

use std::time::Duration;

use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard::platform::outbox::PlatformEvent;
use awx_onboard::testing::smtp::{ReceivedMail, SmtpSink};
use awx_onboard_server::testing::receiver::WebhookReceiver;
use awx_onboard_server::testing::{location, TestApp, MAPLE_FINCH, PASSWORD};
use reqwest::StatusCode;

async fn with_mail(engine: Engine, sink: &SmtpSink) -> TestApp {
    TestApp::spawn_with_mail(engine, &sink.url(), &[]).await
}

/// The first link below `PUBLIC_URL` + `path` in a message.
fn link(mail: &ReceivedMail, base: &str, path: &str) -> String {
    let text = mail.part("text/plain").unwrap();
    let start = text
        .find(&format!("{base}{path}"))
        .unwrap_or_else(|| panic!("no {path} link in {text}"));
    text[start..].split_whitespace().next().unwrap().to_string()
}

fn to(mails: &[ReceivedMail], email: &str) -> Vec<ReceivedMail> {
    mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == email))
        .cloned()
        .collect()
}

async fn an_address_gets_only_its_verification_link_until_it_is_used(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    let app = with_mail(engine, &sink).await;
    let ana = app.connected_merchant("ana@example.com", MAPLE_FINCH).await;
    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].header("Subject").unwrap().contains("Confirm your email"));
    let verify = link(&mails[0], &app.base, "/verify-email/");
    let page = ana.page("/connection").await;
    assert!(page.contains("data-email-verified=\"no\""), "the page says why");
    // The operator dashboard shows who is unverified.
    app.create_operator("ops@example.com").await;
    let ops = app.logged_in("ops@example.com").await;
    assert!(ops.page("/operator").await.contains("data-unverified"));

    // A revocation: the reconnect notice waits for the verification.
    assert_eq!(app.sim().revoke_account(MAPLE_FINCH), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.received().len(), 1, "nothing but the link until it is used");
    // Sending the link again: at most once a minute.
    let soon = ana.post("/connection/verify-email", &[]).await;
    assert_eq!(location(&soon), "/connection?notice=verification_too_soon");
    app.services().clock.advance(61);
    let again = ana.post("/connection/verify-email", &[]).await;
    assert_eq!(location(&again), "/connection?notice=verification_sent");
    sink.wait_for(2, Duration::from_secs(15)).await;

    // The link's page only asks (mail scanners fetch links); its button verifies.
    assert!(ana.page(&verify).await.contains("Confirm my email address"));
    assert!(ana.page("/connection").await.contains("data-email-verified=\"no\""));
    let used = ana.post(&verify, &[]).await;
    assert_eq!(location(&used), "/connection?notice=email_verified");
    assert!(!ana.page("/connection").await.contains("data-email-verified=\"no\""));
    assert_eq!(
        app.browser().post(&verify, &[]).await.status(),
        StatusCode::GONE,
        "once"
    );
    // Verified: the reconnect notice that waited goes out.
    let mails = sink.wait_for(3, Duration::from_secs(15)).await;
    assert!(
        mails[2].header("Subject").unwrap().contains("disconnected"),
        "{:?}",
        mails[2].header("Subject")
    );
    app.stop().await;
}
both_engines!(an_address_gets_only_its_verification_link_until_it_is_used);

async fn a_forgotten_password_is_reset_by_a_link(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    let app = with_mail(engine, &sink).await;
    let ana = app.signed_up_merchant("ana@example.com").await;
    let phone = app.logged_in("ana@example.com").await;
    sink.wait_for(1, Duration::from_secs(15)).await;

    let page = app.browser().page("/login").await;
    assert!(
        page.contains("href=\"/password-reset\""),
        "Forgot your password? on /login"
    );
    let asked = app
        .browser()
        .post("/password-reset", &[("email", "ana@example.com")])
        .await;
    let nobody = app
        .browser()
        .post("/password-reset", &[("email", "nobody@example.com")])
        .await;
    assert_eq!(asked.status(), nobody.status());
    assert_eq!(
        asked.text().await.unwrap(),
        nobody.text().await.unwrap(),
        "the same answer"
    );
    let mails = sink.wait_for(2, Duration::from_secs(15)).await;
    let resets = to(&mails, "ana@example.com");
    let reset = link(resets.last().unwrap(), &app.base, "/password-reset/");
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM account_tokens")
        .fetch_all(app.services().db.pool())
        .await
        .unwrap();
    let secret = reset.rsplit('/').next().unwrap();
    assert!(stored.iter().all(|h| !h.contains(secret)), "stored as a hash");

    let browser = app.browser();
    assert!(browser.page(&reset).await.contains("ana@example.com"));
    let weak = browser.post(&reset, &[("password", "short")]).await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let new_password = "a brand new pass phrase 42";
    let done = browser.post(&reset, &[("password", new_password)]).await;
    assert_eq!(location(&done), "/login?notice=password_reset");
    // Every session of the account ended; the old password is gone; the link works once.
    for session in [&ana, &phone] {
        assert!(location(&session.get("/connection").await).starts_with("/login"));
    }
    let old = app.browser().log_in_with("ana@example.com", PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app.browser().log_in_with("ana@example.com", new_password).await;
    assert_eq!(location(&new), "/connection");
    assert_eq!(app.browser().get(&reset).await.status(), StatusCode::GONE);

    // At most three links an hour for one account; a link ends after 30 minutes.
    for _ in 0..4 {
        app.browser()
            .post("/password-reset", &[("email", "ana@example.com")])
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resets = to(&sink.received(), "ana@example.com")
        .iter()
        .filter(|m| m.header("Subject").unwrap().contains("Reset"))
        .count();
    assert_eq!(resets, 3, "three an hour");
    let last = to(&sink.received(), "ana@example.com").last().cloned().unwrap();
    let late = link(&last, &app.base, "/password-reset/");
    app.services().clock.advance(31 * 60);
    assert_eq!(app.browser().get(&late).await.status(), StatusCode::GONE);
    app.stop().await;
}
both_engines!(a_forgotten_password_is_reset_by_a_link);

async fn a_password_is_changed_with_the_current_one(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ana = app.signed_up_merchant("ana@example.com").await;
    let other = app.logged_in("ana@example.com").await;
    assert!(ana.page("/connection/account").await.contains("Change your password"));
    let wrong = ana
        .post(
            "/connection/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", "another long pass phrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let changed = ana
        .post(
            "/connection/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "another long pass phrase"),
            ],
        )
        .await;
    assert_eq!(location(&changed), "/connection?notice=password_changed");
    assert_eq!(
        ana.get("/connection").await.status(),
        StatusCode::OK,
        "this session stays"
    );
    assert!(
        location(&other.get("/connection").await).starts_with("/login"),
        "others end"
    );
    app.stop().await;
}
both_engines!(a_password_is_changed_with_the_current_one);

async fn a_merchant_leaves_and_is_forgotten(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, receiver) = WebhookReceiver::subscribed(app.services(), &PlatformEvent::ALL).await;
    let ana = app.connected_merchant("ana@example.com", MAPLE_FINCH).await;
    let id = app.merchant_id("ana@example.com").await;
    let connection = app.connection_id("ana@example.com").await;
    let wrong = ana.post("/connection/delete", &[("password", "not my password")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let deleted = ana.post("/connection/delete", &[("password", PASSWORD)]).await;
    assert_eq!(location(&deleted), "/login?notice=account_deleted");
    receiver
        .wait_for("connection.disconnected", Duration::from_secs(10), |r| {
            r.iter().any(|r| r.body["type"] == "connection.disconnected")
        })
        .await;
    let pool = app.services().db.pool();
    let email: String = sqlx::query_scalar("SELECT email FROM merchants WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(!email.contains("ana@"), "{email}");
    let tokens: Option<Vec<u8>> = sqlx::query_scalar("SELECT refresh_token FROM connections WHERE id = $1")
        .bind(connection)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(tokens.is_none(), "tokens forgotten");
    let details: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM connections WHERE id = $1 AND (account_json IS NOT NULL OR business_name IS NOT NULL)",
    )
    .bind(connection)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(details, 0, "the Airwallex account's details are forgotten");
    for (table, column) in [
        ("platform_events", "payload"),
        ("mail_outbox", "recipient"),
        ("merchants", "email"),
    ] {
        let left: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} LIKE '%ana@example.com%'"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(left, 0, "{table}.{column} forgot the address");
    }
    let business: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM platform_events WHERE payload LIKE '%Finch <Trading>%'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(business, 0, "nor the business name");
    let history: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connection_events WHERE connection_id = $1")
        .bind(connection)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(history >= 2, "the audit trail stays, by id");
    let again = app.browser().log_in_with("ana@example.com", PASSWORD).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    // The address can sign up again, as someone new.
    app.browser().sign_up("ana@example.com").await;

    // An operator does the same for a merchant: asked first, then logged.
    let ben = app
        .connected_merchant("ben@example.com", awx_onboard_server::testing::HARBOUR_COFFEE)
        .await;
    let ben_connection = app.connection_id("ben@example.com").await;
    app.create_operator("ops@example.com").await;
    let ops = app.logged_in("ops@example.com").await;
    let action = format!("/operator/connections/{ben_connection}/delete-merchant");
    let asked = ops.post(&action, &[]).await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked.text().await.unwrap().contains("Delete this merchant"));
    assert_eq!(
        ben.get("/connection").await.status(),
        StatusCode::OK,
        "nothing done yet"
    );
    let done = ops.post(&action, &[("confirm", "yes")]).await;
    assert_eq!(
        location(&done),
        format!("/operator/connections/{ben_connection}?notice=merchant_deleted")
    );
    assert!(location(&ben.get("/connection").await).starts_with("/login"));
    let logged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM security_events WHERE kind = 'merchant_deleted'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(logged, 1);
    app.stop().await;
}
both_engines!(a_merchant_leaves_and_is_forgotten);

/// The embedded mode without SMTP_URL keeps what would be sent at /mailbox, links and all,
/// so that a newcomer can click through.
#[tokio::test]
async fn the_embedded_mode_has_a_local_mailbox() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("LOCAL_MAILBOX", "true")]).await;
    let ana = app.signed_up_merchant("ana@example.com").await;
    let page =
        awx_onboard_server::testing::eventually("the verification in the mailbox", Duration::from_secs(10), || {
            let browser = app.browser();
            async move {
                let page = browser.page("/mailbox").await;
                page.contains("data-to=\"ana@example.com\"").then_some(page)
            }
        })
        .await;
    let start = page.find(&format!("href=\"{}/verify-email/", app.base)).unwrap() + 6;
    let href = page[start..].split('"').next().unwrap().to_string();
    assert_eq!(
        location(&ana.post(&href, &[]).await),
        "/connection?notice=email_verified"
    );
    app.stop().await;
}
