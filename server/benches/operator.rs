//! Operator dashboard figures with 100,000 merchants (with connections) and 1,000,000
//! events, on SQLite and PostgreSQL: p95 of the first page, a filtered page, a search and
//! a deep keyset page (full server-rendered pages over HTTP, with the trend charts), p95 of
//! the status counts and of the trends,
//! the query plans, and this process's peak memory (server and load generator together).
//!
//! Run: `cargo bench -p awx-onboard-server --bench operator`.

use std::future::Future;
use std::time::Instant;

use awx_onboard::db::Engine;
use awx_onboard::operator::{ListQuery, StatusFilter};
use awx_onboard_server::testing::bench::{self, p95_ms as p95, peak_memory_mb};
use awx_onboard_server::testing::TestApp;

const MERCHANTS: i64 = 100_000;
const EVENTS: i64 = 1_000_000;

fn seed_sql(engine: Engine) -> Vec<String> {
    let series = |n: i64| match engine {
        Engine::Sqlite => format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {n}) SELECT n FROM seq"
        ),
        Engine::Postgres => format!("SELECT generate_series(1, {n}) AS n"),
    };
    let now = awx_onboard::time::real_now();
    vec![
        format!(
            "INSERT INTO merchants (email, password_hash, role, created_at) \
             SELECT 'merchant' || n || '@example.com', 'x', 'merchant', {now} FROM ({}) s",
            series(MERCHANTS)
        ),
        // 90 % connected, 7 % need reconnection (three reasons), 3 % disconnected.
        format!(
            "INSERT INTO connections (merchant_id, status, status_reason, account_id, business_name, refresh_expires_at, \
             access_expires_at, connected_at, last_refresh_at, last_refresh_result, last_activity_at, created_at, updated_at) \
             SELECT n, \
               CASE WHEN n % 100 < 90 THEN 'connected' WHEN n % 100 < 97 THEN 'needs_reconnect' ELSE 'disconnected' END, \
               CASE WHEN n % 100 >= 90 AND n % 100 < 97 THEN (CASE n % 3 WHEN 0 THEN 'revoked' WHEN 1 THEN 'refresh_rejected' ELSE 'refresh_expired' END) END, \
               'acct_' || n, 'Business number ' || n, \
               CASE WHEN n % 100 < 90 THEN {now} + (n * 51) % 5184000 END, \
               {now} + 300, {now} - 86400, {now} - (n % 86400), 'ok', {now} - (n * 7) % 8640000, {now}, {now} \
             FROM ({}) s",
            series(MERCHANTS)
        ),
        // The log: every connection's connection 6 to 35 days ago, then its reconnection
        // need or disconnection within the last 5 days, and refreshes (one in ten failing
        // for now) over the last 52 days, 1,000,000 events in all.
        format!(
            "INSERT INTO connection_events (connection_id, kind, reason, actor, created_at) \
             SELECT n, 'connected', NULL, 'merchant', {now} - 3000000 + (n * 23) % 2500000 FROM ({}) s",
            series(MERCHANTS)
        ),
        format!(
            "INSERT INTO connection_events (connection_id, kind, reason, actor, created_at) \
             SELECT n, CASE WHEN n % 100 >= 97 THEN 'disconnected' WHEN n % 3 = 0 THEN 'revoked' ELSE 'needs_reconnect' END, \
               NULL, 'bench', {now} - (n * 7) % 400000 FROM ({}) s WHERE n % 100 >= 90",
            series(MERCHANTS)
        ),
        format!(
            "INSERT INTO connection_events (connection_id, kind, reason, actor, created_at) \
             SELECT (n % {MERCHANTS}) + 1, CASE WHEN n % 10 = 0 THEN 'refresh_failed' ELSE 'refreshed' END, NULL, 'keeper:bench', {now} - n * 5 \
             FROM ({}) s",
            series(EVENTS - MERCHANTS - MERCHANTS / 10)
        ),
    ]
}

async fn plans(db: &awx_onboard::db::Database, engine: Engine) {
    let queries = [
        ("first page", "SELECT c.id FROM connections c JOIN merchants m ON m.id = c.merchant_id ORDER BY COALESCE(c.refresh_expires_at, 9000000000000000000) ASC, c.id ASC LIMIT 51"),
        ("filtered", "SELECT c.id FROM connections c JOIN merchants m ON m.id = c.merchant_id WHERE c.status = 'needs_reconnect' ORDER BY COALESCE(c.refresh_expires_at, 9000000000000000000) ASC, c.id ASC LIMIT 51"),
        ("deep page", "SELECT c.id FROM connections c JOIN merchants m ON m.id = c.merchant_id WHERE COALESCE(c.refresh_expires_at, 9000000000000000000) >= 1800000000 AND (COALESCE(c.refresh_expires_at, 9000000000000000000) > 1800000000 OR c.id > 50000) ORDER BY COALESCE(c.refresh_expires_at, 9000000000000000000) ASC, c.id ASC LIMIT 51"),
        ("counts", "SELECT status, reason, SUM(n) FROM connection_status_counts GROUP BY status, reason"),
    ];
    for (label, sql) in queries {
        let plan: Vec<String> = match engine {
            Engine::Sqlite => sqlx::query_as::<_, (i64, i64, i64, String)>(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(db.pool())
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.3)
                .collect(),
            Engine::Postgres => sqlx::query_as::<_, (String,)>(&format!("EXPLAIN {sql}"))
                .fetch_all(db.pool())
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.0.trim().to_string())
                .filter(|l| l.contains("Index") || l.contains("Scan") || l.contains("Sort"))
                .collect(),
        };
        println!("  plan, {label}: {}", plan.join(" | "));
    }
}

