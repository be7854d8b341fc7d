//! Page figures under load, measured against the real server (release build) on this
//! machine: `/connection` for a signed-in, connected merchant beside pages without
//! per-merchant data, at 64 concurrent connections; then `/connection` at a light load,
//! idle and while 50 logins run at once. Prints figures; asserts nothing.
//!
//! Run: `cargo bench -p awx-onboard-server --bench pages`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use awx_onboard::db::Engine;
use awx_onboard_server::testing::TestServer;

// The same allocator as the `awx-onboard` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &str = "correct horse battery staple";

struct Figures {
    requests: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()
        .unwrap()
}

/// `connections` workers, each with its own client (own TCP connection), for `duration`.
async fn load(url: &str, cookie: Option<&str>, connections: usize, duration: Duration) -> Figures {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let url = url.to_string();
            let cookie = cookie.map(str::to_string);
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < deadline {
                    let mut request = http.get(&url);
                    if let Some(cookie) = &cookie {
                        request = request.header("cookie", cookie);
                    }
                    let sent = Instant::now();
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            latencies.push(sent.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, failed) = worker.await.unwrap();
        all.extend(latencies);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        requests: all.len(),
        per_second: all.len() as f64 / elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        errors,
    }
}

fn show(label: &str, f: &Figures) {
    println!(
        "  {label:<44} {:>7.0} req/s  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} requests, {} errors)",
        f.per_second,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0,
        f.requests,
        f.errors
    );
}

async fn run(engine: Engine) {
    // Steady state: account details come from the cache (as within any 60 s window).
    let server = TestServer::start_with(engine, &[("ACCOUNT_CACHE_SECONDS", "600")]).await;
    let base = server.base.clone();

    // A merchant, signed in and connected through the simulator.
    let browser = client();
    let post = |path: &str, form: Vec<(String, String)>| {
        browser
            .post(format!("{base}{path}"))
            .header("origin", &base)
            .form(&form)
            .send()
    };
    let signup = post(
        "/signup",
        vec![
            ("email".into(), "bench@example.com".into()),
            ("password".into(), PASSWORD.into()),
        ],
    )
    .await
    .unwrap();
    let cookie = signup.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let start = post("/oauth/start", vec![("mode".into(), "existing".into())])
        .await
        .unwrap();
    let authorize = start.headers()["location"].to_str().unwrap().to_string();
    let mut form: Vec<(String, String)> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    form.push(("decision".into(), "authorize".into()));
    form.push(("account".into(), "acct_hX2kq9TfRz3Lw8VbN4aP1c".into()));
    let consent = browser
        .post(authorize.split('?').next().unwrap())
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = consent.headers()["location"].to_str().unwrap().to_string();
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.headers()["location"], "/connection?notice=connected");
    let page = browser
        .get(format!("{base}/connection"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Harbour Coffee Roasters Pty Ltd"));

    // Others who will log in during the second part (each in a browser of its own: a
    // sign-up in the merchant's browser would replace the merchant's session).
    for i in 0..50 {
        client()
            .post(format!("{base}/signup"))
            .header("origin", &base)
            .form(&[
                ("email", format!("login{i}@example.com")),
                ("password", PASSWORD.to_string()),
            ])
            .send()
            .await
            .unwrap();
    }

    println!("{engine:?}:");
    let window = Duration::from_secs(5);
    let _ = load(&format!("{base}/connection"), Some(&cookie), 8, Duration::from_secs(1)).await; // warm-up
    let home = load(&format!("{base}/"), None, 64, window).await;
    show("/ (home page, no per-merchant data), 64 conn", &home);
    let file = load(&format!("{base}/favicon.ico"), None, 64, window).await;
    show("/favicon.ico (static file), 64 conn", &file);
    let connection = load(&format!("{base}/connection"), Some(&cookie), 64, window).await;
    show("/connection (signed in, connected), 64 conn", &connection);
    println!(
        "  /connection throughput = {:.0} % of the home page's, {:.0} % of the static file's",
        100.0 * connection.per_second / home.per_second,
        100.0 * connection.per_second / file.per_second
    );

    let idle = load(&format!("{base}/connection"), Some(&cookie), 4, window).await;
    show("/connection, 4 conn, idle", &idle);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins: Vec<_> = (0..50)
        .map(|i| {
            let (base, stop) = (base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut count = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let response = client()
                        .post(format!("{base}/login"))
                        .header("origin", &base)
                        .form(&[
                            ("email", format!("login{i}@example.com")),
                            ("password", PASSWORD.to_string()),
                        ])
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 303);
                    count += 1;
                }
                count
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = load(&format!("{base}/connection"), Some(&cookie), 4, window).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut logged_in = 0;
    for login in logins {
        logged_in += login.await.unwrap();
    }
    show("/connection, 4 conn, 50 logins at once", &busy);
    println!(
        "  p99 under logins = {:.1} x idle p99 ({} logins completed)",
        busy.p99.as_secs_f64() / idle.p99.as_secs_f64(),
        logged_in
    );
    server.stop().await;
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("pages bench: run with `cargo bench -p awx-onboard-server --bench pages`");
        return;
    }
    // The site (stylesheet, icon) as `cargo leptos build` leaves it in the workspace.
    let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
    std::env::set_var("LEPTOS_SITE_ROOT", &site);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        run(Engine::Sqlite).await;
        run(Engine::Postgres).await;
    });
}
