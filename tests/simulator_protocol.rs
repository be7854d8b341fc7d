//! The simulator's protocol, pinned over real HTTP: every rule of AIRWALLEX.md that the
//! product relies on.

use std::sync::{Arc, Mutex};

use awx_onboard::simulator::{self, SimClient, SimConfig, Simulator};
use awx_onboard::testing::wait_until;
use awx_onboard::webhook_signature;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// An OAuth error answer: `status`, and `{"error": code}` in the body.
#[track_caller]
fn assert_oauth_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!((status, body["error"].as_str()), (expected, Some(code)), "{body}");
}

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
const ACCOUNT: &str = "acct_hX2kq9TfRz3Lw8VbN4aP1c";

type Received = Arc<Mutex<Vec<(String, String, String)>>>;

struct Sim {
    base: String,
    sim: Simulator,
    http: reqwest::Client,
    webhooks: Received,
}

/// A simulator on a random port, with a webhook receiver of its own.
async fn start() -> Sim {
    let webhooks: Received = Arc::default();
    let sink = webhooks.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                sink.lock()
                    .unwrap()
                    .push((header("x-timestamp"), header("x-signature"), body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });

    let mut client = SimClient::default_with_redirect(REDIRECT);
    client.webhook_url = Some(format!("http://{hook_addr}/hook"));
    let sim = Simulator::new(SimConfig::new(vec![client]));
    let addr = sim.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Sim {
        base: format!("http://{addr}"),
        sim,
        http: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        webhooks,
    }
}

