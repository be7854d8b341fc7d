//! The platform API over real HTTP: service keys, every endpoint and error on both engines
//! (checked against the OpenAPI document), tokens that work on Airwallex, one refresh for
//! many callers over two instances, audited reads, and signed webhooks to the platform
//! that survive a receiver being down and a delivering instance being killed.

use std::collections::HashSet;
use std::time::Duration;

use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard::platform::keys::Scope;
use awx_onboard::platform::outbox::PlatformEvent;
use awx_onboard::simulator::{Endpoint, FaultKind};
use awx_onboard_server::platform::{ACCESS_TOKEN_PATH, CONNECTIONS_PATH, CONNECTION_PATH, OPENAPI_PATH, ROUTES};
use awx_onboard_server::testing::platform_api::SeenAnswers;
use awx_onboard_server::testing::receiver::{Mode, WebhookReceiver};
use awx_onboard_server::testing::{eventually, TestApp, HARBOUR_COFFEE, MAPLE_FINCH};
use serde_json::Value;

/// An answer from the API.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

/// A platform backend calling the API with one key; remembers every (method, route,
/// status) it saw, to check against the OpenAPI document.
struct Platform {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
    seen: SeenAnswers,
}

impl Platform {
    fn new(app: &TestApp, key: &str) -> Platform {
        Platform {
            http: reqwest::Client::new(),
            base: app.base.clone(),
            key: Some(key.to_string()),
            seen: SeenAnswers::default(),
        }
    }

    /// The same backend with another key (or none).
    fn with_key(&self, key: Option<&str>) -> Platform {
        Platform {
            http: self.http.clone(),
            base: self.base.clone(),
            key: key.map(str::to_string),
            seen: self.seen.clone(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> Answer {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("authorization", key);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{method} {path}: JSON, not {:?}: {text}",
            headers["content-type"]
        );
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        self.seen.record(&method, path, status, &body);
        Answer { status, headers, body }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path).await
    }

    async fn post(&self, path: &str) -> Answer {
        self.call(reqwest::Method::POST, path).await
    }
}

fn token_path(merchant: i64) -> String {
    ACCESS_TOKEN_PATH.replace("{merchant_id}", &merchant.to_string())
}

fn connection_path(merchant: i64) -> String {
    CONNECTION_PATH.replace("{merchant_id}", &merchant.to_string())
}

async fn every_endpoint_answers_as_documented(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let full = app.service_key("platform backend", &Scope::ALL).await.header;
    let reader = app
        .service_key("directory only", &[Scope::ConnectionsRead])
        .await
        .header;
    let revoked = app.service_key("old", &Scope::ALL).await;
    app.services().api_keys.revoke(&revoked.key.id, "test").await.unwrap();

    app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    app.connected_merchant("carl@example.com", MAPLE_FINCH).await;
    app.browser().sign_up("ben@example.com").await;
    let (ana, ben) = (
        app.merchant_id("ana@example.com").await,
        app.merchant_id("ben@example.com").await,
    );
    let api = Platform::new(&app, &full);

    // Without a valid key, nothing but the document.
    let forged = format!("{}x", revoked.header);
    for key in [
        None,
        Some("Bearer "),
        Some("Bearer nonsense"),
        Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
        Some("Bearer awx_pk_nope_nope"),
        Some(forged.as_str()),
        Some(revoked.header.as_str()),
    ] {
        let caller = api.with_key(key);
        for answer in [
            caller.get(CONNECTIONS_PATH).await,
            caller.get(&connection_path(ana)).await,
            caller.post(&token_path(ana)).await,
        ] {
            assert_eq!((answer.status, answer.code()), (401, "unauthorized"), "{key:?}");
        }
    }
    assert_eq!(api.with_key(None).get(OPENAPI_PATH).await.status, 200);

    // The list, paged.
    let all = api.get(CONNECTIONS_PATH).await;
    assert_eq!(all.status, 200, "{}", all.body);
    let connections = all.body["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 2, "ben never connected: {}", all.body);
    assert!(all.body.get("next_after").is_none());
    let first = &connections[0];
    assert_eq!(first["merchant_id"], ana);
    assert_eq!(first["email"], "ana@example.com");
    assert_eq!(first["status"], "connected");
    assert_eq!(first["reason"], Value::Null);
    assert_eq!(first["account_id"], HARBOUR_COFFEE);
    assert!(first["business_name"].as_str().unwrap().contains("Harbour"));
    for field in ["connected_at", "refresh_token_expires_at"] {
        let text = first[field].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{field} {text:?} is RFC 3339: {e}"));
    }
    assert_eq!(first["reconnect_url"], format!("{}/connection", app.base));
    let page = api.get(&format!("{CONNECTIONS_PATH}?limit=1")).await;
    assert_eq!(page.body["connections"].as_array().unwrap().len(), 1);
    let after = page.body["next_after"].as_i64().expect("more to come");
    let rest = api.get(&format!("{CONNECTIONS_PATH}?limit=1&after={after}")).await;
    assert_eq!(rest.body["connections"][0]["email"], "carl@example.com");
    assert!(rest.body.get("next_after").is_none(), "{}", rest.body);
    let by_email = api.get(&format!("{CONNECTIONS_PATH}?email=CARL%40example.com")).await;
    assert_eq!(by_email.body["connections"].as_array().unwrap().len(), 1);
    let none = api.get(&format!("{CONNECTIONS_PATH}?status=needs_reconnect")).await;
    assert_eq!(none.body["connections"], Value::Array(vec![]));
    for bad in ["status=broken", "limit=0", "limit=1001", "after=abc", "limit=ten"] {
        let answer = api.get(&format!("{CONNECTIONS_PATH}?{bad}")).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "bad_request"),
            "{bad}: {}",
            answer.body
        );
    }

