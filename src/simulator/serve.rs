//! Serving the simulator over TCP, with the one thing `axum::serve` cannot do: reset a
//! connection from inside a handler, to simulate a response lost after the work was done.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// Lets a handler reset the TCP connection its request came on.
#[derive(Clone)]
pub struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

/// Accepts connections until `shutdown` completes; each connection can be reset by its
/// handler through [`ConnectionKill`].
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()> + Send + 'static) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(target: "awx_sim", %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let kill = ConnectionKill(Arc::new(Notify::new()));
        let router = router.clone();
        let connection_kill = kill.clone();
        let service = tower::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(connection_kill.clone());
            router.clone().oneshot(request)
        });
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            let connection = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(io, TowerToHyperService::new(service))
                .into_owned();
            tokio::select! {
                _ = connection => {}
                _ = kill.0.notified() => {
                    // Dropping the connection closes the socket without an answer.
                }
            }
        });
    }
}
