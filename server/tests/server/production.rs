//! Production concerns over real HTTP and through the real binary: nothing defaults to the
//! simulator in public, the client address behind a trusted proxy, HSTS, static files,
//! the operations subcommands, and a graceful drain on shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use awx_onboard::db::Engine;
use awx_onboard::testing::TestDatabase;
use awx_onboard_server::testing::{Browser, TestApp, HARBOUR_COFFEE, PASSWORD};
use reqwest::StatusCode;

const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// Runs the `awx-onboard` binary with exactly these variables (and a quiet log).
fn binary(args: &[&str], vars: &[(&str, &str)], dir: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_awx-onboard"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "error")
        .envs(vars.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `check-config` for the embedded SQLite database with `extra` set, which must pass; what it
/// printed.
fn valid_config_with(extra: (&str, &str), dir: &std::path::Path) -> String {
    let (ok, text) = binary(
        &["check-config"],
        &[("DATABASE_URL", "sqlite://data/check.db"), extra],
        dir,
    );
    assert!(ok, "{text}");
    text
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("awx-prod-{}", awx_onboard::secret::random_urlsafe(6)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_public_deployment_never_starts_on_the_simulator_by_default() {
    let dir = temp_dir();
    let (ok, text) = binary(
        &["serve"],
        &[
            ("PUBLIC_URL", "https://onboard.example.com"),
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ],
        &dir,
    );
    assert!(!ok, "{text}");
    assert!(text.contains("AIRWALLEX_ENV"), "{text}");
    assert!(!dir.join("data").exists(), "nothing was created");
    let (ok, text) = binary(&["sim", "--addr", "0.0.0.0:0"], &[], &dir);
    assert!(!ok && text.contains("loopback"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_config_lists_every_problem_and_touches_nothing() {
    let dir = temp_dir();
    let (ok, text) = binary(
        &["check-config"],
        &[
            ("PUBLIC_URL", "https://onboard.example.com"),
            ("DATABASE_URL", "mysql://nope"),
            ("TRUSTED_PROXIES", "10.0.0.0/99"),
            ("TOKEN_ENCRYPTION_KEY", "short"),
            ("SMTP_URL", "http://mail.example.com"),
            ("MAIL_FROM", "nobody"),
            ("DIGEST_HOUR_UTC", "24"),
        ],
        &dir,
    );
    assert!(!ok, "{text}");
    for variable in [
        "AIRWALLEX_ENV",
        "DATABASE_URL",
        "TRUSTED_PROXIES",
        "TOKEN_ENCRYPTION_KEY",
        "SMTP_URL",
        "MAIL_FROM",
        "DIGEST_HOUR_UTC",
    ] {
        assert!(text.contains(variable), "{variable} missing in {text}");
    }
    let text = valid_config_with(("TRUSTED_PROXIES", "127.0.0.1/32"), &dir);
    assert!(
        text.contains("configuration is valid") && text.contains("trusted proxies: 127.0.0.1/32"),
        "{text}"
    );
    assert!(
        !text.contains(awx_onboard::simulator::DEFAULT_CLIENT_SECRET),
        "no secret printed"
    );
    assert_eq!(
        text.matches("kept in the local mailbox at /mailbox").count(),
        1,
        "in the embedded mode without SMTP_URL, said once: {text}"
    );
    let text = valid_config_with(("SMTP_URL", "smtps://mailer:hunter2-secret@smtp.example.com:465"), &dir);
    assert!(text.contains("sent through SMTP_URL"), "{text}");
    assert!(!text.contains("hunter2-secret"), "the SMTP password is not printed");
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "no database, no key file, nothing"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn migrate_brings_the_schema_up_to_date_and_exits() {
    let dir = temp_dir();
    let db = TestDatabase::postgres().await;
    let (ok, text) = binary(&["migrate"], &[("DATABASE_URL", &db.url)], &dir);
    assert!(ok, "{text}");
    assert!(text.contains("up to date"), "{text}");
    // Opened without migrating: whatever is applied, the binary applied.
    let pool = awx_onboard::db::Database::connect(&db.url).await.unwrap();
    let applied: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool.pool())
        .await
        .unwrap();
    let mut expected: Vec<i64> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/postgres"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| name.split('_').next().unwrap().parse().unwrap())
        .collect();
    expected.sort();
    assert!(expected.len() >= 6, "the migrations folder is read: {expected:?}");
    assert_eq!(applied.iter().map(|(v, _)| *v).collect::<Vec<_>>(), expected);
    assert!(applied.iter().all(|(_, success)| *success), "{applied:?}");
    pool.close().await;
    db.remove().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn rotate_key_re_encrypts_everything_so_the_old_key_can_go() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("TOKEN_ENCRYPTION_KEY", KEY_A)]).await;
    for i in 0..3 {
        app.connected_merchant(&format!("m{i}@example.com"), HARBOUR_COFFEE)
            .await;
    }
    // An operator's second factor is sealed under the same key, and so are a webhook
    // endpoint's signing secret and an invitation link waiting in the outbox.
    let operator = app.create_operator("ops@example.com").await;
    let ops = app.logged_in("ops@example.com").await;
    let (endpoint, _) = app
        .services()
        .webhooks
        .create(
            "https://platform.example/hooks",
            &[awx_onboard::platform::outbox::PlatformEvent::Connected],
            "test",
        )
        .await
        .unwrap();
    assert_eq!(
        ops.post("/operator/team/invite", &[("email", "new@example.com")])
            .await
            .status(),
        reqwest::StatusCode::SEE_OTHER
    );
    let url = app.db.url.clone();
    app.services().db.close().await;
    let dir = temp_dir();
    let run = |key: &str, retired: &str| {
        let mut vars = vec![("DATABASE_URL", url.as_str()), ("TOKEN_ENCRYPTION_KEY", key)];
        if !retired.is_empty() {
            vars.push(("TOKEN_ENCRYPTION_RETIRED_KEYS", retired));
        }
        binary(&["rotate-key"], &vars, &dir)
    };
    // Without the old key the values cannot be read: said so, nothing changed.
    let (ok, text) = run(KEY_B, "");
    assert!(!ok && text.contains("TOKEN_ENCRYPTION_RETIRED_KEYS"), "{text}");
    let (ok, text) = run(KEY_B, KEY_A);
    assert!(ok, "{text}");
    // 3 connections, 1 second factor, 1 signing secret, 1 invitation and the 3 merchants'
    // verification links waiting in the outbox.
    assert!(text.contains("9 of 9 re-encrypted"), "{text}");
    assert!(text.contains("retired keys can be dropped"), "{text}");
    // Again: nothing left to do.
    let (ok, text) = run(KEY_B, KEY_A);
    assert!(ok && text.contains("0 of 0"), "{text}");
    // What the binary said is true: every stored token opens with the new key alone.
    let key_b: [u8; 32] = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, KEY_B)
        .unwrap()
        .try_into()
        .unwrap();
    let new_only = awx_onboard::crypto::TokenCipher::new(&key_b, &[]);
    let db = awx_onboard::db::Database::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT id, key_id, access_token, refresh_token FROM connections")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let id: i64 = sqlx::Row::get(row, "id");
        let key_id: String = sqlx::Row::get(row, "key_id");
        assert_eq!(key_id, new_only.current_key_id());
        for field in ["access_token", "refresh_token"] {
            let sealed: Vec<u8> = sqlx::Row::get(row, field);
            new_only
                .decrypt(
                    &key_id,
                    &sealed,
                    &awx_onboard::crypto::associated_data("connections", id, field),
                )
                .unwrap_or_else(|e| panic!("connection {id} {field} after rotate-key: {e}"));
        }
    }
    let (key_id, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT key_id, secret FROM second_factors WHERE account_id = $1")
            .bind(operator.id)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(key_id, new_only.current_key_id());
    new_only
        .decrypt(
            &key_id,
            &sealed,
            &awx_onboard::crypto::associated_data("second_factors", operator.id, "secret"),
        )
        .expect("the second factor after rotate-key");
    let (key_id, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT key_id, secret FROM webhook_endpoints WHERE id = $1")
            .bind(endpoint)
            .fetch_one(db.pool())
            .await
            .unwrap();
    new_only
        .decrypt(
            &key_id,
            &sealed,
            &awx_onboard::crypto::associated_data("webhook_endpoints", endpoint, "secret"),
        )
        .expect("the webhook signing secret after rotate-key");
    let context: String = sqlx::query_scalar("SELECT context FROM mail_outbox WHERE kind = 'invitation'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let link = awx_onboard::mail::SealedLink::from_json(&context).unwrap();
    assert!(
        new_only.open_text(&link.sealed, &link.aad()).is_some(),
        "the invitation link after rotate-key"
    );
    // Every table that seals values names its key: none is left under the old one.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' \
         AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = 'key_id')",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert!(tables.len() >= 4, "{tables:?}");
    for table in &tables {
        let old: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE key_id <> $1"))
            .bind(new_only.current_key_id())
            .fetch_one(db.pool())
            .await
            .unwrap();
        let pending = if table == "oauth_states" { 0 } else { old };
        assert_eq!(pending, 0, "{table} still has values under a retired key");
    }
    db.close().await;

    // A lost device: the second factor removed on the server; the next log-in enrols.
    let (ok, text) = binary(
        &["create-operator", "--email", "ops@example.com", "--reset-second-factor"],
        &[("DATABASE_URL", url.as_str()), ("TOKEN_ENCRYPTION_KEY", KEY_B)],
        &dir,
    );
    assert!(ok && text.contains("removed"), "{text}");
    let db = awx_onboard::db::Database::connect(&url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM second_factors")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    // Whoever holds a session of theirs (the lost device) is signed out too.
    let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE account_id = $1")
        .bind(operator.id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(sessions, 0, "the operator's sessions ended");
    db.close().await;
    std::fs::remove_dir_all(dir).unwrap();
    app.stop().await;
}

async fn login_attempt(app: &TestApp, client: &str, password: &str) -> StatusCode {
    Browser::new(&app.base)
        .http
        .post(format!("{}/login", app.base))
        .header("origin", &app.base)
        .header("x-forwarded-for", client)
        .form(&[("email", "ana@example.com"), ("password", password)])
        .send()
        .await
        .unwrap()
        .status()
}

/// Log-ins from many addresses of one IPv6 /64 count as one client (20 failures in 15
/// minutes, across accounts), as the README says; another /64 is not affected.
#[tokio::test]
async fn one_ipv6_network_is_one_client_for_the_login_limits() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    app.browser().sign_up("ana@example.com").await;
    let attempt = |client: String, email: String| {
        let base = app.base.clone();
        async move {
            Browser::new(&base)
                .http
                .post(format!("{base}/login"))
                .header("origin", &base)
                .header("x-forwarded-for", client)
                .form(&[("email", email.as_str()), ("password", "wrong wrong wrong")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Twenty failures, each from another address of 2001:db8:7:7::/64 and another account.
    for i in 0..20 {
        let status = attempt(format!("2001:db8:7:7:{i:x}::1"), format!("nobody{i}@example.com")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    assert_eq!(
        attempt("2001:db8:7:7:ffff:1:2:3".into(), "someone@example.com".into()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the whole /64 is one client"
    );
    assert_eq!(
        attempt("2001:db8:7:8::1".into(), "someone@example.com".into()).await,
        StatusCode::UNAUTHORIZED,
        "the next /64 is another client"
    );
    app.stop().await;
}

/// Invented HTTP methods all count as `other`: the metrics' method labels stay the
/// standard ones (other tests in this process add routes and statuses, never methods).
#[tokio::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let client = reqwest::Client::new();
    let paths = [
        "/",
        "/login",
        "/healthz",
        "/api/operator/overview",
        "/connection",
        "/nowhere",
    ];
    for i in 0..500 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let path = paths[i % paths.len()];
        client
            .request(method, format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
    }
    let text = client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("awx_http_requests_total{method=\""))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let standard = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other",
    ];
    assert!(methods.iter().all(|m| standard.contains(m)), "{methods:?}");
    assert!(!text.contains("INVENTED"), "no invented method is a label");
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_throttling_and_metrics_see_the_real_client() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    app.browser().sign_up("ana@example.com").await;
    for _ in 0..5 {
        assert_eq!(
            login_attempt(&app, "198.51.100.1", "wrong wrong wrong").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_attempt(&app, "198.51.100.1", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Forging an earlier hop does not help: the proxy's own entry is the rightmost.
    assert_eq!(
        login_attempt(&app, "203.0.113.50, 198.51.100.1", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client of the same proxy is not affected.
    assert_eq!(
        login_attempt(&app, "198.51.100.2", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    // The same-host proxy does not make its visitors "loopback" for /metrics.
    let metrics = |forwarded: Option<&'static str>| {
        let mut request = reqwest::Client::new().get(format!("{}/metrics", app.base));
        if let Some(client) = forwarded {
            request = request.header("x-forwarded-for", client);
        }
        request.send()
    };
    assert_eq!(
        metrics(Some("203.0.113.5")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(metrics(None).await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.browser().sign_up("ana@example.com").await;
    for i in 0..5 {
        // A different forged address each time: all from 127.0.0.1 really.
        let forged = format!("198.51.100.{i}");
        assert_eq!(
            login_attempt(&app, &forged, "wrong wrong wrong").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_attempt(&app, "198.51.100.99", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(
        metrics.status(),
        StatusCode::OK,
        "the peer is loopback; the header is ignored"
    );
    app.stop().await;
}

#[tokio::test]
async fn behind_https_cookies_are_host_only_and_secure_with_hsts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public = format!("https://127.0.0.1:{port}");
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("LEPTOS_SITE_ADDR", &format!("127.0.0.1:{port}")),
            ("PUBLIC_URL", &public),
            ("AIRWALLEX_ENV", "sim"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    let response = Browser::new(&app.base)
        .http
        .post(format!("{}/signup", app.base))
        .header("origin", &public)
        .header("x-forwarded-proto", "https")
        .form(&[("email", "ana@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("__Host-awx_session=") && cookie.contains("Secure"),
        "{cookie}"
    );
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let home = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert!(home.headers().contains_key("strict-transport-security"));
    assert_eq!(
        app.services().authorization.settings().redirect_uri,
        format!("{public}/oauth/callback")
    );
    app.stop().await;
}

#[tokio::test]
async fn plain_http_gets_no_hsts() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let home = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert!(!home.headers().contains_key("strict-transport-security"));
    app.stop().await;
}

/// A site folder as a release build leaves it: files with gzip and brotli twins.
fn release_like_site() -> std::path::PathBuf {
    let site = temp_dir();
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    std::fs::write(site.join("pkg/awx-onboard.css"), "body { color: black }").unwrap();
    std::fs::write(site.join("pkg/awx-onboard.css.br"), "BROTLI-BYTES").unwrap();
    std::fs::write(site.join("pkg/awx-onboard.css.gz"), "GZIP-BYTES").unwrap();
    std::fs::write(site.join("favicon.ico"), "ICON").unwrap();
    std::fs::write(site.join("robots.txt"), "User-agent: *\n").unwrap();
    site
}

#[tokio::test]
async fn static_files_are_served_from_the_site_with_their_compressed_twins() {
    let site = release_like_site();
    let app = TestApp::spawn_with(Engine::Sqlite, &[("LEPTOS_SITE_ROOT", site.to_str().unwrap())]).await;
    let http = reqwest::Client::builder().no_brotli().no_gzip().build().unwrap();
    let get = |path: &str, encoding: Option<&str>| {
        let mut request = http.get(format!("{}{path}", app.base));
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        request.send()
    };
    let brotli = get("/pkg/awx-onboard.css", Some("br, gzip")).await.unwrap();
    assert_eq!(brotli.status(), StatusCode::OK);
    assert_eq!(brotli.headers()["content-encoding"], "br");
    assert_eq!(
        brotli.headers()["cache-control"],
        "no-cache",
        "unhashed names are revalidated"
    );
    let last_modified = brotli.headers()["last-modified"].to_str().unwrap().to_string();
    let first_headers = brotli.headers().clone();
    assert_eq!(brotli.text().await.unwrap(), "BROTLI-BYTES");
    // Repeats come from memory, the same answer to the byte.
    for _ in 0..3 {
        let again = get("/pkg/awx-onboard.css", Some("br, gzip")).await.unwrap();
        for name in [
            "content-encoding",
            "content-type",
            "cache-control",
            "last-modified",
            "content-length",
        ] {
            assert_eq!(again.headers().get(name), first_headers.get(name), "{name}");
        }
        assert_eq!(again.text().await.unwrap(), "BROTLI-BYTES");
    }
    let gzip = get("/pkg/awx-onboard.css", Some("gzip")).await.unwrap();
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    let plain = get("/pkg/awx-onboard.css", None).await.unwrap();
    assert_eq!(plain.text().await.unwrap(), "body { color: black }");
    let revalidated = http
        .get(format!("{}/pkg/awx-onboard.css", app.base))
        .header("if-modified-since", &last_modified)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    for (path, body) in [("/favicon.ico", "ICON"), ("/robots.txt", "User-agent: *\n")] {
        let file = get(path, None).await.unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert_eq!(file.text().await.unwrap(), body);
    }
    let missing = get("/pkg/nothing.js", None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    app.stop().await;
    std::fs::remove_dir_all(site).unwrap();
}

#[tokio::test]
async fn hashed_files_are_cached_for_a_year() {
    use tower::ServiceExt;
    let site = release_like_site();
    let app = TestApp::spawn(Engine::Sqlite).await;
    let router = awx_onboard_server::assets::routes(&site, true).with_state(app.state.clone());
    let response = router
        .oneshot(
            axum::http::Request::get("/pkg/awx-onboard.css")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    app.stop().await;
    std::fs::remove_dir_all(site).unwrap();
}

#[tokio::test]
async fn on_shutdown_readyz_fails_at_once_requests_finish_then_connections_are_refused() {
    let mut app = TestApp::spawn_with(
        Engine::Sqlite,
        &[("DRAIN_SECONDS", "2"), ("ACCOUNT_CACHE_SECONDS", "0")],
    )
    .await;
    let browser = app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    let base = app.base.clone();
    // A slow request is in flight when the signal comes (Airwallex answers after 3 s).
    let slow = app.slow_page_in_flight(&browser, "/connection", 3000).await;
    let signalled = Instant::now();
    app.begin_shutdown();
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    // The signal reaches the server task at once; its next /readyz answers 503.
    let ready = loop {
        let status = fresh().get(format!("{base}/readyz")).send().await.unwrap().status();
        if status == StatusCode::SERVICE_UNAVAILABLE || signalled.elapsed() > Duration::from_secs(1) {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "not ready at once");
    let home = fresh().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK, "still serving during the drain");
    // After the drain delay (2 s): no new connections.
    let refused_after = loop {
        if fresh().get(format!("{base}/")).send().await.is_err() {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "new connections still accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        refused_after >= Duration::from_secs(2),
        "served throughout the drain: refused after {refused_after:?}"
    );
    assert_eq!(slow.await.unwrap(), StatusCode::OK, "the request in flight finished");
    app.stop().await;
}

/// Gives the password and a TOTP code computed from `secret` at time step `step`.
async fn operator_log_in(browser: &Browser, secret: &[u8], step: i64) -> reqwest::Response {
    let password = browser.log_in_with("ops@example.com", PASSWORD).await;
    assert_eq!(password.headers()["location"], "/login/second-factor");
    let code = awx_onboard::accounts::second_factor::hotp(secret, step as u64);
    browser.post("/login/second-factor", &[("code", &code)]).await
}

/// After `rotate-key`, the retired key is dropped and the app restarted on the new key
/// alone: it still delivers webhooks signed with the endpoint's secret, refreshes tokens,
/// and verifies an operator's second factor.
#[tokio::test]
async fn after_rotate_key_the_old_key_can_go_and_everything_still_works() {
    use awx_onboard::platform::outbox::PlatformEvent;
    use awx_onboard_server::testing::receiver::WebhookReceiver;

    let app = TestApp::spawn_with(Engine::Sqlite, &[("TOKEN_ENCRYPTION_KEY", KEY_A)]).await;
    let (_, receiver) = WebhookReceiver::subscribed(app.services(), &[PlatformEvent::Disconnected]).await;
    app.connected_merchant("ana@example.com", HARBOUR_COFFEE).await;
    app.create_operator("ops@example.com").await;
    let ops = app.browser();
    ops.log_in_with("ops@example.com", PASSWORD).await;
    let page = ops.page("/login/second-factor").await;
    let secret = awx_onboard_server::testing::attribute(&page, "data-secret").unwrap();
    let secret = awx_onboard::accounts::second_factor::base32_decode(&secret).unwrap();
    let step = awx_onboard::time::Clock::system().now() / awx_onboard::accounts::second_factor::STEP_SECONDS;
    let code = awx_onboard::accounts::second_factor::hotp(&secret, step as u64);
    assert_eq!(
        ops.post("/login/second-factor", &[("code", &code)]).await.status(),
        StatusCode::SEE_OTHER
    );
    let (authorize, api) = (format!("{}/oauth/authorize", app.sim_url()), app.sim_url().to_string());

    // A restart: rotate while it is down, drop the old key, start on the new one alone.
    let db = app.stop_keeping_database().await;
    let dir = temp_dir();
    let (ok, text) = binary(
        &["rotate-key"],
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("TOKEN_ENCRYPTION_KEY", KEY_B),
            ("TOKEN_ENCRYPTION_RETIRED_KEYS", KEY_A),
        ],
        &dir,
    );
    assert!(ok && text.contains("retired keys can be dropped"), "{text}");
    let app = TestApp::spawn_on_database(
        db,
        &[
            ("TOKEN_ENCRYPTION_KEY", KEY_B),
            ("AIRWALLEX_AUTHORIZE_URL", &authorize),
            ("AIRWALLEX_API_URL", &api),
        ],
    )
    .await;

    // Verifies: the operator's second factor opens with the new key.
    let signed_in = operator_log_in(&app.browser(), &secret, step + 1).await;
    assert_eq!(
        signed_in.headers()["location"],
        "/operator",
        "the second factor verifies"
    );
    // Refreshes: an access token past its time is renewed with the stored refresh token.
    let merchant = app.merchant_id("ana@example.com").await;
    app.expire_access_token(merchant).await;
    let grant = app
        .services()
        .vault
        .access_token_for(merchant)
        .await
        .expect("a refreshed token");
    assert!(grant.expires_at > awx_onboard::time::Clock::system().now());
    // Delivers: the endpoint's signing secret opens, the receiver verifies the signature.
    let ana = app.logged_in("ana@example.com").await;
    ana.post("/connection/disconnect", &[("confirm", "yes")]).await;
    receiver
        .wait_for("a signed delivery after the rotation", Duration::from_secs(15), |r| {
            r.iter().any(|r| r.verified && r.answered == 204)
        })
        .await;
    std::fs::remove_dir_all(dir).unwrap();
    app.stop().await;
}