    // One merchant.
    let one = api.get(&connection_path(ben)).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["status"], "not_connected");
    assert_eq!(one.body["email"], "ben@example.com");
    assert_eq!(api.get(&connection_path(ana)).await.body["account_id"], HARBOUR_COFFEE);
    let missing = api.get(&connection_path(999_999)).await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
    let malformed = api.get(&CONNECTION_PATH.replace("{merchant_id}", "ana")).await;
    assert_eq!((malformed.status, malformed.code()), (400, "bad_request"));

    // Tokens.
    let denied = api.with_key(Some(&reader)).post(&token_path(ana)).await;
    assert_eq!((denied.status, denied.code()), (403, "forbidden"));
    assert!(denied.body["message"].as_str().unwrap().contains("tokens:read"));
    let token = api.post(&token_path(ana)).await;
    assert_eq!(token.status, 200, "{}", token.body);
    assert_eq!(token.body["token_type"], "Bearer");
    assert_eq!(token.body["account_id"], HARBOUR_COFFEE);
    let expires = time::OffsetDateTime::parse(
        token.body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        expires.unix_timestamp()
            >= app.services().clock.now() + app.state.config.airwallex.refresh_margin.as_secs() as i64,
        "the token has at least the margin left"
    );
    let not_connected = api.post(&token_path(ben)).await;
    assert_eq!((not_connected.status, not_connected.code()), (409, "not_connected"));
    assert_eq!(not_connected.body["reconnect_url"], format!("{}/connection", app.base));
    let nobody = api.post(&token_path(999_999)).await;
    assert_eq!((nobody.status, nobody.code()), (404, "not_found"));
    let wrong_method = api.get(&token_path(ana)).await;
    assert_eq!((wrong_method.status, wrong_method.code()), (405, "method_not_allowed"));
    assert_eq!(wrong_method.headers["allow"], "POST");
    let unknown = api.get("/api/platform/v1/merchants").await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));

    // Airwallex unreachable: 503 with Retry-After, and the connection stays.
    app.expire_access_token(ana).await;
    app.sim().inject(Endpoint::Token, FaultKind::Error500, 50);
    let unavailable = api.post(&token_path(ana)).await;
    assert_eq!((unavailable.status, unavailable.code()), (503, "airwallex_unavailable"));
    assert!(
        unavailable.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // (The queued faults stay for the recovery test; this app is done with the simulator.)

    // Revocation, from the simulator's side.
    assert_eq!(app.sim().revoke_account(MAPLE_FINCH), 1);
    let carl = app.merchant_id("carl@example.com").await;
    let revoked = eventually("the revocation is recorded", Duration::from_secs(5), || async {
        let answer = api.post(&token_path(carl)).await;
        (answer.status == 409).then_some(answer)
    })
    .await;
    assert_eq!(revoked.code(), "needs_reconnect");
    assert_eq!(revoked.body["reason"], "revoked");
    assert_eq!(revoked.body["reconnect_url"], format!("{}/connection", app.base));
    let listed = api.get(&format!("{CONNECTIONS_PATH}?status=needs_reconnect")).await;
    assert_eq!(listed.body["connections"][0]["email"], "carl@example.com");
    assert_eq!(listed.body["connections"][0]["reason"], "revoked");

    // The document describes exactly these routes and every answer seen above.
    let document = api.get(OPENAPI_PATH).await.body;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let mut documented = HashSet::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            documented.insert((method.clone(), path.clone()));
            let statuses: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
            assert!(!statuses.is_empty(), "{method} {path} documents its answers");
        }
    }
    let routes: HashSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, routes, "the document and the router agree on the routes");
    for (method, route, status) in api.seen.all() {
        if status == 405 || !routes.contains(&(method.clone(), route.clone())) {
            continue; // not an operation of the API
        }
        let responses = &document["paths"][&route][&method]["responses"];
        assert!(
            responses.get(status.to_string()).is_some(),
            "{method} {route} answered {status}, which the document does not mention"
        );
    }
    // Bodies have the fields their schemas name, and no other.
    let schemas = &document["components"]["schemas"];
    for (schema, example) in [
        ("ConnectionOut", &one.body),
        ("ConnectionsPage", &all.body),
        ("AccessTokenOut", &token.body),
        ("ErrorBody", &revoked.body),
    ] {
        let properties: HashSet<&String> = schemas[schema]["properties"].as_object().unwrap().keys().collect();
        let fields: HashSet<&String> = example.as_object().unwrap().keys().collect();
        assert!(fields.is_subset(&properties), "{schema}: {fields:?} ⊄ {properties:?}");
        for required in schemas[schema]["required"].as_array().into_iter().flatten() {
            assert!(
                fields.contains(&required.as_str().unwrap().to_string()),
                "{schema} needs {required}"
            );
        }
    }
    app.stop().await;
}
both_engines!(every_endpoint_answers_as_documented);

