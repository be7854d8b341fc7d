//! Emails through a real SMTP server (the test's own, on a local port): the reconnect
//! email after a revocation on the simulator with a link that works, one per incident,
//! one-click unsubscribe and the merchant's switch, retries while the server is down or
//! refusing, one sender per message over two instances, expiry warnings, the operators'
//! digest, and the outbox page.

use std::time::Duration;

use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard::testing::smtp::{SinkMode, SmtpSink};
use awx_onboard_server::testing::{eventually, TestApp, HARBOUR_COFFEE, MAPLE_FINCH};
use sqlx::Row;

const FROM: &str = "awx-onboard <no-reply@onboard.test>";

async fn spawn_with_mail(engine: Engine, smtp_url: &str) -> TestApp {
    TestApp::spawn_with_mail(engine, smtp_url, &[("MAIL_FROM", FROM)]).await
}

/// One-click unsubscribe (RFC 8058) as a mail provider does it: a POST without cookies or
/// Origin.
async fn one_click_unsubscribe(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
}

/// The subject of the verification every sign-up sends (tests of other mail leave it out).
const VERIFICATION: &str = "Confirm your email address";

/// (status, attempts, last answer) of every message but the sign-ups' verifications,
/// oldest first.
async fn outbox(app: &TestApp) -> Vec<(String, i64, Option<String>, String)> {
    sqlx::query(
        "SELECT status, attempts, last_answer, recipient FROM mail_outbox WHERE kind <> 'verify_email' ORDER BY id",
    )
    .fetch_all(app.services().db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get::<String, _>("status"),
            r.get::<i64, _>("attempts"),
            r.get::<Option<String>, _>("last_answer"),
            r.get::<String, _>("recipient"),
        )
    })
    .collect()
}

