//! What tests of the platform API share: a service key to call it with, the route
//! template a call went to, and the answers a platform's backend saw, to check against the
//! OpenAPI document.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use awx_onboard::platform::connect_sessions::{CreatedSession, SessionRequest};
use awx_onboard::platform::keys::{ApiKey, Scope};

use super::TestApp;
use crate::platform::ROUTES;

/// A platform service key made for a test.
pub struct ServiceKey {
    /// The key as operators see it (its id, name and scopes).
    pub key: ApiKey,
    /// `Bearer awx_pk_…`: what the platform sends as `Authorization`.
    pub header: String,
}

impl TestApp {
    /// A new service key `name` with `scopes`, as an operator would create it.
    pub async fn service_key(&self, name: &str, scopes: &[Scope]) -> ServiceKey {
        let (key, secret) = self
            .services()
            .api_keys
            .create(name, scopes, "test", None)
            .await
            .expect("a service key");
        ServiceKey {
            key,
            header: format!("Bearer {}", secret.expose()),
        }
    }

    /// A connect link the platform's backend made for its merchant `external_id` (whose
    /// email is `{external_id}@example.com`), coming back to `return_url`.
    pub async fn connect_link(&self, external_id: &str, return_url: &str) -> CreatedSession {
        self.services()
            .connect_sessions
            .create(
                &SessionRequest {
                    external_id: external_id.into(),
                    email: Some(format!("{external_id}@example.com")),
                    return_url: return_url.into(),
                    ..Default::default()
                },
                "test",
            )
            .await
            .expect("a connect session")
    }
}

/// The route template (of [`ROUTES`]) a concrete path belongs to; the path itself when it
/// is of none.
pub fn route_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').collect();
    let mut best: Option<&str> = None;
    for (_, route) in ROUTES {
        let pattern: Vec<&str> = route.split('/').collect();
        if pattern.len() == parts.len() && pattern.iter().zip(&parts).all(|(r, p)| r.starts_with('{') || r == p) {
            // A literal segment beats a parameter (`merchants/external/…`).
            if best.is_none_or(|b| b.matches('{').count() > route.matches('{').count()) {
                best = Some(route);
            }
        }
    }
    best.unwrap_or(path).to_string()
}

/// The (method, route, status) of every answer a platform's backend saw; its clones share
/// them.
#[derive(Clone, Default)]
pub struct SeenAnswers(Arc<Mutex<HashSet<(String, String, u16)>>>);

impl SeenAnswers {
    /// Records the answer to `method path`; an error's body must be the API's
    /// `{"code", "message"}`.
    pub fn record(&self, method: &reqwest::Method, path: &str, status: u16, body: &Value) {
        if status >= 400 {
            assert!(
                body["code"].is_string() && body["message"].is_string(),
                "{path}: {body}"
            );
        }
        self.lock()
            .insert((method.as_str().to_lowercase(), route_of(path), status));
    }

    /// Every (method, route, status) seen so far.
    pub fn all(&self) -> Vec<(String, String, u16)> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String, u16)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
