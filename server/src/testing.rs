//! A real server on a free port with a throwaway database, for integration tests and
//! benchmarks (the embedded simulator on a free port too).

use std::collections::HashMap;

use awx_onboard::db::Engine;
use awx_onboard::testing::TestDatabase;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::state::AppState;
use crate::Application;

pub struct TestServer {
    /// `http://127.0.0.1:PORT`, also the `PUBLIC_URL`.
    pub base: String,
    pub state: AppState,
    pub db: TestDatabase,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub async fn start(engine: Engine) -> TestServer {
        TestServer::start_with(engine, &[]).await
    }

    /// Starts with extra (or overriding) configuration variables.
    pub async fn start_with(engine: Engine, extra: &[(&'static str, &str)]) -> TestServer {
        let db = TestDatabase::new(engine).await;
        // PUBLIC_URL must be known before binding: take a free port first.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let key_file = std::env::temp_dir().join(format!(
            "awx-test-{port}-{}.key",
            awx_onboard::secret::random_urlsafe(6)
        ));
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("DATABASE_URL", db.url.clone()),
            ("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}")),
            ("PUBLIC_URL", format!("http://127.0.0.1:{port}")),
            ("AIRWALLEX_SIM_ADDR", "127.0.0.1:0".to_string()),
            ("TOKEN_ENCRYPTION_KEY_FILE", key_file.display().to_string()),
        ]);
        for (name, value) in extra {
            vars.insert(name, value.to_string());
        }
        let config = Config::from_lookup(&move |name| vars.get(name).cloned()).expect("test configuration");
        let app = Application::build(config).await.expect("the app builds");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            state,
            db,
            stop: Some(stop),
            server,
        }
    }

    /// Stops the server (in-flight requests finish) and removes the database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Bounded: a test must fail, not hang, if the server cannot stop.
        match tokio::time::timeout(crate::SHUTDOWN_GRACE + std::time::Duration::from_secs(5), self.server).await {
            Ok(joined) => joined.expect("server task").expect("server stops cleanly"),
            Err(_) => panic!("the server did not stop within its shutdown grace period"),
        }
        self.db.remove().await;
    }
}
