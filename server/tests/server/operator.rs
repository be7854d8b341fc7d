//! Operators: the create-operator command, role checks on every operator route and
//! server function, the dashboard's filters, search, sort and paging, the actions, metrics.

use std::io::Write;
use std::process::{Command, Stdio};

use awx_onboard::db::Engine;
use awx_onboard::operator::{ListQuery, SortOrder, StatusFilter};
use awx_onboard::store::EventKind;
use awx_onboard::testing::{insert_merchant, TestDatabase};
use awx_onboard_server::testing::{assert_to_log_in, eventually, Browser, TestApp, MAPLE_FINCH, PASSWORD};
use reqwest::StatusCode;

fn create_operator(db_url: &str, email: &str, password: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_awx-onboard"))
        .args(["create-operator", "--email", email])
        .env("DATABASE_URL", db_url)
        .env(
            "TOKEN_ENCRYPTION_KEY_FILE",
            std::env::temp_dir().join("awx-op-test.key"),
        )
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A merchant connected through the embedded simulator; returns the connection id.
async fn connected_merchant(app: &TestApp, email: &str) -> i64 {
    app.connected_merchant(email, MAPLE_FINCH).await;
    app.connection_id(email).await
}

/// An operator, logged in in a browser of their own.
async fn operator_browser(app: &TestApp) -> Browser {
    app.create_operator("ops@example.com").await;
    let operator = app.logged_in("ops@example.com").await;
    operator
}

#[tokio::test]
async fn create_operator_refuses_weak_passwords_and_existing_emails() {
    let db = TestDatabase::sqlite();
    let (ok, text) = create_operator(&db.url, "ops@example.com", "password1234");
    assert!(!ok && text.contains("too common"), "{text}");
    let (ok, text) = create_operator(&db.url, "ops@example.com", PASSWORD);
    assert!(ok, "{text}");
    assert!(text.contains("operator ops@example.com created"));
    let (ok, text) = create_operator(&db.url, "OPS@example.com", PASSWORD);
    assert!(!ok && text.contains("already exists"), "{text}");
    let (ok, text) = create_operator(&db.url, "not-an-email", PASSWORD);
    assert!(!ok && text.contains("valid email"), "{text}");
    db.remove().await;
}

#[tokio::test]
async fn every_operator_route_checks_the_role_on_the_server() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let connection = connected_merchant(&app, "shop@example.com").await;
    let (ok, text) = create_operator(&app.db.url, "ops@example.com", PASSWORD);
    assert!(ok, "{text}");

    let anonymous = app.browser();
    let merchant = app.logged_in("shop@example.com").await;
    let operator = app.logged_in("ops@example.com").await;
    let pages = [
        "/operator".to_string(),
        format!("/operator/connections/{connection}"),
        "/operator/team".into(),
    ];
    let other = app.create_operator("other@example.com").await.id;
    let actions = [
        format!("/operator/connections/{connection}/refresh"),
        format!("/operator/connections/{connection}/check"),
        format!("/operator/team/{other}/log-out-everywhere"),
    ];
    let server_fns = [
        "/api/operator/overview",
        "/api/operator/connection",
        "/api/operator/team",
    ];

    for page in &pages {
        assert_to_log_in(&anonymous.get(page).await, page);
        let response = merchant.get(page).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{page}");
        let response = operator.get(page).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
    }
    for action in &actions {
        assert_eq!(
            anonymous.post(action, &[]).await.status(),
            StatusCode::SEE_OTHER,
            "{action}"
        );
        assert_eq!(
            merchant.post(action, &[]).await.status(),
            StatusCode::FORBIDDEN,
            "{action}"
        );
        assert_eq!(
            operator.post(action, &[]).await.status(),
            StatusCode::SEE_OTHER,
            "{action}"
        );
    }
    for server_fn in server_fns {
        let args = [("id", connection.to_string())];
        let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(
            anonymous.post(server_fn, &args).await.status(),
            StatusCode::SEE_OTHER,
            "{server_fn}"
        );
        assert_eq!(
            merchant.post(server_fn, &args).await.status(),
            StatusCode::FORBIDDEN,
            "{server_fn}"
        );
        let answer = operator.post(server_fn, &args).await;
        assert_eq!(answer.status(), StatusCode::OK, "{server_fn}");
        let body = answer.text().await.unwrap();
        assert!(
            !body.contains("awx_at_") && !body.contains("awx_rt_"),
            "no token in operator data"
        );
    }
    // The merchant's own pages are untouched by any of this.
    assert_eq!(merchant.get("/connection").await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn operator_actions_are_logged_with_the_operator() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let connection = connected_merchant(&app, "shop@example.com").await;
    let operator = operator_browser(&app).await;
    let refreshed = operator
        .post(&format!("/operator/connections/{connection}/refresh"), &[])
        .await;
    assert_eq!(
        refreshed.headers()["location"],
        format!("/operator/connections/{connection}?notice=refreshed")
    );
    let checked = operator
        .post(&format!("/operator/connections/{connection}/check"), &[])
        .await;
    assert_eq!(checked.status(), StatusCode::SEE_OTHER);
    let events = app.services().store().events(connection, None, 10).await.unwrap();
    assert_eq!(events[0].kind, EventKind::Checked);
    assert_eq!(events[0].reason.as_deref(), Some("ok"));
    assert_eq!(events[0].actor, "operator:ops@example.com");
    assert_eq!(events[1].kind, EventKind::Refreshed);
    assert_eq!(events[1].actor, "operator:ops@example.com");
    let page = operator.page(&format!("/operator/connections/{connection}")).await;
    assert!(page.contains("operator:ops@example.com"));
    assert!(page.contains("Maple &amp; Finch &lt;Trading&gt; Ltd"), "escaped");

    // After a revocation, "Check with Airwallex" finds out and says so.
    assert_eq!(app.sim().revoke_account(MAPLE_FINCH), 1);
    eventually("the webhook arrives", std::time::Duration::from_secs(5), || async {
        let status = app.connection_status("shop@example.com").await;
        (status != Some(awx_onboard::store::ConnectionStatus::Connected)).then_some(())
    })
    .await;
    operator
        .post(&format!("/operator/connections/{connection}/check"), &[])
        .await;
    let events = app.services().store().events(connection, None, 10).await.unwrap();
    assert_eq!(events[0].kind, EventKind::Checked);
    assert_eq!(
        events[0].reason.as_deref(),
        Some("not_connected"),
        "the webhook got there first"
    );
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_served_to_loopback_in_prometheus_format() {
    /// A series' value in a scrape (0 when it is not there yet).
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }
    let app = TestApp::spawn(Engine::Sqlite).await;
    let scrape = || async {
        let response = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    // The counters are the process's (other tests count too): only their growth is ours.
    const FAILURES: &str = "awx_login_failures_total{reason=\"invalid_credentials\"}";
    const SIGN_UPS: &str = "awx_http_requests_total{method=\"POST\",route=\"/signup\",status=\"303\"}";
    let before = scrape().await;
    connected_merchant(&app, "shop@example.com").await;
    app.browser().log_in_with("shop@example.com", "wrong wrong wrong").await;
    let after = scrape().await;
    assert!(value(&after, FAILURES) >= value(&before, FAILURES) + 1.0, "{after}");
    assert!(value(&after, SIGN_UPS) >= value(&before, SIGN_UPS) + 1.0, "{after}");
    // The gauges are this app's database's.
    assert_eq!(value(&before, "awx_connections{status=\"connected\"}"), 0.0, "{before}");
    assert_eq!(value(&after, "awx_connections{status=\"connected\"}"), 1.0, "{after}");
    for needle in ["awx_keeper_backlog", "awx_refresh_duration_seconds_bucket"] {
        assert!(after.contains(needle), "missing {needle} in\n{after}");
    }
    app.stop().await;
}

/// The emails on the dashboard's first page for `query`.
async fn listed(app: &TestApp, query: ListQuery) -> Vec<String> {
    let page = app.services().operator.list_connections(&query).await.unwrap();
    page.lines.into_iter().map(|line| line.email).collect()
}

/// The dashboard's view of one status.
fn with_status(status: StatusFilter) -> ListQuery {
    ListQuery {
        status: Some(status),
        ..ListQuery::default()
    }
}

/// The dashboard's search for `term`.
fn searching(term: &str) -> ListQuery {
    ListQuery {
        search: Some(term.into()),
        ..ListQuery::default()
    }
}

async fn dashboard_lists_filters_searches_sorts_and_pages(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let db = app.services().db.pool();
    let now = app.services().clock.now();
    // 120 connected merchants, refresh tokens expiring one day apart; 5 needing reconnection;
    // 3 never connected.
    for i in 0..128i64 {
        let id = insert_merchant(&app.services().db, &format!("m{i:03}@example.com")).await;
        if i >= 125 {
            continue;
        }
        let (status, reason, expires) = if i < 120 {
            ("connected", None, Some(now + (i + 1) * 86_400))
        } else {
            ("needs_reconnect", Some("revoked"), None)
        };
        sqlx::query(
            "INSERT INTO connections (merchant_id, status, status_reason, business_name, account_id, refresh_expires_at, \
             last_activity_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0)",
        )
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(format!("Business {i:03}"))
        .bind(format!("acct_{i:03}"))
        .bind(expires)
        .bind(now - i)
        .execute(db)
        .await
        .unwrap();
    }
    let services = &app.services().operator;
    let counts = services.status_counts().await.unwrap();
    assert_eq!(counts.connected, 120);
    assert_eq!(counts.needs_reconnect, vec![("revoked".to_string(), 5)]);
    assert_eq!(counts.not_connected, 3);

    // Soonest expiry first, 50 a page, no gaps or repeats across pages, tokenless last.
    let mut seen = Vec::new();
    let mut query = ListQuery::default();
    loop {
        let page = services.list_connections(&query).await.unwrap();
        assert!(page.lines.len() <= 50);
        seen.extend(page.lines.iter().map(|l| l.email.clone()));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 125);
    assert_eq!(seen[0], "m000@example.com");
    assert_eq!(seen[119], "m119@example.com");
    assert!(seen[120..].iter().all(|e| e.as_str() >= "m120"));

    let activity = listed(
        &app,
        ListQuery {
            sort: SortOrder::Activity,
            ..ListQuery::default()
        },
    )
    .await;
    assert_eq!(activity[0], "m000@example.com");
    assert_eq!(activity[1], "m001@example.com");

    assert_eq!(listed(&app, with_status(StatusFilter::NeedsReconnect)).await.len(), 5);
    assert_eq!(
        listed(&app, with_status(StatusFilter::NotConnected)).await,
        ["m127@example.com", "m126@example.com", "m125@example.com"]
    );

    for (term, expected) in [
        ("m042@", "m042@example.com"),
        ("BUSINESS 043", "m043@example.com"),
        ("acct_044", "m044@example.com"),
    ] {
        let found = listed(&app, searching(term)).await;
        assert_eq!(found.len(), 1, "{term}");
        assert_eq!(found[0], expected);
    }
    assert!(
        listed(&app, searching("%")).await.is_empty(),
        "wildcards are searched literally"
    );
    // Query syntax in a term is text (SQLite's full-text index reads a quoted phrase).
    for term in ["Business 04\" OR \"m1", "\"\"\"", "NEAR(business)", "busi*"] {
        assert!(listed(&app, searching(term)).await.is_empty(), "{term}");
    }
    // A renamed business is found by its new name only.
    sqlx::query("UPDATE connections SET business_name = 'Zebra Crossing Ltd' WHERE account_id = 'acct_044'")
        .execute(app.services().db.pool())
        .await
        .unwrap();
    for (term, hits) in [("zebra cross", 1), ("Business 044", 0)] {
        assert_eq!(listed(&app, searching(term)).await.len(), hits, "{term}");
    }

    // The same through the page, with the view in the URL.
    let operator = operator_browser(&app).await;
    let html = operator.page("/operator?status=needs_reconnect&q=business%2012").await;
    assert!(html.contains("m120@example.com") && html.contains("m124@example.com"));
    assert!(!html.contains("m119@example.com"));
    let first = operator.page("/operator").await;
    assert!(first.contains("rel=\"next\""));
    assert!(
        first.contains("class=\"soon\""),
        "expiring within 7 days is highlighted"
    );
    app.stop().await;
}

awx_onboard::both_engines!(dashboard_lists_filters_searches_sorts_and_pages);
