//! Connect sessions over real HTTP on both engines: the platform creates a one-use link for
//! its own merchant, the merchant consents on the simulator and lands back on the platform
//! with the outcome; reconnects in place; the Airwallex account pinned; links that are
//! used, expired or forged; every bad field named; one winner when two instances consume
//! the same link; and the platform told by signed webhooks.

use std::collections::HashSet;
use std::time::Duration;

use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard::platform::keys::Scope;
use awx_onboard::platform::outbox::PlatformEvent;
use awx_onboard::store::{ConnectionStatus, EventKind};
use awx_onboard_server::platform::OPENAPI_PATH;
use awx_onboard_server::testing::platform_api::SeenAnswers;
use awx_onboard_server::testing::receiver::{Received, WebhookReceiver};
use awx_onboard_server::testing::{location, query, Browser, TestApp, HARBOUR_COFFEE, MAPLE_FINCH, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};

const RETURN_URL: &str = "https://platform.example/airwallex/done?tab=billing";

async fn app_with_platform(engine: Engine) -> TestApp {
    TestApp::spawn_with(
        engine,
        &[
            ("PLATFORM_NAME", "Acme Platform"),
            (
                "PLATFORM_RETURN_ORIGINS",
                "https://platform.example, http://127.0.0.1:4999",
            ),
        ],
    )
    .await
}

/// The platform's backend: one key, plain JSON calls.
struct Backend {
    http: reqwest::Client,
    base: String,
    key: String,
    /// Every answer, to check against the OpenAPI document.
    seen: SeenAnswers,
}

