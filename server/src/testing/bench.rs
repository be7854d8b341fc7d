//! What the bench binaries share: the entry point (both engines, the built site), an HTTP
//! load generator and latency figures. Benches print figures, and fail rather than print
//! one when the work they measured went wrong (an error answer, nothing served).

use std::future::Future;
use std::time::{Duration, Instant};

use awx_onboard::db::Engine;

/// Runs `run` on SQLite, then on PostgreSQL, when started by `cargo bench`.
pub fn main<F, Fut>(name: &str, run: F)
where
    F: Fn(Engine) -> Fut,
    Fut: Future<Output = ()>,
{
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name} bench: run with `cargo bench -p awx-onboard-server --bench {name}`");
        return;
    }
    // The site (stylesheet, icon) as `cargo leptos build` leaves it in the workspace.
    if std::env::var_os("LEPTOS_SITE_ROOT").is_none() {
        let site = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
        std::env::set_var("LEPTOS_SITE_ROOT", &site);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // `BENCH_ENGINE=sqlite` or `postgres` runs one engine alone (for a profile of it).
    let only = std::env::var("BENCH_ENGINE").ok();
    runtime.block_on(async {
        for (name, engine) in [("sqlite", Engine::Sqlite), ("postgres", Engine::Postgres)] {
            if only.as_deref().is_none_or(|only| only == name) {
                run(engine).await;
            }
        }
    });
}

/// Latencies of one load run.
pub struct Figures {
    pub requests: usize,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: usize,
}

/// The `q` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// p95 of some samples, in milliseconds.
pub fn p95_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    quantile(&samples, 0.95).as_secs_f64() * 1000.0
}

/// `connections` workers, each with its own TCP connection (kept alive), send `GET url`
/// (with `headers`) for `duration`; only 2xx answers count as served. A bare HTTP/1.1
/// client with the request built once, so that the server is what is measured: the load
/// runs on the same two cores.
pub async fn load(url: &str, headers: &[(&str, &str)], connections: usize, duration: Duration) -> Figures {
    load_with(hyper::Method::GET, url, headers, connections, duration).await
}

/// [`load`] with another method (an empty body).
pub async fn load_with(
    method: hyper::Method,
    url: &str,
    headers: &[(&str, &str)],
    connections: usize,
    duration: Duration,
) -> Figures {
    load_each(method, url, headers, connections, duration, |_| Vec::new()).await
}

/// [`load_with`] with a body per request: `body(n)` for the `n`th request of all workers
/// (so each may differ, e.g. a new id every time).
pub async fn load_each(
    method: hyper::Method,
    url: &str,
    headers: &[(&str, &str)],
    connections: usize,
    duration: Duration,
    body: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
) -> Figures {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;

    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let uri: hyper::Uri = url.parse().expect("a URL");
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let body = std::sync::Arc::new(body);
    let sequence = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (uri, headers, method) = (uri.clone(), headers.clone(), method.clone());
            let (body, sequence) = (body.clone(), sequence.clone());
            tokio::spawn(async move {
                let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_max_idle_per_host(1)
                    .build_http::<Full<Bytes>>();
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                while Instant::now() < deadline {
                    let mut request = hyper::Request::builder().method(method.clone()).uri(uri.clone());
                    for (name, value) in &headers {
                        request = request.header(name, value);
                    }
                    let n = sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let request = request.body(Full::new(Bytes::from(body(n)))).expect("a request");
                    let sent = Instant::now();
                    match http.request(request).await {
                        Ok(response) if response.status().is_success() => {
                            if response.into_body().collect().await.is_ok() {
                                latencies.push(sent.elapsed());
                            } else {
                                errors += 1;
                            }
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
        let (latencies, failed) = worker.await.expect("a load worker");
        all.extend(latencies);
        errors += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    Figures {
        requests: all.len(),
        per_second: all.len() as f64 / elapsed,
        p50: quantile(&all, 0.50),
        p99: quantile(&all, 0.99),
        errors,
    }
}

/// One line of figures; panics after printing it when any request failed or none was
/// served (a figure of failed work measures nothing).
pub fn show(label: &str, f: &Figures) {
    println!(
        "  {label:<44} {:>7.0} req/s  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} requests, {} errors)",
        f.per_second,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0,
        f.requests,
        f.errors
    );
    assert!(
        f.errors == 0 && f.requests > 0,
        "{label}: {} of {} requests failed; the figure above measures nothing",
        f.errors,
        f.errors + f.requests
    );
}

/// This process's peak resident memory, in MB.
pub fn peak_memory_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// CPU time this process has used so far (user + system), in seconds.
pub fn cpu_seconds() -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks_per_second)
        })
        .unwrap_or(0.0)
}
