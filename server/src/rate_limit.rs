//! Token buckets per key, per instance: how many requests each caller may make a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Requests per key and second, per instance: a token bucket holding a second's worth.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request from `key`'s bucket; `Err(seconds)` to wait when it is empty.
    pub fn take(&self, key: &str, per_second: u32) -> Result<(), u64> {
        let rate = f64::from(per_second.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// Shared limiter state.
pub type SharedRateLimiter = Arc<RateLimiter>;