async fn reconnect_email_after_revocation(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    sink.ignore_subject(VERIFICATION);
    let app = spawn_with_mail(engine, &sink.url()).await;
    let ana = app.connected_merchant("ana@example.com", MAPLE_FINCH).await;
    app.verify_email("ana@example.com").await;

    assert_eq!(app.sim().revoke_account(MAPLE_FINCH), 1);
    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1, "one email for the revocation");
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["ana@example.com".to_string()]);
    assert_eq!(mail.from, "no-reply@onboard.test");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your Airwallex connection was disconnected")
    );
    let text = mail.part("text/plain").expect("a plain-text part");
    let html = mail.part("text/html").expect("an HTML part");
    assert!(text.contains("Owner, Admin or Finance Admin"), "{text}");
    let connection_url = format!("{}/connection", app.base);
    assert!(text.contains(&connection_url), "{text}");
    assert!(html.contains(&format!("href=\"{connection_url}\"")), "{html}");
    assert!(!html.contains("<img"), "no tracking pixels");
    assert_eq!(mail.header("Auto-Submitted").as_deref(), Some("auto-generated"));
    assert_eq!(
        mail.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = mail.header("List-Unsubscribe").expect("List-Unsubscribe");
    let unsubscribe = unsubscribe.trim_start_matches('<').trim_end_matches('>').to_string();
    assert!(unsubscribe.starts_with(&format!("{}/email/unsubscribe?t=", app.base)));
    assert!(mail.links().contains(&unsubscribe));
    // The outbox keeps only the token's hash.
    let token = unsubscribe.rsplit("t=").next().unwrap().to_string();
    let stored: Vec<String> = sqlx::query_scalar("SELECT unsubscribe_token FROM mail_outbox")
        .fetch_all(app.services().db.pool())
        .await
        .unwrap();
    assert!(
        stored.iter().all(|t| t.starts_with("h:") && !t.contains(&token)),
        "{stored:?}"
    );

    // The link works: the merchant lands on the page whose one button reconnects.
    let page = ana.get(&connection_url).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Reconnect Airwallex"), "the reconnect button is there");
    assert!(page.contains("action=\"/oauth/start\""));

    // The SMTP answer is recorded (just after the server's 250); a second notice of the
    // same incident writes nothing.
    let sent = eventually("the message is recorded as sent", Duration::from_secs(10), || async {
        let rows = outbox(&app).await;
        (rows.len() == 1 && rows[0].0 == "sent").then_some(rows)
    })
    .await;
    assert!(sent[0].2.as_deref().unwrap_or("").starts_with("250"), "{:?}", sent[0].2);
    let connection_id = app.connection_id("ana@example.com").await;
    let again = app
        .services()
        .store()
        .mark_needs_reconnect(
            connection_id,
            awx_onboard::store::ReconnectReason::Revoked,
            "test",
            None,
            app.services().clock.now(),
        )
        .await
        .unwrap();
    assert!(!again, "the connection is not connected any more");
    // Nothing more can go out: the outbox holds the one message, sent.
    let rows = outbox(&app).await;
    assert_eq!((rows.len(), rows[0].0.as_str()), (1, "sent"), "{rows:?}");
    assert_eq!(sink.received().len(), 1, "still one email");

    // One-click unsubscribe as a mail provider does it: a POST without cookies or Origin.
    // A GET only asks.
    let provider = reqwest::Client::new();
    let asked = provider.get(&unsubscribe).send().await.unwrap();
    assert_eq!(asked.status(), 200);
    assert!(asked.text().await.unwrap().contains("Stop these emails"));
    let merchant_id = app.merchant_id("ana@example.com").await;
    assert!(app.services().mail.emails_on(merchant_id).await.unwrap());
    let done = one_click_unsubscribe(&unsubscribe).await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Emails turned off"));
    assert!(!app.services().mail.emails_on(merchant_id).await.unwrap());
    let page = ana.page("/connection").await;
    assert!(
        page.contains("data-emails=\"off\""),
        "the merchant's page shows emails off"
    );
    let forged = provider
        .post(format!("{}/email/unsubscribe?t=nope", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);

    // Turned off: the next incident is recorded as suppressed and nothing is sent.
    ana.connect_airwallex(MAPLE_FINCH).await;
    assert_eq!(app.sim().revoke_account(MAPLE_FINCH), 1);
    let suppressed = eventually(
        "the second incident is in the outbox",
        Duration::from_secs(10),
        || async {
            let rows = outbox(&app).await;
            (rows.len() == 2).then_some(rows)
        },
    )
    .await;
    assert_eq!(suppressed[1].0, "suppressed");
    // Nothing queued is left that could still go out.
    assert!(outbox(&app).await.iter().all(|m| m.0 != "queued"));
    assert_eq!(sink.received().len(), 1, "no email after opting out");

    // The switch on /connection turns them back on.
    let on = ana.post("/connection/emails", &[("emails", "on")]).await;
    assert_eq!(on.status(), 303);
    assert_eq!(
        awx_onboard_server::testing::location(&on),
        "/connection?notice=emails_on"
    );
    assert!(app.services().mail.emails_on(merchant_id).await.unwrap());
    let page = ana.page("/connection").await;
    assert!(page.contains("data-emails=\"on\""), "the page shows the choice");
    let bad = ana.post("/connection/emails", &[("emails", "maybe")]).await;
    assert_eq!(bad.status(), 400);

    // The dashboard's counters (kept by triggers) agree with the rows after all of that.
    ana.post("/connection/disconnect", &[("confirm", "yes")]).await;
    let counted = app.services().operator.status_counts().await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, CAST(COUNT(*) AS BIGINT) FROM connections GROUP BY status ORDER BY status")
            .fetch_all(app.services().db.pool())
            .await
            .unwrap();
    assert_eq!(rows, vec![("disconnected".to_string(), 1)]);
    assert_eq!(
        (
            counted.connected,
            counted.disconnected,
            counted.needs_reconnect.len(),
            counted.not_connected
        ),
        (0, 1, 0, 0)
    );
    app.stop().await;
}
both_engines!(reconnect_email_after_revocation);

/// The SMTP server is down, then refuses for a while, then takes the message: it is sent
/// once. A permanent refusal fails at once, and the operator's Resend sends it later.
#[tokio::test]
async fn retries_until_the_server_takes_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_with_mail(Engine::Sqlite, &format!("smtp://{port}")).await;
    app.connected_merchant("bo@example.com", HARBOUR_COFFEE).await;
    app.verify_email("bo@example.com").await;
    assert_eq!(app.sim().revoke_account(HARBOUR_COFFEE), 1);
    let down = eventually(
        "an attempt against a server that is down",
        Duration::from_secs(10),
        || async { outbox(&app).await.into_iter().find(|m| m.1 >= 1) },
    )
    .await;
    assert_eq!(down.0, "queued", "kept for a retry: {down:?}");

    let sink = SmtpSink::start_on(port).await.unwrap();
    sink.ignore_subject(VERIFICATION);
    sink.set_mode(SinkMode::RefuseForNow);
    app.services().clock.advance(3600);
    let refused = eventually(
        "an attempt that the server refuses for now",
        Duration::from_secs(10),
        || async { outbox(&app).await.into_iter().find(|m| m.1 >= 2) },
    )
    .await;
    assert_eq!(refused.0, "queued");
    assert!(refused.2.as_deref().unwrap_or("").contains("451"), "{refused:?}");
    assert!(sink.received().is_empty());

    sink.set_mode(SinkMode::Accept);
    app.services().clock.advance(3600);
    let sent = eventually("the message goes out", Duration::from_secs(10), || async {
        outbox(&app).await.into_iter().find(|m| m.0 == "sent")
    })
    .await;
    assert!(sent.1 >= 3);
    // The message is recorded as sent, so it is never claimed again.
    assert_eq!(outbox(&app).await.len(), 1);
    assert_eq!(sink.received().len(), 1, "sent exactly once");

    // A permanent refusal: failed at once, with the server's answer, on the outbox page.
    sink.set_mode(SinkMode::Reject);
    app.connected_merchant("cy@example.com", MAPLE_FINCH).await;
    app.verify_email("cy@example.com").await;
    assert_eq!(app.sim().revoke_account(MAPLE_FINCH), 1);
    let failed = eventually("the refusal is recorded", Duration::from_secs(10), || async {
        outbox(&app).await.into_iter().find(|m| m.0 == "failed")
    })
    .await;
    assert_eq!(failed.3, "cy@example.com");
    assert!(failed.2.as_deref().unwrap_or("").contains("550"), "{failed:?}");
    app.create_operator("ops@example.com").await;
    let operator = app.logged_in("ops@example.com").await;
    let page = operator.page("/operator/emails").await;
    assert!(page.contains("data-status=\"failed\""), "{page}");
    assert!(page.contains("550"), "the SMTP answer is shown");
    let id: i64 = sqlx::query_scalar("SELECT id FROM mail_outbox WHERE status = 'failed' AND kind <> 'verify_email'")
        .fetch_one(app.services().db.pool())
        .await
        .unwrap();
    sink.set_mode(SinkMode::Accept);
    let resent = operator.post(&format!("/operator/emails/{id}/resend"), &[]).await;
    assert_eq!(resent.status(), 303);
    let mails = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].to, vec!["cy@example.com".to_string()]);
    let again = operator
        .post(&format!("/operator/emails/{}/resend", id + 100), &[])
        .await;
    assert_eq!(again.status(), 404);
    app.stop().await;
}

