//! The Airwallex proxy over real HTTP on both engines, against the embedded simulator: calls
//! that go through with the merchant's token and never hand it out; a refused token renewed
//! once and never twice; paths and headers that must not pass, proved by what the
//! simulator received; the limits in front of Airwallex; bodies too large, upstreams too
//! slow or gone; scopes; the audit and the metrics.

use std::time::Duration;

use awx_onboard::both_engines;
use awx_onboard::db::Engine;
use awx_onboard::platform::keys::Scope;
use awx_onboard::simulator::{Endpoint, FaultKind};
use awx_onboard_server::testing::{TestApp, HARBOUR_COFFEE, MAPLE_FINCH};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A platform backend holding one key.
struct Caller {
    http: reqwest::Client,
    base: String,
    key: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

impl Caller {
    async fn new(app: &TestApp, scopes: &[Scope]) -> Caller {
        Caller {
            http: reqwest::Client::new(),
            base: app.base.clone(),
            key: app.service_key("platform", scopes).await.header,
        }
    }

    fn on(&self, base: &str) -> Caller {
        Caller {
            http: self.http.clone(),
            base: base.to_string(),
            key: self.key.clone(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request
            .header("authorization", &self.key)
            .send()
            .await
            .expect("an answer");
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.expect("a body"),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }
}

fn proxied(merchant: i64, rest: &str) -> String {
    format!("/api/platform/v1/merchants/{merchant}/airwallex/{rest}")
}

/// A request line sent as is (no client-side normalisation of `..`); returns the status.
async fn raw_get(base: &str, path: &str, key: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {key}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn api_calls(app: &TestApp, key: &str) -> u64 {
    app.sim().counters().api_calls.get(key).copied().unwrap_or_default()
}

const BALANCES: &str = "GET /api/v1/balances/current";

async fn connected(app: &TestApp, email: &str, account: &str) -> i64 {
    app.connected_merchant(email, account).await;
    app.merchant_id(email).await
}

/// The merchant's current access token, read straight from the vault.
async fn vault_token(app: &TestApp, merchant: i64) -> String {
    app.services()
        .vault
        .access_token_for(merchant)
        .await
        .unwrap()
        .token
        .expose()
        .to_string()
}

async fn calls_go_through_and_the_token_never_leaves(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let merchant = connected(&app, "ana@example.com", HARBOUR_COFFEE).await;
    let connection = app.connection_id("ana@example.com").await;
    let platform = Caller::new(&app, &[Scope::AirwallexProxy]).await;
    let before = awx_onboard::metrics::render();

    let balances = platform.get(&proxied(merchant, "api/v1/balances/current")).await;
    assert_eq!(balances.status, 200, "{}", balances.text);
    let list = balances.json();
    assert!(list.as_array().unwrap().len() >= 2, "{list}");
    for field in [
        "currency",
        "available_amount",
        "pending_amount",
        "reserved_amount",
        "total_amount",
    ] {
        assert!(list[0].get(field).is_some(), "{field} in {list}");
    }
    assert_eq!(
        balances.headers["awx-onboard-connection"],
        connection.to_string().as_str()
    );
    assert!(balances.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(balances.headers["x-request-id"].to_str().unwrap().starts_with("req_"));
    assert!(balances.headers.get("set-cookie").is_none(), "no upstream cookie");

    // The token Airwallex saw is the vault's, and it is nowhere in what came back.
    let token = vault_token(&app, merchant).await;
    let seen = app.sim().requests().into_iter().last().unwrap();
    assert_eq!(seen.header("authorization"), Some(format!("Bearer {token}").as_str()));
    assert!(!balances.text.contains(&token));
    assert!(balances
        .headers
        .values()
        .all(|v| !v.to_str().unwrap_or_default().contains(&token)));

    // A POST with its body and query, and Airwallex's own validation error passed back.
    let beneficiary = json!({
        "beneficiary": {"entity_type": "COMPANY", "bank_details": {
            "account_name": "Harbour Supplies", "account_currency": "AUD", "bank_country_code": "AU"}},
        "payment_methods": ["LOCAL"],
        "nickname": "supplier",
    });
    let created = platform
        .post_json(&proxied(merchant, "api/v1/beneficiaries/create"), &beneficiary)
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(created.json()["beneficiary_id"].as_str().unwrap().starts_with("ben_"));
    let invalid = platform
        .post_json(
            &proxied(merchant, "api/v1/beneficiaries/create"),
            &json!({"beneficiary": {"entity_type": "COMPANY", "bank_details": {"account_currency": "AUD"}}}),
        )
        .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json()["code"], "validation_error");
    assert_eq!(invalid.json()["source"], "beneficiary.bank_details.account_name");
    platform
        .post_json(&proxied(merchant, "api/v1/beneficiaries/create"), &beneficiary)
        .await;
    let page = platform
        .get(&proxied(merchant, "api/v1/beneficiaries?page_num=1&page_size=1"))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(page.json()["has_more"], false);
    let seen = app.sim().requests().into_iter().last().unwrap();
    assert_eq!(
        seen.query.as_deref(),
        Some("page_num=1&page_size=1"),
        "the query as sent"
    );

    // Recorded: who, what, how it ended; never a body, a query or the token. (A call is
    // recorded once its answer has been streamed out.)
    let calls = awx_onboard_server::testing::eventually("five calls recorded", Duration::from_secs(5), || async {
        app.services().proxy_calls.flush().await.unwrap();
        let calls = app.services().proxy_calls.for_connection(connection, 10).await.unwrap();
        (calls.len() == 5).then_some(calls)
    })
    .await;
    let summary: Vec<(String, String, u16)> = calls
        .iter()
        .map(|c| (c.call.method.clone(), c.call.path.clone(), c.call.status))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET".to_string(), "api/v1/beneficiaries".to_string(), 200),
            ("POST".into(), "api/v1/beneficiaries/create".into(), 201),
            ("POST".into(), "api/v1/beneficiaries/create".into(), 400),
            ("POST".into(), "api/v1/beneficiaries/create".into(), 201),
            ("GET".into(), "api/v1/balances/current".into(), 200),
        ]
    );
    assert!(calls[1].call.request_bytes > 100 && calls[4].call.response_bytes as usize == balances.text.len());
    let csv: Vec<String> =
        futures::TryStreamExt::try_collect(app.services().proxy_calls.csv_stream(Some(connection), None))
            .await
            .unwrap();
    let csv = csv.concat();
    assert!(
        !csv.contains(&token) && !csv.contains("page_size") && !csv.contains("Harbour Supplies"),
        "{csv}"
    );
    let after = awx_onboard::metrics::render();
    let count = |text: &str, class: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(&format!("awx_proxy_requests_total{{class=\"{class}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    assert!(count(&after, "2xx") >= count(&before, "2xx") + 4);
    assert!(count(&after, "4xx") > count(&before, "4xx"));
    assert!(!after.contains("balances"), "no path in the metrics");

    // Operators see them beside the token reads, and export them.
    app.create_operator("ops@example.com").await;
    let operator = app.logged_in("ops@example.com").await;
    let page = operator.page(&app::paths::operator_connection(connection)).await;
    assert!(page.contains("Airwallex calls through the proxy"), "{page}");
    assert!(
        page.contains("api/v1/beneficiaries/create") && !page.contains(&token),
        "{page}"
    );
    let export = operator.get(app::paths::OPERATOR_PROXY_CALLS_CSV).await;
    assert_eq!(export.status(), 200);
    let export = export.text().await.unwrap();
    assert!(export.starts_with("at,key_id,key_name,connection_id,merchant_email,method,path,status"));
    assert_eq!(export.lines().count(), 6, "{export}");
    app.stop().await;
}
both_engines!(calls_go_through_and_the_token_never_leaves);

async fn a_refused_token_is_renewed_once_and_never_twice(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let merchant = connected(&app, "ana@example.com", HARBOUR_COFFEE).await;
    let platform = Caller::new(&app, &[Scope::AirwallexProxy]).await;
    let path = proxied(merchant, "api/v1/balances/current");

    let refreshes = app.sim().counters().refreshes;
    app.sim().inject(Endpoint::Api, FaultKind::Error401, 1);
    let answer = platform.get(&path).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(api_calls(&app, BALANCES), 2, "refused once, then made again");
    assert_eq!(app.sim().counters().refreshes, refreshes + 1, "one renewal");

    app.sim().inject(Endpoint::Api, FaultKind::Error401, 2);
    let answer = platform.get(&path).await;
    assert_eq!(answer.status, 401, "Airwallex's answer, after one retry");
    assert_eq!(answer.json()["code"], "credentials_invalid");
    assert_eq!(api_calls(&app, BALANCES), 4, "exactly two more upstream calls");
    assert_eq!(app.sim().counters().refreshes, refreshes + 2);

    // Revoked on Airwallex: the renewal says the connection is gone.
    assert_eq!(app.sim().revoke_account(HARBOUR_COFFEE), 1);
    let answer = platform.get(&path).await;
    assert_eq!(answer.status, 409, "{}", answer.text);
    assert_eq!(answer.json()["code"], "needs_reconnect");
    assert_eq!(answer.json()["reason"], "revoked");
    app.stop().await;
}
both_engines!(a_refused_token_is_renewed_once_and_never_twice);

#[tokio::test]
async fn two_hundred_calls_for_an_expired_token_over_two_instances_cause_one_refresh() {
    let limits = [
        ("AIRWALLEX_PROXY_RATE_PER_SECOND", "100000"),
        ("AIRWALLEX_PROXY_CONCURRENCY", "1000"),
    ];
    let first = TestApp::spawn_with(Engine::Postgres, &limits).await;
    let second = first.another_instance(&limits).await;
    let merchant = connected(&first, "ana@example.com", HARBOUR_COFFEE).await;
    let platform = Caller::new(&first, &[Scope::AirwallexProxy]).await;
    first.expire_access_token(merchant).await;
    let refreshes = first.sim().counters().refreshes;
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let caller = platform.on(if i % 2 == 0 { &first.base } else { &second.base });
            let path = proxied(merchant, "api/v1/balances/current");
            tokio::spawn(async move { caller.get(&path).await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(
        first.sim().counters().refreshes,
        refreshes + 1,
        "one refresh for all 200"
    );
    second.stop().await;
    first.stop().await;
}

async fn paths_and_headers_that_must_not_pass_do_not(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let merchant = connected(&app, "ana@example.com", HARBOUR_COFFEE).await;
    let platform = Caller::new(&app, &[Scope::AirwallexProxy]).await;
    let before = app.sim().counters();
    let requests_before = app.sim().requests().len();
    let prefix = format!("/api/platform/v1/merchants/{merchant}/airwallex");
    for escape in [
        "/oauth/token",
        "/api/v1/../../oauth/token",
        "/api/v1/%2e%2e/%2e%2e/oauth/token",
        "/api/v1%2f..%2f..%2foauth/token",
        "/api/v1/..%2F..%2Foauth/token",
        "/api%2fv1/account/",
        "/api/v1//account/",
        "/api/v2/anything",
    ] {
        let status = raw_get(&app.base, &format!("{prefix}{escape}"), &platform.key).await;
        assert_eq!(status, 400, "{escape}");
    }
    let answer = platform.get(&proxied(merchant, "oauth/token")).await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (400, Some("path_not_allowed"))
    );
    let after = app.sim().counters();
    assert_eq!(
        (after.token_calls, after.account_calls, after.api_calls),
        (before.token_calls, before.account_calls, before.api_calls),
        "nothing reached the simulator"
    );
    assert_eq!(app.sim().requests().len(), requests_before);

    // Headers: only the ones that should pass do; the caller's API version wins.
    let answer = platform
        .send(
            platform
                .http
                .get(format!("{}{}", app.base, proxied(merchant, "api/v1/balances/current")))
                .header("cookie", "awx_session=stolen")
                .header("x-forwarded-for", "203.0.113.9")
                .header("x-forwarded-host", "evil.test")
                .header("x-internal-secret", "do-not-pass")
                .header("accept-language", "en-AU")
                .header("accept", "application/json")
                .header("x-api-version", "2025-02-14"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let seen = app.sim().requests().into_iter().last().unwrap();
    let names: Vec<&str> = seen.headers.iter().map(|(n, _)| n.as_str()).collect();
    for refused in [
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-internal-secret",
        "connection",
        "te",
    ] {
        assert!(!names.contains(&refused), "{refused} reached Airwallex: {names:?}");
    }
    assert_eq!(seen.header("accept-language"), Some("en-AU"));
    assert_eq!(seen.header("x-api-version"), Some("2025-02-14"));
    assert!(
        !seen.header("authorization").unwrap().contains("awx_pk_"),
        "the service key stays here"
    );
    assert_eq!(seen.header("host"), Some(app.sim_url().trim_start_matches("http://")));
    platform.get(&proxied(merchant, "api/v1/balances/current")).await;
    let seen = app.sim().requests().into_iter().last().unwrap();
    assert_eq!(
        seen.header("x-api-version"),
        Some(awx_onboard_server::config::DEFAULT_API_VERSION),
        "the pinned version without the caller's"
    );
    app.stop().await;
}
both_engines!(paths_and_headers_that_must_not_pass_do_not);

async fn limits_answer_before_airwallex_is_called(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AIRWALLEX_PROXY_RATE_PER_SECOND", "3"),
            ("AIRWALLEX_PROXY_CONCURRENCY", "2"),
            ("AIRWALLEX_PROXY_TIMEOUT_SECONDS", "1"),
        ],
    )
    .await;
    let merchant = connected(&app, "ana@example.com", HARBOUR_COFFEE).await;
    let platform = Caller::new(&app, &[Scope::AirwallexProxy]).await;
    let path = proxied(merchant, "api/v1/balances/current");

    // Requests in flight: two held at Airwallex, the third refused at once.
    app.sim().inject(Endpoint::Api, FaultKind::Delay { ms: 700 }, 2);
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (caller, path) = (platform.on(&app.base), path.clone());
            tokio::spawn(async move { caller.get(&path).await.status })
        })
        .collect();
    awx_onboard::testing::wait_until("two calls wait at Airwallex", || api_calls(&app, BALANCES) == 2).await;
    let refused = platform.get(&path).await;
    assert_eq!(
        (refused.status, refused.json()["code"].as_str()),
        (429, Some("rate_limited"))
    );
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(api_calls(&app, BALANCES), 2, "Airwallex was not called");
    for call in held {
        assert_eq!(call.await.unwrap(), 200);
    }

    // Requests a second: three, then 429 with Retry-After, without calling Airwallex.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = platform.get(&path).await;
        if answer.status == 429 {
            assert!(answer.headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let calls = api_calls(&app, BALANCES);
    assert_eq!(calls, 5);

    // Airwallex's own 429 comes back as it is, with a Retry-After, and is not retried.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.sim().inject(Endpoint::Api, FaultKind::Error429, 1);
    let limited = platform.get(&path).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["code"], "too_many_requests", "Airwallex's body");
    assert_eq!(limited.headers["retry-after"], "1");
    assert_eq!(api_calls(&app, BALANCES), calls + 1);

    // A slow Airwallex: 504 after AIRWALLEX_PROXY_TIMEOUT_SECONDS.
    app.sim().inject(Endpoint::Api, FaultKind::Delay { ms: 2500 }, 1);
    let started = std::time::Instant::now();
    let slow = platform.get(&path).await;
    assert_eq!(
        (slow.status, slow.json()["code"].as_str()),
        (504, Some("airwallex_timeout"))
    );
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );

    // A body above 1 MiB never leaves.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let calls = api_calls(&app, "POST /api/v1/beneficiaries/create");
    let big = platform
        .send(
            platform
                .http
                .post(format!(
                    "{}{}",
                    app.base,
                    proxied(merchant, "api/v1/beneficiaries/create")
                ))
                .header("content-type", "application/json")
                .body(vec![b' '; (1 << 20) + 1]),
        )
        .await;
    assert_eq!((big.status, big.json()["code"].as_str()), (413, Some("body_too_large")));
    assert_eq!(api_calls(&app, "POST /api/v1/beneficiaries/create"), calls);
    app.stop().await;
}
both_engines!(limits_answer_before_airwallex_is_called);

async fn scopes_merchants_and_an_unreachable_airwallex(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let merchant = connected(&app, "ana@example.com", MAPLE_FINCH).await;
    let tokens_only = Caller::new(&app, &[Scope::TokensRead]).await;
    let proxy_only = Caller::new(&app, &[Scope::AirwallexProxy]).await;
    let path = proxied(merchant, "api/v1/balances/current");
    assert_eq!(tokens_only.get(&path).await.status, 403, "tokens:read cannot proxy");
    let token = proxy_only
        .send(proxy_only.http.post(format!(
            "{}/api/platform/v1/merchants/{merchant}/access-token",
            app.base
        )))
        .await;
    assert_eq!(token.status, 403, "airwallex:proxy cannot take a token out");
    assert_eq!(
        proxy_only.get(&proxied(9999, "api/v1/balances/current")).await.status,
        404
    );
    app.browser().sign_up("bo@example.com").await;
    let never = app.merchant_id("bo@example.com").await;
    let answer = proxy_only.get(&proxied(never, "api/v1/balances/current")).await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (409, Some("not_connected"))
    );
    let head = proxy_only
        .send(proxy_only.http.head(format!("{}{}", app.base, path)))
        .await;
    assert_eq!(head.status, 405, "only GET, POST, PUT, PATCH and DELETE are forwarded");

    // An instance whose Airwallex is gone: 502.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let cut_off = app.another_instance(&[("AIRWALLEX_API_URL", &dead)]).await;
    let answer = proxy_only.on(&cut_off.base).get(&path).await;
    assert_eq!(
        (answer.status, answer.json()["code"].as_str()),
        (502, Some("airwallex_unavailable"))
    );
    cut_off.stop().await;
    app.stop().await;
}
both_engines!(scopes_merchants_and_an_unreachable_airwallex);

#[tokio::test]
async fn the_platform_calls_by_its_own_id_for_merchants_of_connect_sessions() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[("PLATFORM_RETURN_ORIGINS", "https://platform.example")],
    )
    .await;
    let created = app.connect_link("shop-1", "https://platform.example/back").await;
    app.browser()
        .use_connect_link(created.url.expose(), "authorize", HARBOUR_COFFEE)
        .await;
    let platform = Caller::new(&app, &[Scope::AirwallexProxy]).await;
    let answer = platform
        .get("/api/platform/v1/merchants/external/shop-1/airwallex/api/v1/balances/current")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.headers["awx-onboard-connection"],
        app.connection_id("shop-1@example.com").await.to_string().as_str()
    );
    let unknown = platform
        .get("/api/platform/v1/merchants/external/nobody/airwallex/api/v1/balances/current")
        .await;
    assert_eq!(unknown.status, 404);
    app.stop().await;
}

/// A call past the limits costs nothing upstream: not even the renewal of an expired token.
#[tokio::test]
async fn a_call_past_the_limits_renews_no_token() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AIRWALLEX_PROXY_RATE_PER_SECOND", "1")]).await;
    let merchant = connected(&app, "ana@example.com", HARBOUR_COFFEE).await;
    let platform = Caller::new(&app, &[Scope::AirwallexProxy]).await;
    let path = proxied(merchant, "api/v1/balances/current");
    assert_eq!(platform.get(&path).await.status, 200);
    app.expire_access_token(merchant).await;
    let refreshes = app.sim().counters().refreshes;
    let refused = platform.get(&path).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(
        app.sim().counters().refreshes,
        refreshes,
        "no renewal for a refused call"
    );
    app.stop().await;
}
