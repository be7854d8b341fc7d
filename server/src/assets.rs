//! Static files at static speed: `/pkg` (the stylesheet, the hydration script and wasm) and
//! the public files beside it, served by tower-http's `ServeDir`/`ServeFile` outside the
//! session and account layers (no database work for a file), with the gzip and brotli
//! files a release build leaves beside each one. Hashed names (release builds) are cached
//! for a year; other files carry `Last-Modified` and are revalidated.
//!
//! `ServeDir` reads each file through the blocking thread pool on every request, which
//! costs as much as rendering a page. The site does not change while the process runs, so
//! [`MemoryCache`] keeps `ServeDir`'s complete `200` answers (per path and
//! `Accept-Encoding`, bounded in number and size) and answers repeats from memory.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::Service;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

/// For a year, never revalidated: the name changes when the content does.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cached, but revalidated (by `Last-Modified`) before each use.
const REVALIDATE: &str = "no-cache";

/// The routes of the site's files, found in `site_root` at start-up.
pub fn routes(site_root: &Path, hashed: bool) -> Router<AppState> {
    let cache = HeaderValue::from_static(if hashed { IMMUTABLE } else { REVALIDATE });
    let pkg = ServeDir::new(site_root.join("pkg"))
        .precompressed_br()
        .precompressed_gzip();
    let mut router = Router::new().nest_service(
        "/pkg",
        MemoryCache::new(
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, cache))
                .service(pkg),
        ),
    );
    for file in public_files(site_root) {
        let Some(name) = file.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        router = router.route_service(
            &format!("/{name}"),
            MemoryCache::new(
                tower::ServiceBuilder::new()
                    .layer(SetResponseHeaderLayer::overriding(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(REVALIDATE),
                    ))
                    .service(ServeFile::new(&file).precompressed_br().precompressed_gzip()),
            ),
        );
    }
    router
}

/// The files at the top of the site (copied from `public/`), without their compressed twins.
fn public_files(site_root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(site_root) else {
        tracing::warn!(site = %site_root.display(), "the site folder cannot be read: no static files");
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| !matches!(path.extension().and_then(|e| e.to_str()), Some("gz" | "br")))
        .collect();
    files.sort();
    files
}

/// Answers kept at most, and the largest one kept (the release wasm is under 1 MiB).
const CACHED_ANSWERS: usize = 256;
const CACHED_BYTES: usize = 4 * 1024 * 1024;

/// A complete answer of the inner service.
struct Cached {
    headers: HeaderMap,
    body: Bytes,
}

/// Answers by (path, `Accept-Encoding`).
type Answers = Arc<RwLock<HashMap<(String, String), Arc<Cached>>>>;

/// Keeps the inner file service's `200` answers to plain `GET`s in memory, per path and
/// `Accept-Encoding`. Conditional and range requests, and anything else, go through.
#[derive(Clone)]
pub struct MemoryCache<S> {
    inner: S,
    answers: Answers,
}

impl<S> MemoryCache<S> {
    pub fn new(inner: S) -> MemoryCache<S> {
        MemoryCache {
            inner,
            answers: Arc::default(),
        }
    }
}

fn cacheable(request: &Request<Body>) -> bool {
    request.method() == Method::GET
        && ![
            header::RANGE,
            header::IF_MODIFIED_SINCE,
            header::IF_NONE_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_MATCH,
        ]
        .iter()
        .any(|name| request.headers().contains_key(name))
}

fn answer(cached: &Cached) -> Response<Body> {
    let mut response = Response::new(Body::from(cached.body.clone()));
    *response.headers_mut() = cached.headers.clone();
    response
}

impl<S, B> Service<Request<Body>> for MemoryCache<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let key = cacheable(&request).then(|| {
            let encoding = request
                .headers()
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            (request.uri().path().to_string(), encoding.to_string())
        });
        if let Some(hit) = key
            .as_ref()
            .and_then(|key| self.answers.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned())
        {
            return Box::pin(async move { Ok(answer(&hit)) });
        }
        let answers = self.answers.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let keep = key.filter(|_| {
                response.status() == StatusCode::OK
                    && response
                        .headers()
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<usize>().ok())
                        .is_some_and(|length| length <= CACHED_BYTES)
            });
            let (parts, body) = response.into_parts();
            let Some(key) = keep else {
                return Ok(Response::from_parts(parts, Body::new(body.map_err(|e| e.to_string()))));
            };
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => {
                    tracing::warn!(%error, "a static file could not be read");
                    let mut failed = Response::new(Body::empty());
                    *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    return Ok(failed);
                }
            };
            let cached = Arc::new(Cached {
                headers: parts.headers,
                body,
            });
            let mut answers = answers.write().unwrap_or_else(|p| p.into_inner());
            if answers.len() < CACHED_ANSWERS {
                answers.insert(key, cached.clone());
            }
            Ok(answer(&cached))
        })
    }
}

static STYLESHEET: OnceLock<String> = OnceLock::new();

/// Remembers the stylesheet's path (hashed in release builds) for pages rendered without
/// Leptos.
pub fn set_stylesheet(href: String) {
    let _ = STYLESHEET.set(href);
}

/// The stylesheet's path.
pub fn stylesheet() -> &'static str {
    STYLESHEET.get().map(String::as_str).unwrap_or("/pkg/awx-onboard.css")
}

/// The stylesheet's path for `options`: its hash (from the hash file beside the binary)
/// in the name when the build hashes files.
pub fn stylesheet_href(options: &leptos::prelude::LeptosOptions) -> String {
    let mut name = options.output_name.to_string();
    if options.hash_files {
        if let Some(hash) = hash_of("css") {
            name.push('.');
            name.push_str(&hash);
        }
    }
    format!("/{}/{name}.css", options.site_pkg_dir)
}

/// The folder of this executable.
pub fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(Path::to_path_buf)
}

/// The hash cargo-leptos wrote for one kind of file (`css`, `js`, `wasm`) into `hash.txt`
/// beside the binary.
fn hash_of(kind: &str) -> Option<String> {
    let text = std::fs::read_to_string(exe_dir()?.join("hash.txt")).ok()?;
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(file, _)| file.trim() == kind)
        .map(|(_, hash)| hash.trim().to_string())
}
