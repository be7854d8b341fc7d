//! A page render that never finishes answers 503 after `PAGE_RENDER_TIMEOUT_SECONDS`.
//!
//! Its own test binary (its own process): it holds Leptos's resource suppression, which is
//! one flag for the whole process and would stall every other test's pages meanwhile.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use awx_onboard::db::Engine;
use awx_onboard_server::testing::{styled_page, TestApp};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_render_that_never_finishes_answers_503_and_names_the_route() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let app = TestApp::spawn_with(Engine::Sqlite, &[("PAGE_RENDER_TIMEOUT_SECONDS", "2")]).await;
    let browser = app.browser();
    assert_eq!(browser.get("/login").await.status(), 200);

    // What a route-list generation elsewhere in the process does to a render in flight.
    let stuck = leptos::server::SuppressResourceLoad::new();
    let started = Instant::now();
    let response = browser.get("/login").await;
    let waited = started.elapsed();
    drop(stuck);
    let html = styled_page(response, 503).await;
    assert!(html.contains("This page is taking too long"), "{html}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "answered at the deadline, not at the client's timeout: {waited:?}"
    );
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|line| line.contains("did not finish rendering"))
        .unwrap_or_else(|| panic!("an error is logged: {logged}"));
    assert!(line.contains("ERROR") && line.contains("route=/login"), "{line}");

    // Nothing stays stuck: the next render answers.
    assert_eq!(browser.get("/login").await.status(), 200);
    app.stop().await;
}
