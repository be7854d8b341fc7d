//! The operators' account, whole, over real HTTP on both engines: a fresh code before what
//! can take data out (and again after five minutes), invitations that work once and end,
//! removal (never the last), "log out everywhere", keys that expire, the other operators
//! told by email, the security log on the team page and in `/metrics`, and a merchant's
//! own second factor.

use std::time::Duration;

use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard::testing::smtp::SmtpSink;
use awx_onboard_server::second_factor::{RECOVERY_CODES, SECOND_FACTOR};
use awx_onboard_server::testing::{all_attributes, assert_to_log_in, attribute, location, Browser, TestApp, PASSWORD};
use reqwest::StatusCode;

/// Signs `email` in as an operator (created first); the log-in's code is fresh.
async fn operator(app: &TestApp, email: &str) -> Browser {
    app.create_operator(email).await;
    app.logged_in(email).await
}

/// The hidden fields a confirmation page carries on, in order.
fn hidden_fields(page: &str) -> Vec<(String, String)> {
    page.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|rest| {
            let name = attribute(rest, "name").unwrap();
            let value = attribute(rest, "value").unwrap();
            (name, value)
        })
        .collect()
}

async fn post_pairs(browser: &Browser, path: &str, pairs: &[(String, String)]) -> reqwest::Response {
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post(path, &borrowed).await
}

/// `email` confirms on the confirmation page with a fresh code, to go on to `next`.
async fn confirm(browser: &Browser, email: &str, next: &str) -> reqwest::Response {
    let code = browser.fresh_code(email);
    browser
        .post("/operator/confirm", &[("next", next), ("confirm_code", &code)])
        .await
}

async fn a_key_needs_a_fresh_code(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ops = operator(&app, "ops@example.com").await;
    // Within five minutes of the log-in's code: at once.
    let first = ops
        .post(
            "/operator/api-keys",
            &[("name", "at once"), ("scope", "connections:read")],
        )
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(app.row_count("api_keys").await, 1);

    app.services().clock.advance(301);
    let asked = ops
        .post(
            "/operator/api-keys",
            &[
                ("name", "billing backend"),
                ("scope", "tokens:read"),
                ("scope", "connect:write"),
            ],
        )
        .await;
    assert_eq!(asked.status(), StatusCode::FORBIDDEN);
    let page = asked.text().await.unwrap();
    assert!(page.contains("Confirm it"), "{page}");
    assert_eq!(app.row_count("api_keys").await, 1, "no key without a fresh code");
    let carried = hidden_fields(&page);
    assert_eq!(
        carried,
        vec![
            ("name".to_string(), "billing backend".to_string()),
            ("scope".into(), "tokens:read".into()),
            ("scope".into(), "connect:write".into()),
        ],
        "the action is not lost"
    );

    let mut wrong = carried.clone();
    wrong.push(("confirm_code".into(), "000000".into()));
    let refused = post_pairs(&ops, "/operator/api-keys", &wrong).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.row_count("api_keys").await, 1);

    let code = ops.fresh_code("ops@example.com");
    let mut right = carried.clone();
    right.push(("confirm_code".into(), code.clone()));
    let created = post_pairs(&ops, "/operator/api-keys", &right).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.text().await.unwrap().contains("awx_pk_"), "the key, shown once");
    let keys = app.services().api_keys.list().await.unwrap();
    assert_eq!(keys[0].name, "billing backend");
    assert_eq!(keys[0].scopes.len(), 2);

    // Fresh now: the next action goes ahead; five minutes on, it asks again, and the code
    // already given does not count twice.
    let again = ops
        .post(
            "/operator/webhooks",
            &[("url", "https://example.com/hook"), ("event", "connection.connected")],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED, "fresh: no second code");
    app.services().clock.advance(301);
    let mut replay = carried;
    replay.push(("confirm_code".into(), code));
    let replayed = post_pairs(&ops, "/operator/api-keys", &replay).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED, "a code works once");
    assert_eq!(app.row_count("api_keys").await, 2);
    app.stop().await;
}
both_engines!(a_key_needs_a_fresh_code);

