//! Static files at static speed: `/pkg` (the stylesheet, the hydration script and wasm) and
//! the public files beside it, served by tower-http's `ServeDir`/`ServeFile` outside the
//! session and account layers (no database work for a file), with the gzip and brotli
//! files a release build leaves beside each one. Hashed names (release builds) are cached
//! for a year; other files carry `Last-Modified` and are revalidated.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::Router;
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
        tower::ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, cache))
            .service(pkg),
    );
    for file in public_files(site_root) {
        let Some(name) = file.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        router = router.route_service(
            &format!("/{name}"),
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(REVALIDATE),
                ))
                .service(ServeFile::new(&file).precompressed_br().precompressed_gzip()),
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