/// p95 in milliseconds of `rounds` runs of `work`, one after another.
async fn p95_of<Fut: Future<Output = ()>>(rounds: usize, work: impl Fn() -> Fut) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let sent = Instant::now();
        work().await;
        samples.push(sent.elapsed());
    }
    p95(samples)
}

async fn run(engine: Engine) {
    let server = TestApp::spawn(engine).await;
    let base = server.base.clone();
    let services = server.services().clone();
    let started = Instant::now();
    for sql in seed_sql(engine) {
        sqlx::query(&sql).execute(services.db.pool()).await.unwrap();
    }
    // Steady state: statistics gathered (and on PostgreSQL the visibility map set, as
    // autovacuum would), so the planner can use index-only scans.
    let analyze = if engine == Engine::Postgres {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    };
    sqlx::query(analyze).execute(services.db.pool()).await.unwrap();
    println!(
        "{engine:?}: seeded {MERCHANTS} merchants and {EVENTS} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    plans(&services.db, engine).await;

    server.create_operator("ops@example.com").await;
    let operator = server.logged_in("ops@example.com").await;
    let client = operator.http.clone();

    // A cursor deep in the list: page 1,000 (row 50,000).
    let mut deep = ListQuery::default();
    let middle: (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(refresh_expires_at, 9000000000000000000), id FROM connections \
         ORDER BY COALESCE(refresh_expires_at, 9000000000000000000), id LIMIT 1 OFFSET 50000",
    )
    .fetch_one(services.db.pool())
    .await
    .unwrap();
    deep.after = Some(awx_onboard::operator::Cursor {
        key: middle.0,
        id: middle.1,
    });
    let deep_after = deep.after.unwrap().encode();

    // The trends right after a deployment: 29 past days replayed from the log and rolled
    // up (once), then every page reads the rollups.
    let first = Instant::now();
    let trends = services.trends.load().await.unwrap();
    println!(
        "  trends, first load (replay + rollup): {:.0} ms; today {} connected, {} need reconnection",
        first.elapsed().as_secs_f64() * 1000.0,
        trends.status_days[29].connected,
        trends.status_days[29].needs_reconnect
    );
    let trend_service = &services.trends;
    let loads = p95_of(40, || async move {
        trend_service.load().await.unwrap();
    })
    .await;
    println!("  {:<32} p95 {:>6.1} ms", "trends alone", loads);
    let forecasts = p95_of(10, || async move {
        trend_service.count_forecast().await.unwrap();
    })
    .await;
    println!(
        "  {:<32} p95 {:>6.1} ms (once a minute at most, in the background)",
        "expiry forecast count", forecasts
    );

    let pages = [
        ("first page", "/operator".to_string()),
        (
            "filtered (needs reconnection)",
            "/operator?status=needs_reconnect".to_string(),
        ),
        (
            "search (exact email)",
            "/operator?q=merchant4242%40example.com".to_string(),
        ),
        ("search (email substring)", "/operator?q=merchant4242%40".to_string()),
        ("search (business name part)", "/operator?q=number%2099999".to_string()),
        ("search (account id)", "/operator?q=acct_77777".to_string()),
        ("deep keyset page (row 50,000)", format!("/operator?after={deep_after}")),
        ("last activity sort", "/operator?sort=activity".to_string()),
    ];
    for (label, path) in &pages {
        let mut samples = Vec::new();
        for i in 0..40 {
            let sent = Instant::now();
            let response = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body = response.text().await.unwrap();
            if i == 0 {
                assert!(body.contains("merchant"), "{path} shows merchants");
                assert!(body.contains("data-chart=\"trend-status\""), "{path} has the charts");
            }
            samples.push(sent.elapsed());
        }
        println!(
            "  {label:<32} p95 {:>6.1} ms (whole page, with counts and charts)",
            p95(samples)
        );
    }
    let desk = &services.operator;
    let counts = p95_of(40, || async move {
        desk.status_counts().await.unwrap();
    })
    .await;
    println!("  {:<32} p95 {:>6.1} ms", "status counts alone", counts);
    let connected = &ListQuery {
        status: Some(StatusFilter::Connected),
        ..ListQuery::default()
    };
    let lists = p95_of(40, || async move {
        desk.list_connections(connected).await.unwrap();
    })
    .await;
    println!("  {:<32} p95 {:>6.1} ms", "filtered list query alone", lists);
    println!("  peak memory of this process so far: {:.0} MB", peak_memory_mb());
    server.stop().await;
}

fn main() {
    bench::main("operator", run);
}
