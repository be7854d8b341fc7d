//! Page figures under load, measured against the real server (release build) on this
//! machine: `/connection` for a signed-in, connected merchant beside pages without
//! per-merchant data, at 64 concurrent connections; then `/connection` at a light load,
//! idle and while 50 logins run at once; and where a `/connection` view's time goes: its
//! one database read alone (the session store's load, which brings the account and the
//! connection), and CPU per request in this process (server and load generator) for the
//! home page, the view and the read. Prints figures; fails when a request fails.
//!
//! Run: `cargo bench -p awx-onboard-server --bench pages`.

use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr;
use std::time::Instant;

use awx_onboard::db::Engine;
use awx_onboard::sessions::DbSessionStore;
use awx_onboard_server::testing::bench::{self, cpu_seconds, load, show, Figures};
use awx_onboard_server::testing::{Browser, TestApp, HARBOUR_COFFEE, PASSWORD};
use tower_sessions::session::Id;
use tower_sessions::SessionStore;

// The same allocator as the `awx-onboard` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn run(engine: Engine) {
    // Steady state: account details come from the cache (as within any 60 s window).
    // Every simulated visitor comes from 127.0.0.1: lift the per-address sign-up limit.
    let server = TestApp::spawn_with(
        engine,
        &[
            ("ACCOUNT_CACHE_SECONDS", "600"),
            ("SIGN_UPS_PER_ADDRESS_PER_HOUR", "1000"),
        ],
    )
    .await;
    let base = server.base.clone();

    // A merchant, signed in and connected through the simulator.
    let browser = server.browser();
    let signup = browser
        .post("/signup", &[("email", "bench@example.com"), ("password", PASSWORD)])
        .await;
    let cookie = browser.session_cookie_after(&signup).await;
    browser.connect_airwallex(HARBOUR_COFFEE).await;
    let page = browser.page("/connection").await;
    assert!(page.contains("Harbour Coffee Roasters Pty Ltd"));

    // Others who will log in during the second part (each in a browser of its own: a
    // sign-up in the merchant's browser would replace the merchant's session).
    for i in 0..50 {
        Browser::new(&base).sign_up(&format!("login{i}@example.com")).await;
    }

    println!("{engine:?}:");
    let window = Duration::from_secs(5);
    let _ = load(
        &format!("{base}/connection"),
        &[("cookie", &cookie)],
        8,
        Duration::from_secs(1),
    )
    .await; // warm-up
    let cpu = cpu_seconds();
    let home = load(&format!("{base}/"), &[], 64, window).await;
    let home_cpu = cpu_micros_each(cpu, &home);
    show("/ (home page, no per-merchant data), 64 conn", &home);
    let file = load(&format!("{base}/favicon.ico"), &[], 64, window).await;
    show("/favicon.ico (static file), 64 conn", &file);
    let cpu = cpu_seconds();
    let connection = load(&format!("{base}/connection"), &[("cookie", &cookie)], 64, window).await;
    let connection_cpu = cpu_micros_each(cpu, &connection);
    show("/connection (signed in, connected), 64 conn", &connection);
    println!(
        "  /connection throughput = {:.0} % of the home page's, {:.0} % of the static file's",
        100.0 * connection.per_second / home.per_second,
        100.0 * connection.per_second / file.per_second
    );
    let (reads, read_cpu) = session_reads(&server, &cookie, 64, window).await;
    show("  its database read alone (session load), 64 tasks", &reads);
    println!(
        "  CPU per request in this process: home page {home_cpu:.0} µs, /connection {connection_cpu:.0} µs, \
         its database read alone {read_cpu:.0} µs"
    );

    let idle = load(&format!("{base}/connection"), &[("cookie", &cookie)], 4, window).await;
    show("/connection, 4 conn, idle", &idle);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins: Vec<_> = (0..50)
        .map(|i| {
            let (base, stop) = (base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut count = 0usize;
                let mut refused = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // The hashing queue is bounded: beyond it, log-ins are refused at once.
                    let response = Browser::new(&base)
                        .post(
                            "/login",
                            &[("email", &format!("login{i}@example.com")), ("password", PASSWORD)],
                        )
                        .await;
                    match response.status().as_u16() {
                        303 => count += 1,
                        503 | 429 => {
                            // As a browser's user would: try again a moment later.
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        other => panic!("unexpected {other} for a log-in"),
                    }
                }
                (count, refused)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = load(&format!("{base}/connection"), &[("cookie", &cookie)], 4, window).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut logged_in, mut refused) = (0, 0);
    for login in logins {
        let (done, busy) = login.await.unwrap();
        logged_in += done;
        refused += busy;
    }
    show("/connection, 4 conn, 50 logins at once", &busy);
    println!(
        "  p99 under logins = {:.1} x idle p99 ({} logins completed, {} refused at once by the bounded queue)",
        busy.p99.as_secs_f64() / idle.p99.as_secs_f64(),
        logged_in,
        refused
    );
    server.stop().await;
}

/// CPU microseconds this process spent per served request since `cpu_before`.
fn cpu_micros_each(cpu_before: f64, figures: &Figures) -> f64 {
    (cpu_seconds() - cpu_before) * 1e6 / figures.requests.max(1) as f64
}

/// The `/connection` view's one database read, alone: the session store loading the
/// merchant's session (with the account and the connection), from `tasks` tasks at once.
async fn session_reads(server: &TestApp, cookie: &str, tasks: usize, window: Duration) -> (Figures, f64) {
    let value = cookie.split_once('=').map(|(_, v)| v).unwrap_or(cookie);
    let id = Id::from_str(value.split(';').next().unwrap()).expect("a session id in the cookie");
    let store = DbSessionStore::new(server.services().db.clone(), server.services().clock.clone());
    let cpu = cpu_seconds();
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < window {
                    let begun = Instant::now();
                    let record = store.load(&id).await.expect("the session loads");
                    assert!(record.is_some(), "the merchant's session exists");
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let figures = Figures {
        requests: all.len(),
        per_second: all.len() as f64 / elapsed,
        p50: bench::quantile(&all, 0.50),
        p99: bench::quantile(&all, 0.99),
        errors: 0,
    };
    let cpu = cpu_micros_each(cpu, &figures);
    (figures, cpu)
}

fn main() {
    bench::main("pages", run);
}