async fn exports_connect_links_and_endpoints_ask_too(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("PLATFORM_RETURN_ORIGINS", "https://platform.example")]).await;
    let ops = operator(&app, "ops@example.com").await;
    app.services().clock.advance(301);
    for (path, fields) in [
        ("/operator/webhooks", vec![("url", "https://example.com/hook")]),
        (
            "/operator/connect-links",
            vec![
                ("external_id", "u1"),
                ("email", "u1@example.com"),
                ("return_url", "https://platform.example/back"),
            ],
        ),
        ("/operator/team/invite", vec![("email", "new@example.com")]),
    ] {
        let response = ops.post(path, &fields).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(response.text().await.unwrap().contains("Confirm it"), "{path}");
    }
    for table in ["webhook_endpoints", "connect_sessions", "operator_invitations"] {
        assert_eq!(app.row_count(table).await, 0, "nothing in {table}");
    }

    let csv = ops.get("/operator/token-reads.csv?days=7").await;
    assert_eq!(csv.status(), StatusCode::FORBIDDEN);
    let page = csv.text().await.unwrap();
    assert!(!page.contains("key_id,"), "no CSV yet");
    let fields = hidden_fields(&page);
    assert_eq!(
        fields,
        vec![("next".to_string(), "/operator/token-reads.csv?days=7".to_string())]
    );
    // Somewhere outside the operator area is never where a confirmation leads.
    let elsewhere = confirm(&ops, "ops@example.com", "https://evil.example/").await;
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&elsewhere), "/operator");
    app.services().clock.advance(301);
    let confirmed = confirm(&ops, "ops@example.com", "/operator/token-reads.csv?days=7").await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&confirmed), "/operator/token-reads.csv?days=7");
    let csv = ops.get("/operator/token-reads.csv?days=7").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(csv.headers()["cache-control"], "no-store", "exports are never cached");
    app.stop().await;
}
both_engines!(exports_connect_links_and_endpoints_ask_too);

/// The link in the invitation email `mail` carries.
fn link_in(text: &str, base: &str) -> String {
    let start = text.find(&format!("{base}/invitation/")).expect("an invitation link");
    text[start..].split_whitespace().next().unwrap().to_string()
}

async fn an_invitation_works_once_and_expires(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    let app = TestApp::spawn_with_mail(engine, &sink.url(), &[]).await;
    let ops = operator(&app, "ops@example.com").await;
    let invited = ops.post("/operator/team/invite", &[("email", "New@Example.com")]).await;
    assert_eq!(invited.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&invited), "/operator/team?notice=invited");
    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mails[0].to, vec!["new@example.com".to_string()]);
    let text = mails[0].part("text/plain").unwrap();
    assert!(text.contains("ops@example.com invited you"), "{text}");
    let link = link_in(&text, &app.base);
    let secret = link.rsplit('/').next().unwrap().to_string();
    // The secret is nowhere readable in the database (stored hashed, sealed until sent).
    let outbox: Vec<String> = sqlx::query_scalar("SELECT COALESCE(context, '') FROM mail_outbox")
        .fetch_all(app.services().db.pool())
        .await
        .unwrap();
    assert!(outbox.iter().all(|c| !c.contains(&secret)));
    let team = ops.page("/operator/team").await;
    assert!(team.contains("new@example.com"), "an open invitation is listed");

    let invitee = app.browser();
    let landing = invitee.get(&link).await;
    let status = landing.status();
    let landing = landing.text().await.unwrap();
    assert!(
        status == StatusCode::OK && landing.contains("new@example.com") && landing.contains("ops@example.com"),
        "the invitation's page for {link} (from the mail {text:?}) answered {status}: {landing}"
    );
    let weak = invitee.post(&link, &[("password", "short")]).await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let accepted = invitee.post(&link, &[("password", PASSWORD)]).await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&accepted), SECOND_FACTOR, "on to the enrolment");
    let enrolled = invitee.give_second_factor("new@example.com").await;
    assert_eq!(location(&enrolled), RECOVERY_CODES);
    assert_eq!(invitee.get("/operator").await.status(), StatusCode::OK);

    // Once only.
    let again = app.browser();
    assert_eq!(again.get(&link).await.status(), StatusCode::GONE);
    assert_eq!(
        again.post(&link, &[("password", PASSWORD)]).await.status(),
        StatusCode::GONE
    );
    // The new operator logs in like any other.
    let later = app.logged_in("new@example.com").await;
    assert_eq!(later.get("/operator").await.status(), StatusCode::OK);

    // An invitation ends after 24 hours.
    ops.post("/operator/team/invite", &[("email", "late@example.com")])
        .await;
    // (Besides it, the other operators hear of the invitation and of the acceptance.)
    let late = awx_onboard_server::testing::eventually("the second invitation", Duration::from_secs(15), || async {
        sink.received()
            .into_iter()
            .find(|m| m.to == ["late@example.com"])
            .map(|m| link_in(&m.part("text/plain").unwrap(), &app.base))
    })
    .await;
    app.services().clock.advance(24 * 3600 + 1);
    assert_eq!(app.browser().get(&late).await.status(), StatusCode::GONE);
    // Addresses already in use are refused with a reason.
    let fresh = app.logged_in("ops@example.com").await;
    app.signed_up_merchant("shop@example.com").await;
    for (email, why) in [
        ("new@example.com", "already an operator"),
        ("shop@example.com", "merchant"),
    ] {
        let refused = fresh.post("/operator/team/invite", &[("email", email)]).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{email}");
        assert!(refused.text().await.unwrap().contains(why), "{email}");
    }
    app.stop().await;
}
both_engines!(an_invitation_works_once_and_expires);