/// Two instances on one PostgreSQL database, both sending: every message once.
#[tokio::test]
async fn two_instances_send_each_message_once() {
    const MESSAGES: usize = 300;
    let sink = SmtpSink::start().await.unwrap();
    sink.ignore_subject(VERIFICATION);
    let first = spawn_with_mail(Engine::Postgres, &sink.url()).await;
    let second = first
        .another_instance(&[("SMTP_URL", &sink.url()), ("MAIL_FROM", FROM)])
        .await;
    first.signed_up_merchant("dee@example.com").await;
    first.verify_email("dee@example.com").await;
    let account = first.merchant_id("dee@example.com").await;
    let now = first.services().clock.now();
    for i in 0..MESSAGES {
        sqlx::query(
            "INSERT INTO mail_outbox (dedupe_key, kind, reason, account_id, recipient, unsubscribe_token, status, \
             attempts, next_attempt_at, created_at) VALUES ($1, 'reconnect', 'revoked', $2, $3, $4, 'queued', 0, $5, $5)",
        )
        .bind(format!("load:{i}"))
        .bind(account)
        .bind(format!("r{i}@example.com"))
        .bind(format!("{i:0>32}"))
        .bind(now)
        .execute(first.services().db.pool())
        .await
        .unwrap();
    }
    let mails = sink.wait_for(MESSAGES, Duration::from_secs(60)).await;
    assert_eq!(mails.len(), MESSAGES);
    // Every message recorded as sent: nothing is left that could be sent again.
    let senders: Vec<(String, i64)> = eventually("every outcome recorded", Duration::from_secs(20), || async {
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox WHERE status <> 'sent'")
            .fetch_one(first.services().db.pool())
            .await
            .unwrap();
        let senders: Vec<(String, i64)> = sqlx::query_as(
            "SELECT lease_owner, COUNT(*) FROM mail_outbox WHERE status = 'sent' AND kind <> 'verify_email' \
             GROUP BY lease_owner ORDER BY 1",
        )
        .fetch_all(first.services().db.pool())
        .await
        .unwrap();
        (queued == 0).then_some(senders)
    })
    .await;
    assert_eq!(senders.len(), 2, "both instances sent: {senders:?}");
    assert_eq!(senders.iter().map(|(_, n)| *n as usize).sum::<usize>(), MESSAGES);
    let mut recipients: Vec<String> = sink.received().iter().map(|m| m.to[0].clone()).collect();
    assert_eq!(recipients.len(), MESSAGES, "no message sent twice");
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), MESSAGES);
    assert!(outbox(&first).await.iter().all(|m| m.0 == "sent" && m.1 == 1));
    second.stop().await;
    first.stop().await;
}