impl Backend {
    async fn new(app: &TestApp, scopes: &[Scope]) -> Backend {
        Backend {
            http: reqwest::Client::new(),
            base: app.base.clone(),
            key: app.service_key("platform", scopes).await.header,
            seen: SeenAnswers::default(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("authorization", &self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON body");
        self.seen.record(&method, path, status, &body);
        (status, body)
    }

    async fn create(&self, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, "/api/platform/v1/connect-sessions", Some(&body))
            .await
    }

    /// A session that must be created; returns its answer.
    async fn session_for(&self, external_id: &str, extra: Value) -> Value {
        let mut body = json!({"external_id": external_id, "email": format!("{external_id}@example.com"), "return_url": RETURN_URL});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let (status, answer) = self.create(body).await;
        assert_eq!(status, 201, "{answer}");
        answer
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, None).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// The session `id` as the platform reads it.
    async fn session(&self, id: &str) -> Value {
        self.get(&format!("/api/platform/v1/connect-sessions/{id}")).await.1
    }
}

fn kinds(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.answered == 204)
        .map(|r| r.body["type"].as_str().unwrap().to_string())
        .collect()
}

/// The `status` a merchant comes back to the platform with after using `session`'s link in a
/// browser of their own and authorizing `account` on Airwallex.
async fn status_after_consent(app: &TestApp, session: &Value, account: &str) -> String {
    let link = session["url"].as_str().unwrap();
    let back = app.browser().use_connect_link(link, "authorize", account).await;
    query(&back)["status"].clone()
}

async fn event_count(app: &TestApp, connection_id: i64) -> usize {
    app.services()
        .store()
        .events(connection_id, None, 1000)
        .await
        .unwrap()
        .len()
}

async fn a_platform_connects_its_own_merchant_and_hears_how_it_ended(engine: Engine) {
    let app = app_with_platform(engine).await;
    let (_, receiver) = WebhookReceiver::subscribed(app.services(), &PlatformEvent::ALL).await;
    let backend = Backend::new(&app, &Scope::ALL).await;
    let created = backend
        .session_for(
            "user-42",
            json!({"business_name": "Harbour & Co", "tags": {"plan": "gold", "region": "apac"}}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let url = created["url"].as_str().unwrap().to_string();
    assert!(id.starts_with("cs_"), "{created}");
    assert_eq!(created["external_id"], "user-42");
    let secret = url
        .strip_prefix(&format!("{}/connect-link/", app.base))
        .expect("under PUBLIC_URL");
    assert_eq!(secret.len(), 43, "256 random bits, base64url");
    let merchant = created["merchant_id"].as_i64().unwrap();
    // Stored as a hash only.
    let stored: String = sqlx::query_scalar("SELECT secret_hash FROM connect_sessions WHERE id = $1")
        .bind(&id)
        .fetch_one(app.services().db.pool())
        .await
        .unwrap();
    assert!(!stored.contains(secret) && stored.len() == 64);
    let pending = backend.session(&id).await;
    assert_eq!(
        (pending["status"].as_str(), pending["outcome"].as_str()),
        (Some("pending"), None)
    );

    // A mail scanner fetches the link: the page answers, nothing changes.
    let scanner = app.browser();
    for _ in 0..3 {
        let page = scanner.get(&url).await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("Acme Platform") && html.contains("Harbour &amp; Co"),
            "{html}"
        );
        assert!(html.contains("Connect Airwallex"));
    }
    let still = backend.session(&id).await;
    assert_eq!(still["status"], "pending");

    // The merchant uses it: consent on Airwallex, back on the platform with the outcome.
    let browser = app.browser();
    let back = browser.use_connect_link(&url, "authorize", HARBOUR_COFFEE).await;
    assert!(back.starts_with("https://platform.example/airwallex/done?"), "{back}");
    let params = query(&back);
    assert_eq!(params["tab"], "billing", "the platform's own parameters are kept");
    assert_eq!(params["connect_session"], id);
    assert_eq!(params["status"], "connected");
    assert!(!params.contains_key("reason"));
    let done = backend.session(&id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["outcome"], "connected");
    assert!(done["completed_at"].is_string());
    assert_eq!(done["merchant_id"], merchant);

    // During that session the merchant's page works and leads back to the platform.
    let page = browser.page("/connection").await;
    assert!(page.contains("Harbour Coffee Roasters"), "{page}");
    assert!(page.contains("Back to Acme Platform"), "{page}");

    // A new link for a merchant whose connection is healthy shows it, and the way back.
    let again = backend.session_for("user-42", json!({})).await;
    let healthy = app.browser().page(again["url"].as_str().unwrap()).await;
    assert!(
        healthy.contains("You are connected") && healthy.contains("Harbour Coffee Roasters"),
        "{healthy}"
    );
    assert!(healthy.contains("Back to Acme Platform") && healthy.contains("https://platform.example/airwallex/done"));

    // The platform reads it all by its own id, without ever holding a password.
    let (status, connection) = backend
        .get("/api/platform/v1/merchants/external/user-42/connection")
        .await;
    assert_eq!(status, 200, "{connection}");
    assert_eq!(connection["merchant_id"], merchant);
    assert_eq!(connection["external_id"], "user-42");
    assert_eq!(connection["tags"], json!({"plan": "gold", "region": "apac"}));
    assert_eq!(connection["status"], "connected");
    assert_eq!(connection["account_id"], HARBOUR_COFFEE);
    let (_, listed) = backend.get("/api/platform/v1/connections?external_id=user-42").await;
    assert_eq!(listed["connections"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["connections"][0]["external_id"], "user-42");
    let (_, none) = backend.get("/api/platform/v1/connections?external_id=user-43").await;
    assert_eq!(none["connections"], json!([]));
    let (status, token) = backend
        .post("/api/platform/v1/merchants/external/user-42/access-token")
        .await;
    assert_eq!((status, token["account_id"].as_str()), (200, Some(HARBOUR_COFFEE)));
    let (status, unknown) = backend
        .get("/api/platform/v1/merchants/external/nobody/connection")
        .await;
    assert_eq!((status, unknown["code"].as_str()), (404, Some("not_found")));

    // Such a merchant never logs in with a password: the answer any wrong password gets.
    let stranger = app.browser();
    let login = stranger.log_in_with("user-42@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);

    // The platform heard both, signed, with its id and tags.
    receiver
        .wait_for("connected and completed", Duration::from_secs(10), |r| {
            kinds(r).len() == 2
        })
        .await;
    let received = receiver.accepted();
    let mut seen = kinds(&received);
    seen.sort();
    assert_eq!(seen, ["connect_session.completed", "connection.connected"]);
    for event in &received {
        assert!(event.verified, "{event:?}");
        assert_eq!(event.body["data"]["external_id"], "user-42");
        assert_eq!(event.body["data"]["tags"]["plan"], "gold");
        assert_eq!(event.body["data"]["merchant_id"], merchant);
    }
    let completed = received
        .iter()
        .find(|r| r.body["type"] == "connect_session.completed")
        .unwrap();
    assert_eq!(completed.body["data"]["session_id"], id);
    assert_eq!(completed.body["data"]["outcome"], "connected");
    assert_eq!(completed.body["data"]["reason"], Value::Null);

    // The platform disconnects the merchant: tokens gone, the platform told.
    let (status, after) = backend
        .delete("/api/platform/v1/merchants/external/user-42/connection")
        .await;
    assert_eq!(
        (status, after["status"].as_str()),
        (200, Some("disconnected")),
        "{after}"
    );
    let row = app.connection("user-42@example.com").await.unwrap();
    assert!(row.access_token.is_none() && row.refresh_token.is_none());
    receiver
        .wait_for("disconnected", Duration::from_secs(10), |r| kinds(r).len() == 3)
        .await;
    let events = app.services().store().events(row.id, None, 10).await.unwrap();
    assert_eq!(events[0].kind, EventKind::Disconnected);
    assert!(events[0].actor.starts_with("key:"), "{:?}", events[0]);

    // The platform gives the merchant another email: updated, and the timeline says so.
    backend
        .session_for("user-42", json!({"email": "ana.new@example.com"}))
        .await;
    let events = app.services().store().events(row.id, None, 10).await.unwrap();
    assert_eq!(events[0].kind, EventKind::EmailChanged);
    assert!(app.connection("ana.new@example.com").await.is_some());
    app.stop().await;
}
both_engines!(a_platform_connects_its_own_merchant_and_hears_how_it_ended);

async fn a_new_session_reconnects_in_place_with_the_account_pinned(engine: Engine) {
    let app = app_with_platform(engine).await;
    let (_, receiver) = WebhookReceiver::subscribed(app.services(), &PlatformEvent::ALL).await;
    let backend = Backend::new(&app, &[Scope::ConnectWrite]).await;
    let first = backend.session_for("shop-7", json!({})).await;
    assert_eq!(status_after_consent(&app, &first, HARBOUR_COFFEE).await, "connected");
    let email = "shop-7@example.com";
    let connection_id = app.connection_id(email).await;

    // Airwallex revokes access; the platform sends a new link.
    assert_eq!(app.sim().revoke_account(HARBOUR_COFFEE), 1);
    awx_onboard_server::testing::eventually("needs reconnect", Duration::from_secs(10), || async {
        (app.connection_status(email).await == Some(ConnectionStatus::NeedsReconnect)).then_some(())
    })
    .await;
    let history = event_count(&app, connection_id).await;

    // The merchant consents for another Airwallex account: nothing stored.
    let second = backend.session_for("shop-7", json!({})).await;
    let browser = app.browser();
    let landing = browser.page(second["url"].as_str().unwrap()).await;
    assert!(landing.contains("renewed"), "{landing}");
    let back = browser
        .use_connect_link(second["url"].as_str().unwrap(), "authorize", MAPLE_FINCH)
        .await;
    let params = query(&back);
    assert_eq!(
        (params["status"].as_str(), params["reason"].as_str()),
        ("failed", "account_mismatch"),
        "{back}"
    );
    let row = app.connection(email).await.unwrap();
    assert_eq!(row.status, ConnectionStatus::NeedsReconnect);
    assert_eq!(row.account_id.as_deref(), Some(HARBOUR_COFFEE));
    assert!(row.refresh_token.is_none(), "the other account's tokens were not kept");
    assert_eq!(event_count(&app, connection_id).await, history);

    // The right account: the same connection, reconnected, its history kept.
    let third = backend.session_for("shop-7", json!({})).await;
    assert_eq!(status_after_consent(&app, &third, HARBOUR_COFFEE).await, "reconnected");
    assert_eq!(app.connection_id(email).await, connection_id);
    assert_eq!(app.connection_status(email).await, Some(ConnectionStatus::Connected));
    assert_eq!(event_count(&app, connection_id).await, history + 1);

    // A session that allows the change takes the new account, and says so.
    let fourth = backend
        .session_for("shop-7", json!({"allow_account_change": true}))
        .await;
    assert_eq!(status_after_consent(&app, &fourth, MAPLE_FINCH).await, "reconnected");
    let row = app.connection(email).await.unwrap();
    assert_eq!((row.id, row.account_id.as_deref()), (connection_id, Some(MAPLE_FINCH)));
    let events = app.services().store().events(connection_id, None, 5).await.unwrap();
    let changed = events
        .iter()
        .find(|e| e.kind == EventKind::AccountChanged)
        .expect("the timeline says so");
    assert_eq!(
        changed.detail.as_deref(),
        Some(format!("{HARBOUR_COFFEE} -> {MAPLE_FINCH}").as_str())
    );
    receiver
        .wait_for("every event", Duration::from_secs(10), |r| {
            kinds(r).iter().filter(|k| *k == "connect_session.completed").count() == 4
                && kinds(r).iter().filter(|k| *k == "connection.reconnected").count() == 2
        })
        .await;
    let received = receiver.accepted();
    let outcomes: Vec<(String, Option<String>)> = received
        .iter()
        .filter(|r| r.body["type"] == "connect_session.completed")
        .map(|r| {
            (
                r.body["data"]["outcome"].as_str().unwrap().to_string(),
                r.body["data"]["reason"].as_str().map(str::to_string),
            )
        })
        .collect();
    for expected in [
        ("connected".to_string(), None),
        ("failed".to_string(), Some("account_mismatch".to_string())),
        ("reconnected".to_string(), None),
    ] {
        assert!(outcomes.contains(&expected), "{expected:?} in {outcomes:?}");
    }
    let changed_hook = received
        .iter()
        .find(|r| r.body["type"] == "connection.reconnected" && r.body["data"]["account_id"] == MAPLE_FINCH)
        .expect("the reconnection to the new account");
    assert_eq!(changed_hook.body["data"]["previous_account_id"], HARBOUR_COFFEE);
    app.stop().await;
}
both_engines!(a_new_session_reconnects_in_place_with_the_account_pinned);

async fn a_merchants_own_reconnect_keeps_the_account_until_they_disconnect(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let browser = app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let callback = browser.authorized_callback(MAPLE_FINCH).await;
    let problem = browser.callback(&callback).await;
    assert!(
        problem.starts_with("/connect/problem?reason=account_mismatch"),
        "{problem}"
    );
    assert_eq!(query(&problem)["expected"], HARBOUR_COFFEE);
    let page = browser.get(&problem).await;
    assert_eq!(page.status(), StatusCode::CONFLICT);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("different Airwallex account") && html.contains(HARBOUR_COFFEE),
        "{html}"
    );
    let row = app.connection("ana@example.com").await.unwrap();
    assert_eq!(row.account_id.as_deref(), Some(HARBOUR_COFFEE));
    // Disconnected on purpose, the merchant may take another account.
    assert_eq!(
        browser
            .post(app::paths::DISCONNECT, &[("confirm", "yes")])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    browser.connect_airwallex(MAPLE_FINCH).await;
    let row = app.connection("ana@example.com").await.unwrap();
    assert_eq!(row.account_id.as_deref(), Some(MAPLE_FINCH));
    app.stop().await;
}
both_engines!(a_merchants_own_reconnect_keeps_the_account_until_they_disconnect);

/// `link` answers each of `methods` (`GET` or `POST`, in turn, each from a browser of its
/// own) with 410 and the page that leads back to the platform.
async fn assert_gone(app: &TestApp, link: &str, methods: &[&str]) {
    let path = link.strip_prefix(&app.base).unwrap();
    for method in methods {
        let browser = app.browser();
        let response = if *method == "GET" {
            browser.get(path).await
        } else {
            browser.post(path, &[]).await
        };
        assert_eq!(response.status(), StatusCode::GONE, "{method} {path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("This link can no longer be used"), "{html}");
        assert!(
            html.contains("Back to Acme Platform") && html.contains("https://platform.example"),
            "{html}"
        );
    }
}

async fn links_work_once_and_only_until_they_expire(engine: Engine) {
    let app = app_with_platform(engine).await;
    let backend = Backend::new(&app, &[Scope::ConnectWrite]).await;

    // Used: a second POST (another browser) and a later GET both answer 410.
    let used = backend.session_for("u-1", json!({})).await;
    let link = used["url"].as_str().unwrap();
    let first = app.browser();
    let started = first.post(link.strip_prefix(&app.base).unwrap(), &[]).await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    assert!(location(&started).contains("/oauth/authorize?"));
    assert_gone(&app, link, &["POST", "GET"]).await;
    let opened = backend.session(used["id"].as_str().unwrap()).await;
    assert_eq!(opened["status"], "opened");

    // Expired.
    let expired = backend.session_for("u-2", json!({})).await;
    sqlx::query("UPDATE connect_sessions SET expires_at = $1 WHERE id = $2")
        .bind(app.services().clock.now() - 1)
        .bind(expired["id"].as_str().unwrap())
        .execute(app.services().db.pool())
        .await
        .unwrap();
    let link = expired["url"].as_str().unwrap();
    assert_gone(&app, link, &["GET", "POST"]).await;
    let state = backend.session(expired["id"].as_str().unwrap()).await;
    assert_eq!(state["status"], "expired");

    // Forged: a well-formed secret nobody was given, and a malformed one.
    let forged = format!("{}/connect-link/{}", app.base, "A".repeat(43));
    assert_gone(&app, &forged, &["GET", "POST"]).await;
    assert_gone(&app, &format!("{}/connect-link/short", app.base), &["POST"]).await;
    // None of them signed anyone in.
    let nobody = app.browser();
    nobody.post("/connect-link/short", &[]).await;
    assert_eq!(nobody.get("/connection").await.status(), StatusCode::SEE_OTHER);
    app.stop().await;
}
both_engines!(links_work_once_and_only_until_they_expire);

async fn every_bad_field_is_named(engine: Engine) {
    let app = app_with_platform(engine).await;
    let backend = Backend::new(&app, &[Scope::ConnectWrite]).await;
    let base = json!({"external_id": "p-1", "email": "p1@example.com", "return_url": RETURN_URL});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let cases: Vec<(Value, &str, &str)> = vec![
        (without("external_id"), "bad_request", "external_id"),
        (with("external_id", json!("")), "bad_request", "external_id"),
        (
            with("external_id", json!("x".repeat(201))),
            "bad_request",
            "external_id",
        ),
        (with("external_id", json!("naïve")), "bad_request", "external_id"),
        (with("external_id", json!(42)), "bad_request", "external_id"),
        (without("email"), "bad_request", "email"),
        (with("email", json!("not-an-email")), "bad_request", "email"),
        (
            with("business_name", json!("x".repeat(201))),
            "bad_request",
            "business_name",
        ),
        (with("tags", json!([1, 2])), "bad_request", "tags"),
        (with("tags", json!({"k": 1})), "bad_request", "tags"),
        (
            with(
                "tags",
                Value::Object((0..11).map(|i| (format!("k{i}"), json!("v"))).collect()),
            ),
            "bad_request",
            "tags",
        ),
        (with("tags", json!({"k".repeat(65): "v"})), "bad_request", "tags"),
        (with("tags", json!({"k": "v".repeat(256)})), "bad_request", "tags"),
        (with("sign_up", json!("yes")), "bad_request", "sign_up"),
        (
            with("allow_account_change", json!(1)),
            "bad_request",
            "allow_account_change",
        ),
        (with("nickname", json!("x")), "bad_request", "nickname"),
        (without("return_url"), "invalid_return_url", "return_url"),
    ];
    for (body, code, field) in cases {
        let (status, answer) = backend.create(body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str(), answer["field"].as_str()),
            (400, Some(code), Some(field)),
            "{body} → {answer}"
        );
    }
    for trick in [
        "https://platform.example.evil.test/back",
        "https://platform.example@evil.test/back",
        "https://evil.test/back?https://platform.example",
        "https://platform.example:8443/back",
        "http://platform.example/back",
        "javascript:alert(document.cookie)",
        "//platform.example/back",
        "/back",
        "https://user:pass@platform.example/back",
    ] {
        let (status, answer) = backend.create(with("return_url", json!(trick))).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some("invalid_return_url")),
            "{trick} → {answer}"
        );
    }
    // Loopback http is listed too, with its exact port.
    let (status, _) = backend
        .create(with("return_url", json!("http://127.0.0.1:4999/back")))
        .await;
    assert_eq!(status, 201);
    let (status, _) = backend
        .create(with("return_url", json!("http://127.0.0.1:5000/back")))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        backend.create(json!("a string")).await.1["code"],
        "bad_request",
        "not an object"
    );

    // An email that belongs to someone else; then a known id's email updated (timeline).
    app.browser().sign_up("taken@example.com").await;
    let (status, answer) = backend.create(with("email", json!("taken@example.com"))).await;
    assert_eq!(
        (status, answer["code"].as_str(), answer["field"].as_str()),
        (409, Some("email_in_use"), Some("email"))
    );
    let first = backend.session_for("p-2", json!({})).await;
    let merchant = first["merchant_id"].as_i64().unwrap();
    let again = backend
        .session_for(
            "p-2",
            json!({"email": "p2-new@example.com", "tags": {"plan": "silver"}}),
        )
        .await;
    assert_eq!(
        again["merchant_id"], merchant,
        "a known external id reuses its merchant"
    );
    let (status, _) = backend
        .create(json!({"external_id": "p-2", "return_url": RETURN_URL}))
        .await;
    assert_eq!(status, 201, "email may be left out for a known external id");
    let email: String = sqlx::query_scalar("SELECT email FROM merchants WHERE id = $1")
        .bind(merchant)
        .fetch_one(app.services().db.pool())
        .await
        .unwrap();
    assert_eq!(email, "p2-new@example.com");

    // Scopes and unknown sessions.
    let reader = Backend::new(&app, &[Scope::ConnectionsRead]).await;
    let (status, answer) = reader.create(base.clone()).await;
    assert_eq!((status, answer["code"].as_str()), (403, Some("forbidden")));
    let path = format!("/api/platform/v1/connect-sessions/{}", first["id"].as_str().unwrap());
    assert_eq!(reader.get(&path).await.0, 200, "connections:read may read sessions");
    let tokens_only = Backend::new(&app, &[Scope::TokensRead]).await;
    assert_eq!(tokens_only.get(&path).await.0, 403);
    assert_eq!(
        tokens_only
            .get("/api/platform/v1/merchants/external/nobody/connection")
            .await
            .0,
        403,
        "a key without the scope learns nothing of which external ids exist"
    );
    assert_eq!(
        reader
            .delete("/api/platform/v1/merchants/external/p-2/connection")
            .await
            .0,
        403
    );
    let (status, answer) = backend.get("/api/platform/v1/connect-sessions/cs_nope").await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));
    let (status, answer) = backend
        .delete("/api/platform/v1/merchants/external/p-2/connection")
        .await;
    assert_eq!((status, answer["code"].as_str()), (409, Some("not_connected")));

    // Every answer seen is one the document names.
    let (_, document) = backend.get(OPENAPI_PATH).await;
    let mut seen = backend.seen.all();
    seen.extend(reader.seen.all());
    seen.extend(tokens_only.seen.all());
    for (method, route, status) in seen {
        if route == OPENAPI_PATH {
            continue;
        }
        let responses = &document["paths"][&route][&method]["responses"];
        assert!(
            responses.get(status.to_string()).is_some(),
            "{method} {route} answered {status}, which the document does not mention"
        );
    }
    let created = &document["components"]["schemas"]["CreatedConnectSession"]["properties"];
    for field in ["id", "url", "expires_at", "merchant_id", "external_id"] {
        assert!(created.get(field).is_some(), "{field}");
    }
    app.stop().await;
}
both_engines!(every_bad_field_is_named);