#[tokio::test]
async fn a_key_over_its_rate_limit_is_told_when_to_come_back() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("PLATFORM_RATE_LIMIT_PER_SECOND", "5")]).await;
    let busy = Platform::new(&app, &app.service_key("busy", &[Scope::ConnectionsRead]).await.header);
    let calm = Platform::new(&app, &app.service_key("calm", &[Scope::ConnectionsRead]).await.header);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(busy.get(CONNECTIONS_PATH).await);
    }
    assert!(statuses[..5].iter().all(|a| a.status == 200));
    let limited = statuses.last().unwrap();
    assert_eq!((limited.status, limited.code()), (429, "rate_limited"));
    assert!(limited.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        calm.get(CONNECTIONS_PATH).await.status,
        200,
        "another key has its own budget"
    );
    // The bucket refills over the next second (a refused call takes nothing from it).
    let refused_at = std::time::Instant::now();
    while busy.get(CONNECTIONS_PATH).await.status == 429 {
        assert!(
            refused_at.elapsed() < Duration::from_secs(3),
            "the bucket refills within a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

async fn tokens_work_on_airwallex_and_every_read_is_audited(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let key = app.service_key("billing backend", &Scope::ALL).await.header;
    app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let ana = app.merchant_id("ana@example.com").await;
    let api = Platform::new(&app, &key);
    let token = api.post(&token_path(ana)).await;
    assert_eq!(token.status, 200);

    // The token is the merchant's on Airwallex.
    let account = reqwest::Client::new()
        .get(format!("{}/api/v1/account/", app.sim_url()))
        .bearer_auth(token.body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 200);
    assert_eq!(account.json::<Value>().await.unwrap()["id"], HARBOUR_COFFEE);

    // A refreshed one works too.
    app.expire_access_token(ana).await;
    let refreshed = api.post(&token_path(ana)).await;
    assert_eq!(refreshed.status, 200);
    assert_ne!(refreshed.body["access_token"], token.body["access_token"]);
    for _ in 0..3 {
        assert_eq!(api.post(&token_path(ana)).await.status, 200);
    }

    // Who read it: the operator's connection page and the CSV export.
    let connection = app.connection_id("ana@example.com").await;
    app.create_operator("olga@example.com").await;
    let operator = app.logged_in("olga@example.com").await;
    let page = operator.page(&app::paths::operator_connection(connection)).await;
    assert!(page.contains("billing backend"), "the page names the key");
    let csv = operator
        .get(&app::paths::operator_connection_token_reads_csv(connection))
        .await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "minute,key_id,key_name,connection_id,merchant_email,reads");
    let reads: i64 = lines[1..]
        .iter()
        .filter(|l| l.contains("billing backend"))
        .map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(reads, 5, "every read is counted: {csv}");
    assert!(operator
        .page(app::paths::OPERATOR_TOKEN_READS_CSV)
        .await
        .contains("ana@example.com"));

    // A merchant cannot read the audit, and nobody can rewrite it.
    let merchant = app.logged_in("ana@example.com").await;
    let forbidden = merchant.get(app::paths::OPERATOR_TOKEN_READS_CSV).await;
    assert_eq!(forbidden.status(), 403, "operators only");
    let pool = app.services().db.pool();
    assert!(sqlx::query("DELETE FROM token_reads").execute(pool).await.is_err());
    assert!(sqlx::query("UPDATE token_reads SET reads = 0")
        .execute(pool)
        .await
        .is_err());
    app.stop().await;
}
both_engines!(tokens_work_on_airwallex_and_every_read_is_audited);

#[tokio::test]
async fn two_hundred_token_requests_over_two_instances_cause_one_refresh() {
    let first = TestApp::spawn(Engine::Postgres).await;
    let second = first.another_instance(&[]).await;
    let (_, receiver) = WebhookReceiver::subscribed(first.services(), &PlatformEvent::ALL).await;
    let backend = first.service_key("backend", &Scope::ALL).await;
    first.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let ana = first.merchant_id("ana@example.com").await;
    first.expire_access_token(ana).await;

    // Slow the refresh so that callers on both instances surely wait at once.
    first.sim().inject(Endpoint::Token, FaultKind::Delay { ms: 400 }, 1);
    let before = first.sim().counters().refreshes;
    let (one, two) = (
        Platform::new(&first, &backend.header),
        Platform::new(&second, &backend.header),
    );
    let calls = (0..200).map(|i| {
        let api = if i % 2 == 0 { &one } else { &two };
        async move { api.post(&token_path(ana)).await }
    });
    let answers = futures::future::join_all(calls).await;
    let tokens: HashSet<String> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{}", a.body);
            a.body["access_token"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        first.sim().counters().refreshes - before,
        1,
        "exactly one upstream refresh"
    );
    assert_eq!(tokens.len(), 1, "every caller got the refreshed token");

    // Every read is counted, from both instances.
    first.services().token_reads.flush().await.unwrap();
    second.services().token_reads.flush().await.unwrap();
    let connection = first.connection_id("ana@example.com").await;
    let reads: i64 = first
        .services()
        .token_reads
        .for_connection(connection, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.reads)
        .sum();
    assert_eq!(reads, 200);

    // Revoking the key on one instance refuses it on the other at once.
    first.services().api_keys.revoke(&backend.key.id, "test").await.unwrap();
    assert_eq!(two.get(CONNECTIONS_PATH).await.status, 401);

    // Both instances deliver webhooks; each event reaches the platform once, also while
    // deliveries are kept waiting (a waiting one holds a slot, not its instance's round).
    receiver
        .wait_for("ana's connection", Duration::from_secs(10), |r| r.len() == 1)
        .await;
    receiver.set_mode(Mode::Park);
    for (i, account) in [MAPLE_FINCH, HARBOUR_COFFEE].iter().enumerate() {
        first.connected_merchant(&format!("m{i}@example.com"), account).await;
        eventually("the delivery is in flight", Duration::from_secs(10), || async {
            (receiver.held() == i + 1).then_some(())
        })
        .await;
    }
    receiver.set_mode(Mode::Accept);
    first.connected_merchant("m2@example.com", MAPLE_FINCH).await;
    // Every delivery recorded as delivered: nothing is left that could be sent again.
    let senders: Vec<Option<String>> = eventually("every delivery recorded", Duration::from_secs(10), || async {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT status, lease_owner FROM webhook_deliveries ORDER BY id")
                .fetch_all(first.services().db.pool())
                .await
                .unwrap();
        (rows.len() == 4 && rows.iter().all(|(status, _)| status == "delivered"))
            .then(|| rows.into_iter().map(|(_, owner)| owner).collect())
    })
    .await;
    assert!(senders.iter().all(Option::is_some), "{senders:?}");
    let received = receiver.received();
    let ids: HashSet<&str> = received.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((received.len(), ids.len()), (4, 4), "{received:#?}");
    assert!(received.iter().all(|r| r.verified && r.answered == 204));
    second.stop().await;
    first.stop().await;
}

async fn the_platform_hears_of_every_change_signed(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (_, receiver) = WebhookReceiver::subscribed(app.services(), &PlatformEvent::ALL).await;
    let api = Platform::new(&app, &app.service_key("backend", &Scope::ALL).await.header);
    let browser = app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let ana = app.merchant_id("ana@example.com").await;
    let kinds = |r: &[awx_onboard_server::testing::receiver::Received]| -> Vec<String> {
        r.iter()
            .filter(|r| r.answered == 204)
            .map(|r| r.body["type"].as_str().unwrap().to_string())
            .collect()
    };
    receiver
        .wait_for("connected", Duration::from_secs(5), |r| {
            kinds(r) == ["connection.connected"]
        })
        .await;

    // Refreshes fail for a while (Airwallex down), then work again: recovered.
    app.expire_access_token(ana).await;
    app.sim().inject(Endpoint::Token, FaultKind::Error500, 5);
    assert_eq!(api.post(&token_path(ana)).await.status, 503);
    assert_eq!(api.post(&token_path(ana)).await.status, 200);
    receiver
        .wait_for("recovered", Duration::from_secs(5), |r| kinds(r).len() == 2)
        .await;

    // Revoked on Airwallex: the API says so, and the platform hears why.
    assert_eq!(app.sim().revoke_account(HARBOUR_COFFEE), 1);
    receiver
        .wait_for("needs_reconnect", Duration::from_secs(5), |r| kinds(r).len() == 3)
        .await;
    let revoked = api.post(&token_path(ana)).await;
    assert_eq!(
        (revoked.status, revoked.code(), revoked.body["reason"].as_str()),
        (409, "needs_reconnect", Some("revoked"))
    );

    // Reconnected, then disconnected by the merchant.
    browser.connect_airwallex(HARBOUR_COFFEE).await;
    // (Delivery order is not guaranteed between events queued at the same moment.)
    receiver
        .wait_for("reconnected", Duration::from_secs(5), |r| kinds(r).len() == 4)
        .await;
    let response = browser.post(app::paths::DISCONNECT, &[("confirm", "yes")]).await;
    assert_eq!(response.status(), 303);
    receiver
        .wait_for("disconnected", Duration::from_secs(5), |r| kinds(r).len() == 5)
        .await;
    let received: Vec<_> = receiver.accepted();
    assert_eq!(
        kinds(&received),
        [
            "connection.connected",
            "connection.recovered",
            "connection.needs_reconnect",
            "connection.reconnected",
            "connection.disconnected"
        ]
    );
    for event in &received {
        assert!(event.verified, "signed with the endpoint's secret: {event:?}");
        assert_eq!(event.body["id"], event.id.as_str(), "webhook-id is the event id");
        assert_eq!(event.body["data"]["merchant_id"], ana);
        assert_eq!(event.body["data"]["email"], "ana@example.com");
        assert_eq!(event.body["data"]["account_id"], HARBOUR_COFFEE);
        assert!(event.body["created_at"].is_string());
    }
    assert_eq!(received[2].body["data"]["status"], "needs_reconnect");
    assert_eq!(received[2].body["data"]["reason"], "revoked");
    assert_eq!(received[4].body["data"]["status"], "disconnected");
    app.stop().await;
}
both_engines!(the_platform_hears_of_every_change_signed);

async fn a_receiver_that_was_down_gets_every_event_once_back(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let (endpoint, receiver) = WebhookReceiver::subscribed(app.services(), &[PlatformEvent::Connected]).await;
    receiver.set_mode(Mode::Fail);
    for (i, account) in [HARBOUR_COFFEE, MAPLE_FINCH, HARBOUR_COFFEE].iter().enumerate() {
        app.connected_merchant(&format!("m{i}@example.com"), account).await;
    }
    receiver
        .wait_for("three failed attempts", Duration::from_secs(10), |r| r.len() >= 3)
        .await;

    // Operators see the trouble.
    app.create_operator("olga@example.com").await;
    let operator = app.logged_in("olga@example.com").await;
    let page = operator.page(&app::paths::operator_webhook(endpoint)).await;
    assert!(page.contains("answered 503"), "the last error is shown");

    // Back up: the retries (exponential backoff; an hour passes) deliver everything.
    receiver.set_mode(Mode::Accept);
    app.services().clock.advance(3600);
    receiver
        .wait_for("every event", Duration::from_secs(10), |r| {
            r.iter().filter(|r| r.answered == 204).count() >= 3
        })
        .await;
    let accepted = receiver.accepted();
    let ids: HashSet<&str> = accepted.iter().map(|r| r.id.as_str()).collect();
    assert_eq!((accepted.len(), ids.len()), (3, 3), "each event once: {accepted:#?}");
    let received = receiver.received();
    let failed: HashSet<&str> = received
        .iter()
        .filter(|r| r.answered == 503)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(failed, ids, "the events delivered are those that failed");

    // A receiver that stays down past 24 hours: the delivery gives up, an operator resends.
    receiver.set_mode(Mode::Fail);
    app.connected_merchant("late@example.com", MAPLE_FINCH).await;
    receiver
        .wait_for("a failure", Duration::from_secs(10), |r| r.len() >= 7)
        .await;
    app.services().clock.advance(25 * 3600);
    let deliveries = eventually("the delivery gives up", Duration::from_secs(10), || async {
        let deliveries = app.services().webhooks.deliveries(endpoint, 10).await.unwrap();
        deliveries.iter().any(|d| d.status == "failed").then_some(deliveries)
    })
    .await;
    let given_up = deliveries.iter().find(|d| d.status == "failed").unwrap();
    // A day without activity ended the operator's session.
    let operator = app.logged_in("olga@example.com").await;
    let page = operator.page(&app::paths::operator_webhook(endpoint)).await;
    assert!(
        page.contains(&app::paths::operator_delivery_resend(given_up.id)),
        "a resend button"
    );
    receiver.set_mode(Mode::Accept);
    let resent = operator
        .post(&app::paths::operator_delivery_resend(given_up.id), &[])
        .await;
    assert_eq!(resent.status(), 303);
    receiver
        .wait_for("the resent event", Duration::from_secs(10), |r| {
            r.iter().any(|r| r.answered == 204 && r.id == given_up.event_id)
        })
        .await;
    app.stop().await;
}
both_engines!(a_receiver_that_was_down_gets_every_event_once_back);

/// Deliveries claimed by an instance that dies (`kill -9`) mid-delivery are delivered by
/// another once their lease lapses: nothing is lost. The instances are the real binary;
/// the events are queued by connections stored through the vault in this process.
#[tokio::test]
async fn killing_the_delivering_instance_mid_delivery_loses_nothing() {
    use awx_onboard::simulator::{SimClient, SimConfig, Simulator};
    use base64::Engine as _;

    const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
    const EVENTS: usize = 12;
    let test_db = awx_onboard::testing::TestDatabase::new(Engine::Postgres).await;
    let db = test_db.connect().await;
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    let cipher = std::sync::Arc::new(awx_onboard::crypto::TokenCipher::new(&key, &[]));
    let clock = awx_onboard::time::Clock::system();
    let sim = Simulator::new(SimConfig::new(vec![SimClient::default_with_redirect(REDIRECT)]));
    let sim_url = format!("http://{}", sim.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap());
    let vault = std::sync::Arc::new(awx_onboard::vault::TokenVault::new(
        awx_onboard::store::ConnectionStore::new(db.clone()),
        cipher.clone(),
        awx_onboard::testing::sim_client(&sim_url),
        clock.clone(),
        awx_onboard::vault::VaultSettings::new(60, Duration::from_secs(5)),
    ));
    let receiver = WebhookReceiver::start().await;
    let (_, secret) = awx_onboard::platform::outbox::WebhookEndpoints::new(
        db.clone(),
        clock,
        cipher,
        awx_onboard::platform::outbox::TargetPolicy {
            public_url_is_loopback: true,
            ..Default::default()
        },
    )
    .create(&receiver.url, &[PlatformEvent::Connected], "test")
    .await
    .unwrap();
    receiver.verify_with(secret.expose());
    receiver.set_mode(Mode::Hold);
    awx_onboard::testing::connect_merchants(&vault, &sim, REDIRECT, HARBOUR_COFFEE, EVENTS).await;

    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let spawn = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::process::Command::new(env!("CARGO_BIN_EXE_awx-onboard"))
            .arg("serve")
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("DATABASE_URL", &test_db.url)
            .env("TOKEN_ENCRYPTION_KEY", &key)
            .env("PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("AIRWALLEX_AUTHORIZE_URL", format!("{sim_url}/oauth/authorize"))
            .env("AIRWALLEX_API_URL", &sim_url)
            .env("WEBHOOK_DELIVERY_LEASE_SECONDS", "11")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the binary")
    };
    let mut doomed = spawn();
    // As many deliveries as one endpoint may have in flight are at the receiver, unanswered
    // (the rest queued behind them) ...
    let cap = awx_onboard::platform::outbox::sender::PER_ENDPOINT_PER_ROUND as usize;
    eventually("the deliveries are in flight", Duration::from_secs(20), || async {
        (receiver.held() == cap).then_some(())
    })
    .await;
    // ... when the instance dies without a word (SIGKILL).
    doomed.kill().expect("kill -9");
    doomed.wait().unwrap();
    receiver.set_mode(Mode::Accept);

    let mut survivor = spawn();
    receiver
        .wait_for("every event, from the next instance", Duration::from_secs(40), |r| {
            let ids: HashSet<&String> = r.iter().filter(|r| r.answered == 204).map(|r| &r.id).collect();
            ids.len() == EVENTS
        })
        .await;
    assert!(receiver.accepted().iter().all(|r| r.verified));
    let delivered = eventually("the outcomes are recorded", Duration::from_secs(5), || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'")
            .fetch_one(db.pool())
            .await
            .unwrap();
        (n as usize == EVENTS).then_some(n)
    })
    .await;
    assert_eq!(delivered as usize, EVENTS);
    survivor.kill().unwrap();
    survivor.wait().unwrap();
    db.close().await;
    test_db.remove().await;
}

