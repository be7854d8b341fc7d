//! A platform's webhook receiver, for tests and benches: a real HTTP server on a free port
//! that verifies each delivery with the `standardwebhooks` crate (as a platform would with
//! an off-the-shelf library) and records it. It can be told to fail (`503`, as a receiver
//! that is down) or to hold requests unanswered (a delivery caught mid-flight).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::{watch, Notify};

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `204` for a delivery whose signature verifies, `400` otherwise.
    Accept,
    /// `503` to everything: the platform is down.
    Fail,
    /// Keeps the request open, unanswered, until the mode changes.
    Hold,
    /// Keeps the request open until the mode changes, then answers it as the new mode does
    /// (a slow platform: its sender is still waiting).
    Park,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `webhook-id` header.
    pub id: String,
    /// The body, parsed.
    pub body: serde_json::Value,
    /// Whether the signature verified with the secret the receiver was given.
    pub verified: bool,
    /// What the receiver answered (0 when the request was held and never answered).
    pub answered: u16,
}

#[derive(Default)]
struct Inner {
    secret: Mutex<Option<String>>,
    received: Mutex<Vec<Received>>,
    held: Mutex<usize>,
    arrivals: Mutex<usize>,
    arrived: Notify,
}

/// A request held open: counted in [`WebhookReceiver::held`] until it is answered or its
/// sender gives up (hyper then drops the handler).
struct Open<'a>(&'a Inner);

impl<'a> Open<'a> {
    fn new(inner: &'a Inner) -> Open<'a> {
        *inner.held.lock().unwrap() += 1;
        inner.arrived.notify_waiters();
        Open(inner)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap() -= 1;
    }
}

/// A running receiver.
#[derive(Clone)]
pub struct WebhookReceiver {
    /// Where to send webhooks: `http://127.0.0.1:PORT/hooks`.
    pub url: String,
    inner: Arc<Inner>,
    mode: watch::Sender<Mode>,
}

impl WebhookReceiver {
    /// A receiver registered as `services`' webhook endpoint for `events`, verifying with
    /// its signing secret; returns the endpoint's id too.
    pub async fn subscribed(
        services: &awx_onboard::services::Services,
        events: &[awx_onboard::platform::outbox::PlatformEvent],
    ) -> (i64, WebhookReceiver) {
        let receiver = WebhookReceiver::start().await;
        let (endpoint, secret) = services
            .webhooks
            .create(&receiver.url, events, "test")
            .await
            .expect("the endpoint is registered");
        receiver.verify_with(secret.expose());
        (endpoint, receiver)
    }

    pub async fn start() -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        let (mode, _) = watch::channel(Mode::Accept);
        let receiver = WebhookReceiver {
            url: format!("http://{addr}/hooks"),
            inner: Arc::default(),
            mode,
        };
        let router = Router::new()
            .route("/hooks", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        receiver
    }

    /// The endpoint's signing secret (`whsec_…`), as shown once when it was registered.
    pub fn verify_with(&self, secret: &str) {
        *self.inner.secret.lock().unwrap() = Some(secret.to_string());
    }

    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The requests it answered with success.
    pub fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.answered == 204).collect()
    }

    /// Requests open right now in [`Mode::Hold`] or [`Mode::Park`].
    pub fn held(&self) -> usize {
        *self.inner.held.lock().unwrap()
    }

    /// Every request that reached the receiver so far, answered or not (one its sender gave
    /// up on included).
    pub fn arrivals(&self) -> usize {
        *self.inner.arrivals.lock().unwrap()
    }

    /// Waits until `condition` holds over what was received (or panics after `within`).
    pub async fn wait_for(&self, what: &str, within: std::time::Duration, condition: impl Fn(&[Received]) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.inner.arrived.notified();
            if condition(&self.received()) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("the receiver never saw {what}; it saw {:#?}", self.received());
            }
        }
    }
}

async fn receive(State(receiver): State<WebhookReceiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut mode = receiver.mode.subscribe();
    let arrived_in = *mode.borrow();
    *receiver.inner.arrivals.lock().unwrap() += 1;
    if matches!(arrived_in, Mode::Hold | Mode::Park) {
        let open = Open::new(&receiver.inner);
        let _ = mode.wait_for(|m| *m != arrived_in).await;
        drop(open);
        if arrived_in == Mode::Hold {
            // The sender has long given up; a held request is recorded as never answered.
            record(&receiver, &headers, &body, 0, false);
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let verified = receiver
        .inner
        .secret
        .lock()
        .unwrap()
        .as_deref()
        .and_then(|secret| standardwebhooks::Webhook::new(secret).ok())
        .is_some_and(|webhook| webhook.verify(&body, &headers).is_ok());
    let status = match *mode.borrow() {
        Mode::Fail => StatusCode::SERVICE_UNAVAILABLE,
        _ if verified => StatusCode::NO_CONTENT,
        _ => StatusCode::BAD_REQUEST,
    };
    record(&receiver, &headers, &body, status.as_u16(), verified);
    status
}

fn record(receiver: &WebhookReceiver, headers: &HeaderMap, body: &[u8], answered: u16, verified: bool) {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    receiver.inner.received.lock().unwrap().push(Received {
        id,
        body: serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
        verified,
        answered,
    });
    receiver.inner.arrived.notify_waiters();
}