fn pkce_pair() -> (String, String) {
    let verifier = awx_onboard::secret::random_urlsafe(32);
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    (verifier, challenge)
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

/// An answer's status, and its JSON body (`null` when it has none).
async fn status_and_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

impl Sim {
    /// `GET path` on the simulator.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).send().await.unwrap()
    }

    /// `form` posted to `path` on the simulator.
    async fn post_form<T: serde::Serialize + ?Sized>(&self, path: &str, form: &T) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    fn authorize_query(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut q: Vec<(String, String)> = vec![
            ("response_type".into(), "code".into()),
            ("client_id".into(), simulator::DEFAULT_CLIENT_ID.into()),
            ("redirect_uri".into(), REDIRECT.into()),
            ("scope".into(), "account_details:read".into()),
            ("state".into(), "st-123".into()),
        ];
        for (k, v) in extra {
            q.retain(|(key, _)| key != k);
            if !v.is_empty() {
                q.push((k.to_string(), v.to_string()));
            }
        }
        q
    }

    async fn authorize_page(&self, extra: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(format!("{}/oauth/authorize", self.base))
            .query(&self.authorize_query(extra))
            .send()
            .await
            .unwrap()
    }

    async fn decide(&self, extra: &[(&str, &str)], decision: &str, account: &str) -> reqwest::Response {
        let mut form = self.authorize_query(extra);
        form.push(("decision".into(), decision.into()));
        form.push(("account".into(), account.into()));
        self.post_form("/oauth/authorize", &form).await
    }

    /// Consents as the first preset account and returns the code.
    async fn code(&self, extra: &[(&str, &str)]) -> String {
        let response = self.decide(extra, "authorize", ACCOUNT).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let query = query_of(&location);
        assert_eq!(query["state"], "st-123");
        query["code"].clone()
    }

    async fn token(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// A token request whose body is `body` as it is, said to be JSON.
    async fn raw_token_request(&self, body: String) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth/token", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn exchange(&self, code: &str, verifier: Option<&str>) -> (StatusCode, Value) {
        let mut body = json!({
            "client_id": simulator::DEFAULT_CLIENT_ID,
            "client_secret": simulator::DEFAULT_CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
        });
        if let Some(verifier) = verifier {
            body["code_verifier"] = json!(verifier);
        }
        self.token(body).await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.token(json!({
            "client_id": simulator::DEFAULT_CLIENT_ID,
            "client_secret": simulator::DEFAULT_CLIENT_SECRET,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }))
        .await
    }

    /// A fresh connection's token response.
    async fn connect(&self) -> Value {
        let code = self.code(&[]).await;
        let (status, body) = self.exchange(&code, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A fresh connection's refresh token used once, then again `seconds` later: the token
    /// response of the first use, and the answer to the second.
    async fn refresh_twice(&self, seconds: i64) -> (Value, (StatusCode, Value)) {
        let first = self.connect().await;
        let old = first["refresh_token"].as_str().unwrap();
        let (_, second) = self.refresh(old).await;
        self.sim.clock().advance(seconds);
        (second, self.refresh(old).await)
    }

    async fn account(&self, access_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}/api/v1/account/", self.base))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// `GET /__sim{path}`, as JSON.
    async fn read_control(&self, path: &str) -> Value {
        self.get(&format!("/__sim{path}")).await.json().await.unwrap()
    }

    async fn control(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/__sim{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn wait_for_webhooks(&self, count: usize) -> Vec<(String, String, String)> {
        wait_until("the webhooks arrive", || self.webhooks.lock().unwrap().len() >= count).await;
        self.webhooks.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn the_consent_page_names_the_app_and_the_scopes() {
    let sim = start().await;
    let page = sim.authorize_page(&[("sign_up", "true")]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("awx-onboard"));
    assert!(html.contains("View your account details"));
    assert!(html.contains(">Authorize</button>") && html.contains(">Decline</button>"));
    assert!(html.contains("Create a new Airwallex account"));
    // Account names are escaped.
    assert!(html.contains("Maple &amp; Finch &lt;Trading&gt; Ltd"));
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirects_get_an_error_page_never_a_redirect() {
    let sim = start().await;
    for extra in [
        [("client_id", "someone_else")],
        [("redirect_uri", "https://evil.example/callback")],
    ] {
        let response = sim.authorize_page(&extra).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get("location").is_none());
        let decided = sim.decide(&extra, "authorize", ACCOUNT).await;
        assert_eq!(decided.status(), StatusCode::BAD_REQUEST);
        assert!(decided.headers().get("location").is_none());
    }
}

#[tokio::test]
async fn bad_authorization_requests_are_reported_to_the_registered_redirect() {
    let sim = start().await;
    for (extra, error) in [
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("scope", "")], "invalid_scope"),
        (vec![("scope", "payments:write")], "invalid_scope"),
        (vec![("state", "")], "invalid_request"),
        (
            vec![("code_challenge", "abc"), ("code_challenge_method", "plain")],
            "invalid_request",
        ),
    ] {
        let response = sim.authorize_page(&extra).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{extra:?}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(REDIRECT));
        assert_eq!(query_of(location)["error"], error, "{extra:?}");
    }
    // Both scope forms are accepted.
    let long = sim
        .authorize_page(&[("scope", "r:awx_action:settings.account_details_view")])
        .await;
    assert_eq!(long.status(), StatusCode::OK);
}

#[tokio::test]
async fn decline_redirects_with_access_denied_and_the_state() {
    let sim = start().await;
    let response = sim.decide(&[], "decline", ACCOUNT).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let query = query_of(response.headers()["location"].to_str().unwrap());
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st-123");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn sign_up_creates_an_account_during_consent() {
    let sim = start().await;
    let mut form = sim.authorize_query(&[("sign_up", "true")]);
    form.extend([
        ("decision".to_string(), "authorize".to_string()),
        ("account".to_string(), "new".to_string()),
        ("new_business_name".to_string(), "Fresh Start Pty Ltd".to_string()),
        ("new_email".to_string(), "owner@freshstart.example".to_string()),
    ]);
    let response = sim.post_form("/oauth/authorize", &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let code = query_of(response.headers()["location"].to_str().unwrap())["code"].clone();
    let (_, tokens) = sim.exchange(&code, None).await;
    let (status, account) = sim.account(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        account["account_details"]["business_details"]["business_name"],
        "Fresh Start Pty Ltd"
    );
    assert_eq!(account["status"], "CREATED");
}

#[tokio::test]
async fn a_code_exchange_returns_the_documented_fields() {
    let sim = start().await;
    let tokens = sim.connect().await;
    for field in ["access_token", "refresh_token", "token_type", "scope"] {
        assert!(tokens[field].is_string(), "{field} missing in {tokens}");
    }
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["refresh_token_expires_in"], 60 * 86_400);
    let (status, account) = sim.account(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account["id"], ACCOUNT);
    assert_eq!(account["account_details"]["legal_entity_type"], "BUSINESS");
    assert_eq!(
        account["account_details"]["business_details"]["business_address"]["country_code"],
        "AU"
    );
    assert_eq!(account["primary_contact"]["email"], "finance@harbourcoffee.com.au");
}

#[tokio::test]
async fn codes_are_single_use_short_lived_and_bound_to_their_redirect_uri() {
    let sim = start().await;
    let code = sim.code(&[]).await;
    assert_eq!(sim.exchange(&code, None).await.0, StatusCode::OK);
    let (status, body) = sim.exchange(&code, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let code = sim.code(&[]).await;
    let (status, body) = sim
        .token(json!({
            "client_id": simulator::DEFAULT_CLIENT_ID, "client_secret": simulator::DEFAULT_CLIENT_SECRET,
            "grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:9/other",
        }))
        .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let code = sim.code(&[]).await;
    sim.sim.clock().advance(601);
    let (status, body) = sim.exchange(&code, None).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn client_credentials_are_checked() {
    let sim = start().await;
    let code = sim.code(&[]).await;
    let (status, body) = sim
        .token(json!({
            "client_id": simulator::DEFAULT_CLIENT_ID, "client_secret": "wrong",
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        }))
        .await;
    assert_oauth_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn pkce_is_verified_when_a_challenge_was_sent() {
    let sim = start().await;
    let (verifier, challenge) = pkce_pair();
    let pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];

    let code = sim.code(&pkce).await;
    let (status, body) = sim
        .exchange(&code, Some("not-the-verifier-at-all-but-long-enough-000000"))
        .await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let code = sim.code(&pkce).await;
    let (status, _) = sim.exchange(&code, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let code = sim.code(&pkce).await;
    let (status, _) = sim.exchange(&code, Some(&verifier)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_refresh_rotates_both_tokens() {
    let sim = start().await;
    let first = sim.connect().await;
    let (status, second) = sim.refresh(first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["refresh_token_expires_in"], 60 * 86_400);
    let (status, _) = sim.refresh(second["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.sim.counters().refreshes, 2);
    assert_eq!(sim.sim.counters().token_calls["refresh_token"], 2);
}

#[tokio::test]
async fn a_superseded_refresh_token_works_for_59_seconds() {
    let sim = start().await;
    let (_, (status, third)) = sim.refresh_twice(59).await;
    assert_eq!(status, StatusCode::OK, "the grace minute allows a retry: {third}");
    assert_eq!(sim.sim.counters().reuse_detections, 0);
    // The connection is alive: the newest tokens work.
    assert_eq!(
        sim.account(third["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_superseded_refresh_token_at_61_seconds_kills_the_whole_connection() {
    let sim = start().await;
    let (second, (status, body)) = sim.refresh_twice(61).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(sim.sim.counters().reuse_detections, 1);
    // Both of the newest tokens are dead too.
    let (status, body) = sim.refresh(second["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = sim.account(second["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("credentials_invalid"))
    );

    // And the partner hears about it, with a signature that verifies.
    let hooks = sim.wait_for_webhooks(1).await;
    assert_eq!(hooks.len(), 1);
    let (timestamp, signature, body) = &hooks[0];
    assert!(webhook_signature::verify(
        simulator::DEFAULT_WEBHOOK_SECRET.as_bytes(),
        timestamp,
        body.as_bytes(),
        signature
    ));
    assert!(!webhook_signature::verify(
        b"wrong secret",
        timestamp,
        body.as_bytes(),
        signature
    ));
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["name"], "connection.disconnected");
    assert_eq!(event["account_id"], ACCOUNT);
    assert_eq!(event["data"]["status"], "DISCONNECTED");
    assert_eq!(event["data"]["authorized_scopes"], json!(["account_details:read"]));
}

#[tokio::test]
async fn a_concurrent_refresh_gets_429_and_exactly_one_succeeds() {
    let sim = start().await;
    let tokens = sim.connect().await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
    let response = sim
        .control(
            "/faults",
            json!({"endpoint": "token", "fault": {"kind": "delay", "ms": 600}, "count": 1}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let slow = {
        let http = sim.http.clone();
        let url = format!("{}/oauth/token", sim.base);
        let body = json!({
            "client_id": simulator::DEFAULT_CLIENT_ID, "client_secret": simulator::DEFAULT_CLIENT_SECRET,
            "grant_type": "refresh_token", "refresh_token": refresh_token,
        });
        tokio::spawn(async move { http.post(url).json(&body).send().await.unwrap().status() })
    };
    wait_until("the slow refresh is in flight", || sim.sim.refreshes_in_flight() == 1).await;
    let others = futures::future::join_all((0..8).map(|_| sim.refresh(&refresh_token))).await;
    for (status, body) in &others {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["code"], "too_many_requests");
        assert_eq!(body["message"], "Concurrent token refresh is not allowed.");
    }
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    let counters = sim.sim.counters();
    assert_eq!(counters.refreshes, 1);
    assert_eq!(counters.too_many_requests, 8);
}

#[tokio::test]
async fn tokens_expire_by_the_clock() {
    let sim = start().await;
    let tokens = sim.connect().await;
    let access = tokens["access_token"].as_str().unwrap();
    sim.sim.clock().advance(299);
    assert_eq!(sim.account(access).await.0, StatusCode::OK);
    sim.sim.clock().advance(2);
    let (status, body) = sim.account(access).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("credentials_expired"))
    );

    sim.sim.clock().advance(60 * 86_400);
    let (status, body) = sim.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(sim.sim.counters().reuse_detections, 0, "expiry is not reuse");
}

#[tokio::test]
async fn the_account_api_wants_a_valid_bearer_token() {
    let sim = start().await;
    let bare = sim.get("/api/v1/account/").await;
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    let (status, body) = sim.account("made-up").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("credentials_invalid"))
    );
    assert!(body["message"].is_string());
}

#[tokio::test]
async fn a_merchant_disconnects_the_app_on_the_simulator() {
    let sim = start().await;
    let tokens = sim.connect().await;
    let page = sim.get(&format!("/merchant/apps?account={ACCOUNT}")).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("awx-onboard") && html.contains("Disconnect"));
    let connection_id = sim.sim.counters(); // counters are untouched by page views
    assert_eq!(connection_id.revocations, 0);
    let list: Value = sim.read_control("/connections").await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    let response = sim
        .post_form("/merchant/apps/disconnect", &[("connection_id", id.as_str())])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        sim.account(tokens["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sim.refresh(tokens["refresh_token"].as_str().unwrap()).await.0,
        StatusCode::BAD_REQUEST
    );
    let after = sim.get(&format!("/merchant/apps?account={ACCOUNT}")).await;
    assert!(after.text().await.unwrap().contains("No apps are connected"));
    let hooks = sim.wait_for_webhooks(1).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(sim.sim.counters().revocations, 1);

    // Airwallex's envelope: a UUID event id, `created_at` with a colon-less offset.
    let event: Value = serde_json::from_str(&hooks[0].2).unwrap();
    let event_id = event["id"].as_str().unwrap().to_string();
    let groups: Vec<usize> = event_id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{event_id}");
    assert!(event_id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    assert_eq!(&event_id[14..15], "4", "version 4");
    let created_at = event["created_at"].as_str().unwrap();
    assert!(created_at.ends_with("+0000"), "{created_at}");
    assert!(awx_onboard::time::parse_timestamp(created_at).is_some());

    // A late retry: the control sends the same event again, freshly signed.
    sim.sim.clock().advance(3600);
    let listed: Value = sim.read_control("/webhooks").await;
    assert_eq!(listed[0]["id"], event_id.as_str());
    let redelivered = sim.control("/webhooks/redeliver", json!({"event_id": event_id})).await;
    assert_eq!(redelivered.status(), StatusCode::OK);
    let hooks = sim.wait_for_webhooks(2).await;
    assert_eq!(hooks[1].2, hooks[0].2, "the same event");
    assert_ne!(hooks[1].0, hooks[0].0, "a new timestamp");
    assert!(webhook_signature::verify(
        simulator::DEFAULT_WEBHOOK_SECRET.as_bytes(),
        &hooks[1].0,
        hooks[1].2.as_bytes(),
        &hooks[1].1
    ));
    let unknown = sim
        .control("/webhooks/redeliver", json!({"event_id": "no-such-event"}))
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_injected_500_changes_nothing() {
    let sim = start().await;
    let tokens = sim.connect().await;
    sim.control(
        "/faults",
        json!({"endpoint": "token", "fault": {"kind": "error500"}, "count": 1}),
    )
    .await;
    let (status, body) = sim.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "server_error");
    assert_eq!(sim.sim.counters().refreshes, 0);
    let (status, _) = sim.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_dropped_response_rotates_anyway_and_the_old_token_recovers_inside_the_grace_minute() {
    let sim = start().await;
    let tokens = sim.connect().await;
    let old = tokens["refresh_token"].as_str().unwrap();
    sim.control(
        "/faults",
        json!({"endpoint": "token", "fault": {"kind": "drop"}, "count": 1}),
    )
    .await;
    let lost = sim
        .http
        .post(format!("{}/oauth/token", sim.base))
        .json(&json!({
            "client_id": simulator::DEFAULT_CLIENT_ID, "client_secret": simulator::DEFAULT_CLIENT_SECRET,
            "grant_type": "refresh_token", "refresh_token": old,
        }))
        .send()
        .await;
    assert!(lost.is_err(), "the client sees a reset, not an answer");
    assert_eq!(sim.sim.counters().refreshes, 1, "the simulator rotated before dropping");
    sim.sim.clock().advance(30);
    let (status, recovered) = sim.refresh(old).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sim.account(recovered["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    assert_eq!(sim.sim.counters().reuse_detections, 0);
}

#[tokio::test]
async fn bad_token_requests_get_documented_errors_not_panics() {
    let sim = start().await;
    let malformed = sim.raw_token_request("{not json".to_string()).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json::<Value>().await.unwrap()["error"], "invalid_request");

    let huge = format!("{{\"grant_type\":\"{}\"}}", "x".repeat(64 * 1024));
    let oversized = sim.raw_token_request(huge).await;
    assert_eq!(oversized.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(oversized.json::<Value>().await.unwrap()["error"], "invalid_request");

    let cases = [
        (json!({}), "invalid_request"),
        (
            json!({"grant_type": "password", "client_id": "a", "client_secret": "b"}),
            "unsupported_grant_type",
        ),
        (json!({"grant_type": "refresh_token"}), "invalid_request"),
        (
            json!({"grant_type": "refresh_token", "client_id": simulator::DEFAULT_CLIENT_ID,
                   "client_secret": simulator::DEFAULT_CLIENT_SECRET}),
            "invalid_request",
        ),
        (
            json!({"grant_type": "refresh_token", "client_id": simulator::DEFAULT_CLIENT_ID,
                   "client_secret": simulator::DEFAULT_CLIENT_SECRET, "refresh_token": "unknown"}),
            "invalid_grant",
        ),
        (json!({"grant_type": 7}), "invalid_request"),
        (json!([1, 2, 3]), "invalid_request"),
    ];
    for (body, error) in cases {
        let (status, answer) = sim.token(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], error, "{body}");
        assert!(answer["error_description"].is_string());
    }
    // Unreadable bodies and unknown grant types count as "other" token calls.
    assert_eq!(sim.sim.counters().token_calls["other"], 6);
}

#[tokio::test]
async fn controls_move_the_clock_count_and_reset() {
    let sim = start().await;
    let before: Value = sim.read_control("/clock").await;
    let moved: Value = sim
        .control("/clock/advance", json!({"seconds": 3600}))
        .await
        .json()
        .await
        .unwrap();
    assert!(moved["now"].as_i64().unwrap() >= before["now"].as_i64().unwrap() + 3600);
    assert_eq!(
        sim.control("/clock/advance", json!({"seconds": -5})).await.status(),
        StatusCode::BAD_REQUEST
    );

    sim.connect().await;
    let counters: Value = sim.read_control("/counters").await;
    assert_eq!(counters["token_calls"]["authorization_code"], 1);
    let revoked = sim.control("/revoke", json!({"account_id": ACCOUNT})).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        sim.control("/revoke", json!({"account_id": ACCOUNT})).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(sim.sim.counters().revocations, 1);

    assert_eq!(sim.control("/reset", json!({})).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.sim.counters(), simulator::Counters::default());
}