async fn expiry_warning_and_digest(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    sink.ignore_subject(VERIFICATION);
    let app = TestApp::spawn_with_mail(engine, &sink.url(), &[("MAIL_FROM", FROM), ("DIGEST_HOUR_UTC", "0")]).await;
    let mail = &app.services().mail;
    app.create_operator("ops@example.com").await;
    app.connected_merchant("eve@example.com", MAPLE_FINCH).await;
    app.verify_email("eve@example.com").await;

    // Nothing needs attention: no digest, no warning.
    assert_eq!(mail.plan().await.unwrap(), 0);

    // The keeper could not rotate: three days left.
    let connection_id = app.connection_id("eve@example.com").await;
    let expires_at = app.services().clock.now() + 3 * 86_400;
    sqlx::query("UPDATE connections SET refresh_expires_at = $1 WHERE id = $2")
        .bind(expires_at)
        .bind(connection_id)
        .execute(app.services().db.pool())
        .await
        .unwrap();
    // The warning and a digest (a token ends within 7 days: attention).
    assert_eq!(mail.plan().await.unwrap(), 2);
    assert_eq!(mail.plan().await.unwrap(), 0, "planned once, however often it runs");
    let mails = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 2);
    let warning = mails
        .iter()
        .find(|m| m.to[0] == "eve@example.com")
        .expect("the merchant is warned");
    assert!(warning
        .header("Subject")
        .unwrap()
        .starts_with("Your Airwallex connection stops working on"));
    assert!(warning
        .part("text/plain")
        .unwrap()
        .contains(&format!("{}/connection", app.base)));
    let digest = mails
        .iter()
        .find(|m| m.to[0] == "ops@example.com")
        .expect("the operator gets the digest");
    let text = digest.part("text/plain").unwrap();
    assert!(text.contains("Connected: 1"), "{text}");
    assert!(text.contains("Refresh tokens ending within 7 days: 1"), "{text}");
    assert!(text.contains(&format!("{}/operator", app.base)));

    // The next day, after a revocation: the digest lists what broke.
    app.sim().revoke_account(MAPLE_FINCH);
    eventually("the revocation is recorded", Duration::from_secs(10), || async {
        (app.connection_status("eve@example.com").await == Some(awx_onboard::store::ConnectionStatus::NeedsReconnect))
            .then_some(())
    })
    .await;
    // Just past midnight: a new day's digest, within 24 hours of the break.
    let now = app.services().clock.now();
    app.services().clock.advance(86_400 - now.rem_euclid(86_400) + 60);
    mail.plan().await.unwrap();
    let mails = sink.wait_for(4, Duration::from_secs(10)).await;
    let digest = mails.iter().rev().find(|m| m.to[0] == "ops@example.com").unwrap();
    assert!(
        digest.header("Subject").unwrap().contains("1 need reconnection"),
        "{:?}",
        digest.header("Subject")
    );
    let text = digest.part("text/plain").unwrap();
    assert!(text.contains("eve@example.com"), "{text}");
    assert!(text.contains("revoked on Airwallex"), "{text}");
    app.stop().await;
}
both_engines!(expiry_warning_and_digest);