#[tokio::test]
async fn without_return_origins_no_session_can_be_made() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let backend = Backend::new(&app, &[Scope::ConnectWrite]).await;
    let (status, answer) = backend
        .create(json!({"external_id": "a", "email": "a@example.com", "return_url": RETURN_URL}))
        .await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("invalid_return_url")));
    app.stop().await;
}

#[tokio::test]
async fn two_instances_consuming_the_same_link_at_once_leave_one_winner() {
    let first = app_with_platform(Engine::Postgres).await;
    let second = first
        .another_instance(&[
            ("PLATFORM_NAME", "Acme Platform"),
            ("PLATFORM_RETURN_ORIGINS", "https://platform.example"),
        ])
        .await;
    let backend = Backend::new(&first, &[Scope::ConnectWrite]).await;
    for round in 0..5 {
        let session = backend.session_for(&format!("race-{round}"), json!({})).await;
        let secret_path = session["url"]
            .as_str()
            .unwrap()
            .strip_prefix(&first.base)
            .unwrap()
            .to_string();
        let mut attempts = Vec::new();
        for i in 0..8 {
            let base = if i % 2 == 0 { &first.base } else { &second.base };
            let browser = Browser::new(base);
            let path = secret_path.clone();
            attempts.push(tokio::spawn(async move { browser.post(&path, &[]).await.status() }));
        }
        let mut statuses = Vec::new();
        for attempt in attempts {
            statuses.push(attempt.await.unwrap());
        }
        let winners = statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count();
        let refused = statuses.iter().filter(|s| **s == StatusCode::GONE).count();
        assert_eq!((winners, refused), (1, 7), "round {round}: {statuses:?}");
    }
    second.stop().await;
    first.stop().await;
}

