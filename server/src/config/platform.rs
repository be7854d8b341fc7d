//! The platform API and its webhooks: the per-key request budget and the delivery lease.

use std::time::Duration;

use super::reader::Reader;

#[derive(Debug)]
pub struct PlatformConfig {
    /// Requests per second each platform API key may make (per instance).
    pub rate_limit: u32,
    /// A claimed webhook delivery is another instance's to send after this.
    pub webhook_delivery_lease: Duration,
}

pub(super) fn read(r: &mut Reader) -> PlatformConfig {
    let webhook_delivery_lease = r.seconds("WEBHOOK_DELIVERY_LEASE_SECONDS", 30, 3600);
    if webhook_delivery_lease < Duration::from_secs(11) {
        r.fail(
            "WEBHOOK_DELIVERY_LEASE_SECONDS",
            "must be at least 11 seconds: longer than one delivery attempt may take (10 s)",
        );
    }
    PlatformConfig {
        rate_limit: r.count("PLATFORM_RATE_LIMIT_PER_SECOND", 1000, 1_000_000) as u32,
        webhook_delivery_lease,
    }
}
