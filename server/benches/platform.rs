//! Platform API figures against the real server (release build) on this machine: access
//! tokens for one merchant at 64 concurrent connections (every read audited) beside
//! `/healthz`; connect sessions created for new and for known external ids beside
//! `/healthz`, and a link's landing page beside the home page; a merchant's balances
//! through the Airwallex proxy beside the same call straight to the simulator (and the CPU
//! per call); and how fast the outbox delivers 10,000 queued events to a local receiver.
//! Prints figures; fails when a request fails or a delivery is missing or unverified.
//!
//! Run: `cargo bench -p awx-onboard-server --bench platform`.

use std::time::{Duration, Instant};

use awx_onboard::db::Engine;
use awx_onboard::platform::keys::Scope;
use awx_onboard::platform::outbox::{self, PlatformEvent};
use awx_onboard_server::testing::bench::{self, load, load_each, load_with, show};
use awx_onboard_server::testing::receiver::WebhookReceiver;
use awx_onboard_server::testing::{TestApp, HARBOUR_COFFEE};

// The same allocator as the `awx-onboard` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: usize = 10_000;

async fn run(engine: Engine) {
    // The per-key limit is what is measured here only when it is out of the way.
    let app = TestApp::spawn_with(
        engine,
        &[
            ("PLATFORM_RATE_LIMIT_PER_SECOND", "1000000"),
            ("PLATFORM_RETURN_ORIGINS", "https://platform.example"),
            // What is measured is the proxy's own cost, not its limits.
            ("AIRWALLEX_PROXY_RATE_PER_SECOND", "100000"),
            ("AIRWALLEX_PROXY_CONCURRENCY", "10000"),
        ],
    )
    .await;
    let base = app.base.clone();
    app.connected_merchant("bench@example.com", HARBOUR_COFFEE).await;
    let merchant = app.merchant_id("bench@example.com").await;
    let (_, key) = app
        .services()
        .api_keys
        .create("bench", &Scope::ALL, "bench", None)
        .await
        .unwrap();
    let authorization = format!("Bearer {}", key.expose());
    let token_url = format!("{base}/api/platform/v1/merchants/{merchant}/access-token");

    println!("{engine:?}:");
    let window = Duration::from_secs(5);
    let headers = [("authorization", authorization.as_str())];
    let _ = load_with(hyper::Method::POST, &token_url, &headers, 8, Duration::from_secs(1)).await; // warm-up
    let health = load(&format!("{base}/healthz"), &[], 64, window).await;
    show("/healthz, 64 conn", &health);
    let tokens = load_with(hyper::Method::POST, &token_url, &headers, 64, window).await;
    show("POST …/access-token (audited), 64 conn", &tokens);
    println!(
        "  access-token throughput = {:.0} % of /healthz's",
        100.0 * tokens.per_second / health.per_second
    );

    // Connect sessions: a new external id each time (a merchant created too), and the same
    // known one; then the landing page of a link, beside the home page.
    let sessions_url = format!("{base}/api/platform/v1/connect-sessions");
    let json_headers = [
        ("authorization", authorization.as_str()),
        ("content-type", "application/json"),
    ];
    let new_ids = load_each(hyper::Method::POST, &sessions_url, &json_headers, 64, window, |n| {
        format!(
            r#"{{"external_id":"bench-new-{n}","email":"bench-new-{n}@example.com","return_url":"https://platform.example/back"}}"#
        )
        .into_bytes()
    })
    .await;
    show("POST /connect-sessions (new ids), 64 conn", &new_ids);
    let known = load_each(hyper::Method::POST, &sessions_url, &json_headers, 64, window, |_| {
        br#"{"external_id":"bench-known","email":"bench-known@example.com","return_url":"https://platform.example/back"}"#.to_vec()
    })
    .await;
    show("POST /connect-sessions (known id), 64 conn", &known);
    println!(
        "  session creation = {:.0} % (new ids), {:.0} % (known id) of /healthz's",
        100.0 * new_ids.per_second / health.per_second,
        100.0 * known.per_second / health.per_second
    );
    let link = app.connect_link("bench-landing", "https://platform.example/back").await;
    let home = load(&format!("{base}/"), &[], 64, window).await;
    show("GET / (home), 64 conn", &home);
    let landing = load(link.url.expose(), &[], 64, window).await;
    show("GET /connect-link/… (landing), 64 conn", &landing);
    println!(
        "  landing page = {:.0} % of the home page's",
        100.0 * landing.per_second / home.per_second
    );

    // The proxy: a merchant's balances through awx-onboard beside the same call made
    // straight to the simulator, and the CPU each costs this process (server, simulator and
    // load generator all run in it: the difference is the proxy's own work).
    let token = app
        .services()
        .vault
        .access_token_for(merchant)
        .await
        .unwrap()
        .token
        .expose()
        .to_string();
    let direct_auth = format!("Bearer {token}");
    let direct_url = format!("{}/api/v1/balances/current", app.sim_url());
    let proxy_url = format!("{base}/api/platform/v1/merchants/{merchant}/airwallex/api/v1/balances/current");
    let _ = load(&proxy_url, &headers, 8, Duration::from_secs(1)).await; // warm-up
    let cpu = bench::cpu_seconds();
    let direct = load(&direct_url, &[("authorization", direct_auth.as_str())], 64, window).await;
    let direct_cpu = (bench::cpu_seconds() - cpu) / direct.requests.max(1) as f64;
    show("GET balances straight to the simulator, 64 conn", &direct);
    let cpu = bench::cpu_seconds();
    let proxied = load(&proxy_url, &headers, 64, window).await;
    let proxied_cpu = (bench::cpu_seconds() - cpu) / proxied.requests.max(1) as f64;
    show("GET balances through the proxy, 64 conn", &proxied);
    println!(
        "  proxy throughput = {:.0} % of the direct call's; p99 {:+.1} ms; CPU per call {:.0} µs direct, {:.0} µs \
         proxied ({:.0} µs the proxy's own)",
        100.0 * proxied.per_second / direct.per_second,
        (proxied.p99.as_secs_f64() - direct.p99.as_secs_f64()) * 1000.0,
        direct_cpu * 1e6,
        proxied_cpu * 1e6,
        (proxied_cpu - direct_cpu) * 1e6
    );
    app.services().proxy_calls.flush().await.unwrap();

    // 10,000 events queued in one transaction, then delivered (signed, one POST each).
    let (_, receiver) = WebhookReceiver::subscribed(app.services(), &PlatformEvent::ALL).await;
    let connection: i64 = sqlx::query_scalar("SELECT id FROM connections WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(app.services().db.pool())
        .await
        .unwrap();
    let already = receiver.accepted().len();
    let mut tx = app.services().db.begin().await.unwrap();
    let now = app.services().clock.now();
    for _ in 0..EVENTS {
        outbox::enqueue(&mut tx, PlatformEvent::Recovered, connection, now)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let started = Instant::now();
    loop {
        let received = receiver.accepted();
        if received.len() >= already + EVENTS {
            let verified = received.iter().filter(|r| r.verified).count();
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "  {EVENTS} queued events delivered in {elapsed:.2} s = {:.0} events/s ({verified} of {} signatures verified)",
                EVENTS as f64 / elapsed,
                received.len()
            );
            assert_eq!(verified, received.len(), "every delivery's signature verifies");
            assert_eq!(received.len(), already + EVENTS, "each event delivered once");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {} of {EVENTS} events delivered in 300 s",
            received.len() - already
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

fn main() {
    bench::main("platform", run);
}