async fn operator_ids(app: &TestApp) -> Vec<(i64, String)> {
    app.services()
        .team
        .members()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.email))
        .collect()
}

async fn removal_and_log_out_everywhere(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ana = operator(&app, "ana@example.com").await;
    let ids = operator_ids(&app).await;
    let ana_id = ids[0].0;
    // The last operator stays.
    let last = ana.post(&format!("/operator/team/{ana_id}/remove"), &[]).await;
    assert_eq!(last.status(), StatusCode::CONFLICT);
    assert!(last.text().await.unwrap().contains("last operator"));

    let ben = operator(&app, "ben@example.com").await;
    let ben_phone = app.logged_in("ben@example.com").await;
    let ben_id = operator_ids(&app).await[1].0;
    let team = ana.page("/operator/team").await;
    assert!(team.contains("ben@example.com"));
    assert_eq!(
        all_attributes(&team, "data-sessions"),
        vec!["1".to_string(), "2".to_string()],
        "active sessions per operator"
    );

    // Log out everywhere: both of Ben's browsers are out.
    let ended = ana
        .post(&format!("/operator/team/{ben_id}/log-out-everywhere"), &[])
        .await;
    assert_eq!(location(&ended), "/operator/team?notice=sessions_ended");
    for browser in [&ben, &ben_phone] {
        assert_to_log_in(&browser.get("/operator").await, "after logging out everywhere");
    }
    // Her own: she is out too.
    let own = ana
        .post(&format!("/operator/team/{ana_id}/log-out-everywhere"), &[])
        .await;
    assert!(location(&own).starts_with("/login"));
    assert!(location(&ana.get("/operator").await).starts_with("/login"));

    // Removing Ben (a fresh log-in of Ana's): his log-in no longer works.
    let ana = app.logged_in("ana@example.com").await;
    ben.log_in("ben@example.com").await;
    let removed = ana.post(&format!("/operator/team/{ben_id}/remove"), &[]).await;
    assert_eq!(location(&removed), "/operator/team?notice=operator_removed");
    assert!(location(&ben.get("/operator").await).starts_with("/login"));
    let again = app.browser().log_in_with("ben@example.com", PASSWORD).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(operator_ids(&app).await.len(), 1);
    app.stop().await;
}
both_engines!(removal_and_log_out_everywhere);