async fn operators_see_external_merchants_and_make_links_for_support(engine: Engine) {
    let app = app_with_platform(engine).await;
    let backend = Backend::new(&app, &[Scope::ConnectWrite]).await;
    let created = backend
        .session_for("crm-9001", json!({"tags": {"tier": "enterprise"}}))
        .await;
    app.browser()
        .use_connect_link(created["url"].as_str().unwrap(), "authorize", HARBOUR_COFFEE)
        .await;
    // Someone else, so that the search has something to leave out.
    app.connected_merchant("other@example.com", MAPLE_FINCH).await;

    app.create_operator("ops@example.com").await;
    let operator = app.logged_in("ops@example.com").await;
    // Exact search by the platform's id.
    let dashboard = operator.page("/operator?q=crm-9001").await;
    assert!(
        dashboard.contains("crm-9001@example.com") && dashboard.contains("tier=enterprise"),
        "{dashboard}"
    );
    assert!(!dashboard.contains("other@example.com"), "{dashboard}");
    let connection_id = app.connection_id("crm-9001@example.com").await;
    let page = operator.page(&app::paths::operator_connection(connection_id)).await;
    assert!(page.contains("External id") && page.contains("crm-9001"), "{page}");
    assert!(
        page.contains(created["id"].as_str().unwrap()),
        "its sessions are listed: {page}"
    );
    assert!(page.contains("connected") && page.contains("key:"), "{page}");

    // Support makes a link by hand: shown once, and it works.
    let response = operator
        .post(
            app::paths::OPERATOR_CONNECT_LINKS,
            &[("external_id", "crm-9001"), ("return_url", RETURN_URL)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let html = response.text().await.unwrap();
    let start = html
        .find(&format!("{}/connect-link/", app.base))
        .expect("the link is shown");
    let link: String = html[start..].chars().take_while(|c| *c != '"').collect();
    assert_eq!(app.browser().get(&link).await.status(), StatusCode::OK);
    assert!(
        !operator.page(app::paths::OPERATOR_API_KEYS).await.contains(&link),
        "shown once"
    );
    let sessions = app
        .services()
        .connect_sessions
        .of_merchant(created["merchant_id"].as_i64().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions[0].created_by.starts_with("operator:"), "{sessions:?}");
    // A return URL outside PLATFORM_RETURN_ORIGINS is refused on the form as well.
    let refused = operator
        .post(
            app::paths::OPERATOR_CONNECT_LINKS,
            &[("external_id", "crm-9001"), ("return_url", "https://evil.test/")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("PLATFORM_RETURN_ORIGINS"));
    app.stop().await;
}
both_engines!(operators_see_external_merchants_and_make_links_for_support);

/// Sessions created at once for new and known ids: every merchant created once and
/// counted once (the dashboard's counters are spread over rows on PostgreSQL).
async fn sessions_created_at_once_create_each_merchant_once(engine: Engine) {
    let app = app_with_platform(engine).await;
    let backend = std::sync::Arc::new(Backend::new(&app, &[Scope::ConnectWrite]).await);
    let before = app.services().operator.status_counts().await.unwrap().not_connected;
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let backend = backend.clone();
            // 32 new ids, and 16 calls for 4 ids that several calls name at once.
            let id = if i < 32 {
                format!("burst-{i}")
            } else {
                format!("shared-{}", i % 4)
            };
            tokio::spawn(async move {
                backend.session_for(&id, json!({})).await["merchant_id"]
                    .as_i64()
                    .unwrap()
            })
        })
        .collect();
    let mut merchants = HashSet::new();
    for call in calls {
        merchants.insert(call.await.unwrap());
    }
    assert_eq!(merchants.len(), 36, "one merchant per external id");
    let counts = app.services().operator.status_counts().await.unwrap();
    assert_eq!(counts.not_connected, before + 36);
    assert_eq!(app.row_count("connect_sessions").await, 48);
    app.stop().await;
}
both_engines!(sessions_created_at_once_create_each_merchant_once);

/// A browser a link signed in keeps the link's pin: disconnecting, then its own Reconnect
/// with another Airwallex account, is refused (the link did not allow the change).
async fn a_browser_signed_in_by_a_link_keeps_its_pin(engine: Engine) {
    let app = app_with_platform(engine).await;
    let backend = Backend::new(&app, &[Scope::ConnectWrite]).await;
    let created = backend.session_for("pinned-1", json!({})).await;
    let browser = app.browser();
    browser
        .use_connect_link(created["url"].as_str().unwrap(), "authorize", HARBOUR_COFFEE)
        .await;
    let response = browser.post(app::paths::DISCONNECT, &[("confirm", "yes")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let callback = browser.authorized_callback(MAPLE_FINCH).await;
    let problem = browser.callback(&callback).await;
    assert!(
        problem.starts_with("/connect/problem?reason=account_mismatch"),
        "{problem}"
    );
    let row = app.connection("pinned-1@example.com").await.unwrap();
    assert_eq!(row.status, ConnectionStatus::Disconnected);
    assert_eq!(row.account_id.as_deref(), Some(HARBOUR_COFFEE));
    // The same account is welcome back.
    browser.connect_airwallex(HARBOUR_COFFEE).await;
    app.stop().await;
}
both_engines!(a_browser_signed_in_by_a_link_keeps_its_pin);
