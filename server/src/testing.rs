//! Test support (feature `testing`): a real server on a free port with a throwaway
//! database and its embedded simulator ([`TestApp`]), a browser-like client that signs up,
//! logs in and connects Airwallex over real HTTP ([`Browser`]), and polling for what
//! happens in the background ([`eventually`]).

pub mod bench;
mod browser;
mod factors;
pub mod platform_api;
pub mod receiver;
mod test_app;

use std::future::Future;
use std::time::Duration;

pub use awx_onboard::simulator::{HARBOUR_COFFEE, LIM_WEI_LING, MAPLE_FINCH};
pub use browser::{all_attributes, assert_to_log_in, attribute, location, query, styled_page, Browser};
pub use test_app::TestApp;

/// The password every test account uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// Where the app's mail comes from when a test gives it an SMTP server.
pub const MAIL_FROM: &str = "no-reply@onboard.test";

/// Polls `check` until it returns `Some`, at most `within`; panics naming `what` after.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
