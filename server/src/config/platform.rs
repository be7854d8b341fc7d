//! The platform API and its webhooks: the per-key request budget and the delivery lease;
//! connect sessions: the platform's name, where sessions may return, how long they live.

use std::time::Duration;

use super::reader::Reader;

#[derive(Debug)]
pub struct PlatformConfig {
    /// Requests per second each platform API key may make (per instance).
    pub rate_limit: u32,
    /// A claimed webhook delivery is another instance's to send after this.
    pub webhook_delivery_lease: Duration,
    /// `PLATFORM_NAME`: how merchants know the platform.
    pub name: String,
    /// `PLATFORM_RETURN_ORIGINS`: origins a connect session may return to (normal form).
    pub return_origins: Vec<String>,
    /// `CONNECT_SESSION_MINUTES`: how long a connect link can be used.
    pub connect_session: Duration,
    /// `WEBHOOK_ALLOW_PRIVATE_TARGETS`: webhooks may go inside the own network (and over http).
    pub webhook_allow_private_targets: bool,
}

pub(super) fn read(r: &mut Reader) -> PlatformConfig {
    let webhook_delivery_lease = r.seconds("WEBHOOK_DELIVERY_LEASE_SECONDS", 30, 3600);
    if webhook_delivery_lease < Duration::from_secs(11) {
        r.fail(
            "WEBHOOK_DELIVERY_LEASE_SECONDS",
            "must be at least 11 seconds: longer than one delivery attempt may take (10 s)",
        );
    }
    let name = r.raw("PLATFORM_NAME").unwrap_or_else(|| "awx-onboard".to_string());
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        r.fail(
            "PLATFORM_NAME",
            "must be at most 100 characters, without control characters",
        );
    }
    let mut return_origins = Vec::new();
    for origin in r.raw("PLATFORM_RETURN_ORIGINS").unwrap_or_default().split(',') {
        if origin.trim().is_empty() {
            continue;
        }
        match awx_onboard::platform::connect_sessions::parse_return_origin(origin) {
            Ok(origin) => return_origins.push(origin),
            Err(problem) => r.fail("PLATFORM_RETURN_ORIGINS", problem),
        }
    }
    let minutes = r.count(
        "CONNECT_SESSION_MINUTES",
        30,
        awx_onboard::platform::connect_sessions::MAX_SESSION_MINUTES,
    );
    PlatformConfig {
        rate_limit: r.count("PLATFORM_RATE_LIMIT_PER_SECOND", 1000, 1_000_000) as u32,
        webhook_delivery_lease,
        name,
        return_origins,
        connect_session: Duration::from_secs(minutes as u64 * 60),
        webhook_allow_private_targets: r.flag("WEBHOOK_ALLOW_PRIVATE_TARGETS", false),
    }
}