#[test]
fn create_api_key_prints_the_key_alone_on_the_last_line() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(awx_onboard::testing::TestDatabase::new(Engine::Sqlite));
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_awx-onboard"))
            .args(args)
            .env_clear()
            .env("RUST_LOG", "error")
            .env("DATABASE_URL", &db.url)
            .env("TOKEN_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (ok, stdout, stderr) = run(&[
        "create-api-key",
        "--name",
        "billing",
        "--scope",
        "tokens:read",
        "--scope",
        "connections:read",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let key = stdout.lines().last().unwrap();
    assert!(key.starts_with("awx_pk_") && !key.contains(' '), "{stdout}");
    let found = runtime.block_on(async {
        let pool = db.connect().await;
        let keys = awx_onboard::platform::keys::ApiKeys::new(pool.clone(), awx_onboard::time::Clock::system());
        let found = keys.authenticate(key).await.unwrap().unwrap();
        pool.close().await;
        found
    });
    assert_eq!(found.name, "billing");
    assert_eq!(found.scopes, [Scope::ConnectionsRead, Scope::TokensRead]);
    assert_eq!(found.created_by, "command line");
    assert_eq!(found.expires_at, None, "no end unless asked");

    // A key that ends: --expires-in-days.
    let (ok, stdout, stderr) = run(&[
        "create-api-key",
        "--name",
        "for a week",
        "--scope",
        "connections:read",
        "--expires-in-days",
        "7",
    ]);
    assert!(ok && stdout.contains("ending "), "{stdout}{stderr}");
    let key = stdout.lines().last().unwrap().to_string();
    let ends = runtime.block_on(async {
        let pool = db.connect().await;
        let keys = awx_onboard::platform::keys::ApiKeys::new(pool.clone(), awx_onboard::time::Clock::system());
        let found = keys.authenticate(&key).await.unwrap().unwrap();
        pool.close().await;
        found.expires_at.unwrap() - found.created_at
    });
    assert_eq!(ends, 7 * 86_400);

    for (args, says) in [
        (
            &[
                "create-api-key",
                "--name",
                "x",
                "--scope",
                "tokens:read",
                "--expires-in-days",
                "0",
            ][..],
            "expires_in_days",
        ),
        (&["create-api-key", "--scope", "tokens:read"][..], "--name"),
        (&["create-api-key", "--name", "x"][..], "scope"),
        (
            &["create-api-key", "--name", "x", "--scope", "tokens:write"][..],
            "tokens:write",
        ),
    ] {
        let (ok, stdout, stderr) = run(args);
        assert!(!ok, "{args:?}: {stdout}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stdout.contains("awx_pk_"), "no key printed");
    }
    runtime.block_on(db.remove());
}

/// An operator who connected an Airwallex account of their own is not a merchant: the
/// platform neither lists that connection nor gets its token.
async fn only_merchants_are_listed_or_handed_out(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let key = app.service_key("platform", &Scope::ALL).await.header;
    app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let operator = app.create_operator("ops@example.com").await;
    let browser = app.logged_in("ops@example.com").await;
    browser.connect_airwallex(MAPLE_FINCH).await;
    let api = Platform::new(&app, &key);
    let listed = api.get(CONNECTIONS_PATH).await;
    let emails: Vec<&str> = listed.body["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["email"].as_str())
        .collect();
    assert_eq!(emails, vec!["ana@example.com"], "{}", listed.body);
    let token = api.post(&token_path(operator.id)).await;
    assert_eq!(token.status, 404, "{}", token.body);
    let ana = app.merchant_id("ana@example.com").await;
    assert_eq!(api.post(&token_path(ana)).await.status, 200);
    app.stop().await;
}
both_engines!(only_merchants_are_listed_or_handed_out);

/// One slow endpoint does not hold back the others (a round claims at most a few of its
/// deliveries), and a disabled endpoint gets nothing more: what was queued for it is never
/// sent, and what was in flight stays failed.
async fn a_slow_endpoint_holds_back_no_one_and_disabling_stops_at_once(engine: Engine) {
    use awx_onboard::platform::outbox::sender::PER_ENDPOINT_PER_ROUND;
    let app = TestApp::spawn_with(engine, &[("SIGN_UPS_PER_ADDRESS_PER_HOUR", "100")]).await;
    let (slow_id, slow) = WebhookReceiver::subscribed(app.services(), &[PlatformEvent::Connected]).await;
    let (_, fast) = WebhookReceiver::subscribed(app.services(), &[PlatformEvent::Connected]).await;
    slow.set_mode(Mode::Hold);
    let merchants = 12;
    for i in 0..merchants {
        let account = if i % 2 == 0 { HARBOUR_COFFEE } else { MAPLE_FINCH };
        app.connected_merchant(&format!("m{i}@example.com"), account).await;
    }
    fast.wait_for(
        "every delivery while the other endpoint is slow",
        Duration::from_secs(10),
        |r| r.iter().filter(|r| r.answered == 204).count() == merchants,
    )
    .await;
    // The slow endpoint's cap fills, and every delivery claimed for it has reached it (none
    // is between its claim and its request), the rest waiting in the outbox.
    let pool = app.services().db.pool().clone();
    let cap = PER_ENDPOINT_PER_ROUND as usize;
    let in_flight = eventually(
        "the slow endpoint's cap of deliveries in flight, all at it",
        Duration::from_secs(20),
        || {
            let pool = pool.clone();
            let held = slow.held();
            async move {
                let leased: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM webhook_deliveries \
                 WHERE endpoint_id = $1 AND status = 'pending' AND lease_until >= $2",
                )
                .bind(slow_id)
                .bind(awx_onboard::time::real_now())
                .fetch_one(&pool)
                .await
                .unwrap();
                assert!(leased as usize <= cap, "{leased} in flight to one endpoint");
                (leased as usize == cap && held == cap).then_some(leased)
            }
        },
    )
    .await;
    assert_eq!(slow.held(), in_flight as usize, "the slow endpoint is being tried");

    // Disabled with its deliveries in flight and more queued: nothing more is sent, and
    // what was in flight is not put back as pending or recorded as delivered.
    app.services().webhooks.disable(slow_id).await.unwrap();
    let before = slow.arrivals();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slow.arrivals(), before, "no request after the endpoint was disabled");
    slow.set_mode(Mode::Accept);
    slow.wait_for("the held requests answered", Duration::from_secs(10), |r| {
        r.len() == cap
    })
    .await;
    // Stopping lets every delivery in flight finish and record its outcome.
    let db = app.stop_keeping_database().await;
    let pool = db.connect().await;
    let states: Vec<String> = sqlx::query_scalar("SELECT status FROM webhook_deliveries WHERE endpoint_id = $1")
        .bind(slow_id)
        .fetch_all(pool.pool())
        .await
        .unwrap();
    assert_eq!(states.len(), merchants);
    assert!(states.iter().all(|s| s == "failed"), "{states:?}");
    pool.pool().close().await;
    db.remove().await;
}
both_engines!(a_slow_endpoint_holds_back_no_one_and_disabling_stops_at_once);