async fn expired_keys_answer_key_expired(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ops = operator(&app, "ops@example.com").await;
    let bad = ops
        .post(
            "/operator/api-keys",
            &[("name", "x"), ("scope", "connections:read"), ("expires_in_days", "0")],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let created = ops
        .post(
            "/operator/api-keys",
            &[
                ("name", "for a day"),
                ("scope", "connections:read"),
                ("expires_in_days", "1"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let page = created.text().await.unwrap();
    let key = page
        .split("awx_pk_")
        .skip(1)
        .map(|rest| rest.split(['<', '"']).next().unwrap())
        .find(|rest| rest.len() > 40)
        .map(|rest| format!("awx_pk_{rest}"))
        .expect("the new key, shown once");
    let keys_page = ops.page("/operator/api-keys").await;
    assert!(keys_page.contains("connections:read") && !keys_page.contains(">no end<"));
    let call = |key: String| {
        let base = app.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/api/platform/v1/connections"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
        }
    };
    let listed = call(key.clone()).await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        listed.headers()["cache-control"],
        "no-store",
        "platform answers are never cached"
    );
    app.services().clock.advance(86_400);
    let expired = call(key).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(expired.headers()["cache-control"], "no-store");
    let body: serde_json::Value = expired.json().await.unwrap();
    assert_eq!(body["code"], "key_expired", "{body}");
    app.stop().await;
}
both_engines!(expired_keys_answer_key_expired);

async fn other_operators_hear_of_keys_and_endpoints(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    let app = TestApp::spawn_with_mail(engine, &sink.url(), &[]).await;
    let ana = operator(&app, "ana@example.com").await;
    app.create_operator("ben@example.com").await;
    app.create_operator("cleo@example.com").await;
    // Only what can take data out is announced.
    ana.post(
        "/operator/api-keys",
        &[("name", "directory"), ("scope", "connections:read")],
    )
    .await;
    ana.post("/operator/api-keys", &[("name", "billing"), ("scope", "tokens:read")])
        .await;
    let mails = sink.wait_for(2, Duration::from_secs(15)).await;
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, vec!["ben@example.com".to_string(), "cleo@example.com".into()]);
    let text = mails[0].part("text/plain").unwrap();
    assert!(
        text.contains("ana@example.com created key")
            && text.contains("billing")
            && text.contains("read every merchant's token"),
        "{text}"
    );
    ana.post(
        "/operator/webhooks",
        &[("url", "https://example.com/hook"), ("event", "connection.connected")],
    )
    .await;
    let mails = sink.wait_for(4, Duration::from_secs(15)).await;
    assert!(mails[2..]
        .iter()
        .all(|m| m.part("text/plain").unwrap().contains("https://example.com/hook")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 4, "nothing more, and nothing to Ana herself");
    app.stop().await;
}
both_engines!(other_operators_hear_of_keys_and_endpoints);

async fn the_security_log_is_kept_shown_and_counted(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let ops = operator(&app, "ops@example.com").await;
    let bad = app.browser();
    bad.log_in_with("ops@example.com", PASSWORD).await;
    assert_eq!(
        bad.post(SECOND_FACTOR, &[("code", "000000")]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    ops.post("/operator/api-keys", &[("name", "k"), ("scope", "tokens:read")])
        .await;
    let team = ops.page("/operator/team").await;
    let kinds = all_attributes(&team, "data-security-event");
    for kind in [
        "operator_login",
        "second_factor_enrolled",
        "second_factor_failed",
        "api_key_created",
    ] {
        assert!(kinds.contains(&kind.to_string()), "{kind} in {kinds:?}");
    }
    assert!(team.contains("127.0.0.1"), "log-ins with the address");
    let metrics = app.browser().page("/metrics").await;
    assert!(
        metrics.contains("awx_security_events_total{kind=\"operator_login\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("awx_security_events_total{kind=\"api_key_created\"} 1"));
    assert!(metrics.contains("awx_security_events_total{kind=\"operator_removed\"} 0"));
    // Append-only.
    let pool = app.services().db.pool();
    assert!(sqlx::query("UPDATE security_events SET actor = 'x'")
        .execute(pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM security_events").execute(pool).await.is_err());
    app.stop().await;
}
both_engines!(the_security_log_is_kept_shown_and_counted);

async fn a_merchant_may_turn_a_second_factor_on_and_off(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let shop = app.signed_up_merchant("shop@example.com").await;
    assert!(shop.page("/connection").await.contains("/connection/second-factor"));
    let page = shop.page("/connection/second-factor").await;
    let secret = attribute(&page, "data-secret").expect("the key as text");
    let secret = awx_onboard::accounts::second_factor::base32_decode(&secret).unwrap();
    let step = awx_onboard::time::Clock::system().now() / awx_onboard::accounts::second_factor::STEP_SECONDS;
    let wrong = shop
        .post(
            "/connection/second-factor",
            &[("password", PASSWORD), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let code = awx_onboard::accounts::second_factor::hotp(&secret, step as u64);
    // The session alone does not do: the password first (a stolen cookie locks no one out).
    let no_password = shop.post("/connection/second-factor", &[("code", &code)]).await;
    assert_eq!(no_password.status(), StatusCode::UNAUTHORIZED);
    let on = shop
        .post("/connection/second-factor", &[("password", PASSWORD), ("code", &code)])
        .await;
    assert_eq!(location(&on), RECOVERY_CODES);
    let codes = all_attributes(&shop.page(RECOVERY_CODES).await, "data-recovery-code");
    assert_eq!(codes.len(), 10);

    // Every log-in asks for it now.
    let phone = app.browser();
    let password = phone.log_in_with("shop@example.com", PASSWORD).await;
    assert_eq!(location(&password), SECOND_FACTOR);
    assert!(location(&phone.get("/connection").await).starts_with("/login"));
    let signed_in = phone.post(SECOND_FACTOR, &[("code", &codes[0])]).await;
    assert_eq!(location(&signed_in), "/connection");

    // Off with a code (a recovery code here); then the password alone again.
    let off = shop.post("/connection/second-factor/off", &[("code", &codes[1])]).await;
    assert_eq!(location(&off), "/connection?notice=second_factor_off");
    let plain = app.browser().log_in_with("shop@example.com", PASSWORD).await;
    assert_eq!(location(&plain), "/connection");
    // An operator's cannot be turned off.
    let ops = operator(&app, "ops@example.com").await;
    let refused = ops
        .post(
            "/connection/second-factor/off",
            &[("code", &ops.fresh_code("ops@example.com"))],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    app.stop().await;
}
both_engines!(a_merchant_may_turn_a_second_factor_on_and_off);

/// The links in the local mailbox (the embedded mode without SMTP) to `email`, newest first.
async fn mailbox_links(app: &TestApp, email: &str, path: &str) -> Vec<String> {
    let page = app.browser().page("/mailbox").await;
    page.split("<article")
        .filter(|article| article.contains(&format!("data-to=\"{email}\"")))
        .flat_map(|article| {
            article
                .split("href=\"")
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap().to_string())
                .filter(|href| href.contains(path))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A removed operator stays out: a log-in waiting for its code when they were removed,
/// a reset link asked for before, and an invitation they sent all stop working.
async fn a_removed_operator_cannot_come_back(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("LOCAL_MAILBOX", "true")]).await;
    let ana = operator(&app, "ana@example.com").await;
    let _ben = operator(&app, "ben@example.com").await;
    let ben_id = operator_ids(&app).await[1].0;
    let half_way = app.browser();
    half_way.log_in_with("ben@example.com", PASSWORD).await;
    app.browser()
        .post("/password-reset", &[("email", "ben@example.com")])
        .await;
    let ben_invites = app.logged_in("ben@example.com").await;
    ben_invites
        .post("/operator/team/invite", &[("email", "friend@example.com")])
        .await;
    let (reset, invitation) = awx_onboard_server::testing::eventually("the links", Duration::from_secs(10), || async {
        let reset = mailbox_links(&app, "ben@example.com", "/password-reset/").await;
        let invitation = mailbox_links(&app, "friend@example.com", "/invitation/").await;
        (!reset.is_empty() && !invitation.is_empty()).then(|| (reset[0].clone(), invitation[0].clone()))
    })
    .await;

    let removed = ana.post(&format!("/operator/team/{ben_id}/remove"), &[]).await;
    assert_eq!(location(&removed), "/operator/team?notice=operator_removed");
    // The log-in that waited for its code: gone, no enrolment offered.
    let code = half_way.get(SECOND_FACTOR).await;
    assert!(location(&code).starts_with("/login"), "{:?}", code.status());
    // The reset link and the invitation Ben sent: gone.
    let browser = app.browser();
    assert_eq!(browser.get(&reset).await.status(), StatusCode::GONE);
    assert_eq!(
        browser
            .post(&reset, &[("password", "a brand new pass phrase 7")])
            .await
            .status(),
        StatusCode::GONE
    );
    assert_eq!(browser.get(&invitation).await.status(), StatusCode::GONE);
    let again = app.browser().log_in_with("ben@example.com", PASSWORD).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);

    // An invitation can be cancelled too.
    ana.post("/operator/team/invite", &[("email", "late@example.com")])
        .await;
    let open = app.services().team.open_invitations().await.unwrap();
    let late = open.iter().find(|i| i.email == "late@example.com").unwrap().id;
    let cancelled = ana
        .post(&format!("/operator/team/invitations/{late}/cancel"), &[])
        .await;
    assert_eq!(location(&cancelled), "/operator/team?notice=invitation_cancelled");
    assert!(app.services().team.open_invitations().await.unwrap().is_empty());
    app.stop().await;
}
both_engines!(a_removed_operator_cannot_come_back);

/// Inserts `rows` (SQL value lists) into `into` (a table and its columns), 500 a statement.
async fn insert_rows(app: &TestApp, into: &str, rows: Vec<String>) {
    for chunk in rows.chunks(500) {
        sqlx::query(&format!("INSERT INTO {into} VALUES {}", chunk.join(", ")))
            .execute(app.services().db.pool())
            .await
            .unwrap();
    }
}

/// An operator's download of the export at `path`: its lines.
async fn export_lines(app: &TestApp, path: &str) -> Vec<String> {
    let ops = operator(app, "ops@example.com").await;
    let csv = ops.get(path).await;
    assert_eq!(csv.status(), StatusCode::OK);
    csv.text().await.unwrap().lines().map(str::to_string).collect()
}

/// The token-reads export is streamed a page at a time: more reads than a page, every one
/// once, newest first.
async fn the_token_reads_export_streams_every_read_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    app.connected_merchant("shop@example.com", awx_onboard_server::testing::HARBOUR_COFFEE)
        .await;
    let connection = app.connection_id("shop@example.com").await;
    let reader = app
        .service_key("reader", &[awx_onboard::platform::keys::Scope::TokensRead])
        .await;
    let reads: i64 = 2_500;
    let start = 1_700_000_000 - 1_700_000_000 % 60;
    let rows = (0..reads)
        .map(|i| format!("('{}', {connection}, {}, {})", reader.key.id, start + i * 60, i % 7 + 1))
        .collect();
    insert_rows(&app, "token_reads (key_id, connection_id, minute, reads)", rows).await;
    let lines = export_lines(&app, "/operator/token-reads.csv").await;
    assert_eq!(lines[0], "minute,key_id,key_name,connection_id,merchant_email,reads");
    assert_eq!(lines.len() as i64, reads + 1, "every read, once");
    let minutes: Vec<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
    let mut sorted = minutes.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(sorted.len() as i64, reads, "no read twice");
    assert_eq!(minutes, sorted, "newest first");
    app.stop().await;
}
both_engines!(the_token_reads_export_streams_every_read_once);

/// The proxy-calls export is streamed a page at a time too: more calls than a page, every
/// one once, newest first.
async fn the_proxy_calls_export_streams_every_call_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    app.connected_merchant("shop@example.com", awx_onboard_server::testing::HARBOUR_COFFEE)
        .await;
    let connection = app.connection_id("shop@example.com").await;
    let calls: i64 = 2_500;
    let rows = (0..calls)
        .map(|i| {
            format!(
                "('awx_k', {connection}, 'GET', 'api/v1/call/{i}', 200, 5, 0, 10, {})",
                1_700_000_000 + i
            )
        })
        .collect();
    insert_rows(
        &app,
        "proxy_calls (key_id, connection_id, method, path, status, duration_ms, request_bytes, response_bytes, \
         created_at)",
        rows,
    )
    .await;
    let lines = export_lines(&app, app::paths::OPERATOR_PROXY_CALLS_CSV).await;
    assert_eq!(
        lines[0],
        "at,key_id,key_name,connection_id,merchant_email,method,path,status,duration_ms,request_bytes,response_bytes"
    );
    assert_eq!(lines.len() as i64, calls + 1, "every call, once");
    let numbers: Vec<i64> = lines[1..]
        .iter()
        .map(|l| {
            l.split(',')
                .nth(6)
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let newest_first: Vec<i64> = (0..calls).rev().collect();
    assert_eq!(numbers, newest_first, "each call once, newest first");
    app.stop().await;
}
both_engines!(the_proxy_calls_export_streams_every_call_once);
