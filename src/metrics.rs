//! Process metrics in Prometheus' text format: counters and one histogram, kept in
//! memory per instance (Prometheus sums instances). Gauges that describe shared state
//! (connections by status) are read from the database at scrape time by the server.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Refresh latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Registry {
    refreshes: BTreeMap<String, u64>,
    refresh_latency_buckets: [u64; LATENCY_BUCKETS.len()],
    refresh_latency_sum: f64,
    refresh_latency_count: u64,
    login_failures: BTreeMap<String, u64>,
    http_requests: BTreeMap<(String, String, u16), u64>,
    webhook_deliveries: BTreeMap<String, u64>,
    mail: BTreeMap<String, u64>,
    proxy: BTreeMap<String, u64>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn with<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
    f(&mut registry)
}

/// One refresh attempt sequence ended with `result` (`ok`, or an error kind).
pub fn record_refresh(result: &str, took: Duration) {
    with(|r| {
        *r.refreshes.entry(result.to_string()).or_default() += 1;
        let seconds = took.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                r.refresh_latency_buckets[i] += 1;
            }
        }
        r.refresh_latency_sum += seconds;
        r.refresh_latency_count += 1;
    });
}

/// A refused log-in (`invalid_credentials` or `throttled`).
pub fn record_login_failure(reason: &str) {
    with(|r| *r.login_failures.entry(reason.to_string()).or_default() += 1);
}

/// A webhook delivery attempt to the platform ended (`delivered`, `retry`, `failed`).
pub fn record_webhook_delivery(outcome: &str) {
    with(|r| *r.webhook_deliveries.entry(outcome.to_string()).or_default() += 1);
}

/// An email attempt's outcome (`sent`, `queued` for a retry, `failed`, `suppressed`).
pub fn record_mail(outcome: &str) {
    with(|r| *r.mail.entry(outcome.to_string()).or_default() += 1);
}

/// A call through the Airwallex proxy answered with `status` (counted by class, `2xx` to
/// `5xx`: no path, no merchant).
pub fn record_proxy(status: u16) {
    with(|r| *r.proxy.entry(format!("{}xx", status / 100)).or_default() += 1);
}

/// An HTTP request answered; `route` is the matched route pattern, never a raw path.
pub fn record_http(method: &str, route: &str, status: u16) {
    with(|r| {
        *r.http_requests
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1
    });
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The `# HELP` and `# TYPE` lines of a metric.
fn describe(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A counter with one label: its description, then a line per value of the label.
fn counter(out: &mut String, name: &str, help: &str, label: &str, counts: &BTreeMap<String, u64>) {
    describe(out, name, "counter", help);
    for (value, n) in counts {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {n}", escape(value));
    }
}

/// The counters and histogram of this process.
pub fn render() -> String {
    with(|r| {
        let mut out = String::new();
        counter(
            &mut out,
            "awx_refreshes_total",
            "Token refreshes by result.",
            "result",
            &r.refreshes,
        );
        describe(
            &mut out,
            "awx_refresh_duration_seconds",
            "histogram",
            "Time to refresh a connection's tokens.",
        );
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "awx_refresh_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                r.refresh_latency_buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "awx_refresh_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            r.refresh_latency_count
        );
        let _ = writeln!(out, "awx_refresh_duration_seconds_sum {}", r.refresh_latency_sum);
        let _ = writeln!(out, "awx_refresh_duration_seconds_count {}", r.refresh_latency_count);
        counter(
            &mut out,
            "awx_login_failures_total",
            "Refused log-ins by reason.",
            "reason",
            &r.login_failures,
        );
        describe(
            &mut out,
            "awx_http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
        );
        for ((method, route, status), n) in &r.http_requests {
            let _ = writeln!(
                out,
                "awx_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        counter(
            &mut out,
            "awx_webhook_deliveries_total",
            "Webhook delivery attempts to the platform by outcome.",
            "outcome",
            &r.webhook_deliveries,
        );
        counter(
            &mut out,
            "awx_mail_attempts_total",
            "Email attempts by outcome.",
            "outcome",
            &r.mail,
        );
        // The classes are `2xx` to `5xx`: escaping leaves them as they are.
        counter(
            &mut out,
            "awx_proxy_requests_total",
            "Calls through the Airwallex proxy by status class.",
            "class",
            &r.proxy,
        );
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        record_refresh("ok", Duration::from_millis(30));
        record_refresh("ok", Duration::from_millis(300));
        record_login_failure("throttled");
        record_http("GET", "/operator", 200);
        let text = render();
        assert!(text.contains("awx_refreshes_total{result=\"ok\"}"));
        assert!(text.contains("awx_refresh_duration_seconds_bucket{le=\"+Inf\"}"));
        assert!(text.contains("awx_login_failures_total{reason=\"throttled\"}"));
        assert!(text.contains("awx_http_requests_total{method=\"GET\",route=\"/operator\",status=\"200\"}"));
        // Cumulative: the 0.5 s bucket counts both refreshes at least.
        let half = text
            .lines()
            .find(|l| l.starts_with("awx_refresh_duration_seconds_bucket{le=\"0.5\"}"))
            .unwrap();
        let n: u64 = half.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n >= 2);
    }
}