/// Without SMTP_URL messages wait in the outbox, and operators see why.
#[tokio::test]
async fn without_a_mail_server_messages_wait() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.connected_merchant("fay@example.com", MAPLE_FINCH).await;
    app.verify_email("fay@example.com").await;
    app.sim().revoke_account(MAPLE_FINCH);
    eventually("the message is queued", Duration::from_secs(10), || async {
        (outbox(&app).await.len() == 1).then_some(())
    })
    .await;
    // Without a mail server nothing claims it: rounds send nothing, and it stays as it was.
    assert_eq!(app.services().mailer.run_once().await.unwrap(), 0);
    let rows = outbox(&app).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("queued", 0));
    app.create_operator("ops@example.com").await;
    let operator = app.logged_in("ops@example.com").await;
    let page = operator.page("/operator/emails").await;
    assert!(page.contains("not sent: no mail server configured"), "{page}");
    assert!(page.contains("fay@example.com"));
    app.stop().await;
}

/// Tokens stored as they were before they were hashed are hashed at start-up; the links
/// already sent keep working.
async fn stored_unsubscribe_tokens_are_hashed_and_old_links_still_work(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    app.browser().sign_up("old@example.com").await;
    let account = app.merchant_id("old@example.com").await;
    let token = "legacyTokenStoredAsItWas_0123456";
    sqlx::query(
        "INSERT INTO mail_outbox (dedupe_key, kind, reason, account_id, recipient, unsubscribe_token, status, \
         attempts, next_attempt_at, created_at) VALUES ('legacy', 'reconnect', 'revoked', $1, 'old@example.com', $2, 'sent', 1, 0, 0)",
    )
    .bind(account)
    .bind(token)
    .execute(app.services().db.pool())
    .await
    .unwrap();
    let hashed = awx_onboard::mail::hash_stored_unsubscribe_tokens(&app.services().db)
        .await
        .unwrap();
    assert_eq!(hashed, 1);
    let stored: String = sqlx::query_scalar("SELECT unsubscribe_token FROM mail_outbox WHERE dedupe_key = 'legacy'")
        .fetch_one(app.services().db.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("h:") && !stored.contains(token));
    let done = one_click_unsubscribe(&format!("{}/email/unsubscribe?t={token}", app.base)).await;
    assert_eq!(done.status(), 200);
    assert!(!app.services().mail.emails_on(account).await.unwrap());
    app.stop().await;
}
both_engines!(stored_unsubscribe_tokens_are_hashed_and_old_links_still_work);
