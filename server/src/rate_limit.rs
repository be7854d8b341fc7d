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

/// The proxy's limits in front of Airwallex, per connection (keyed by its merchant: one
/// each) on this instance: requests a second (a token bucket holding a second's worth) and
/// requests in flight.
#[derive(Debug, Default)]
pub struct ConnectionLimiter {
    connections: Mutex<HashMap<i64, Lane>>,
}

#[derive(Debug)]
struct Lane {
    tokens: f64,
    at: Instant,
    in_flight: u32,
}

/// A request admitted by [`ConnectionLimiter::admit`]; in flight until dropped.
#[derive(Debug)]
pub struct InFlight {
    limiter: Arc<ConnectionLimiter>,
    connection_id: i64,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut lanes = self.limiter.lock();
        if let Some(lane) = lanes.get_mut(&self.connection_id) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
    }
}

impl ConnectionLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Lane>> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits one request for `connection_id`, or `Err(seconds)` to wait: the second's
    /// budget is spent, or `concurrency` requests are already in flight.
    pub fn admit(self: &Arc<Self>, connection_id: i64, per_second: u32, concurrency: u32) -> Result<InFlight, u64> {
        let rate = f64::from(per_second.max(1));
        let now = Instant::now();
        let mut lanes = self.lock();
        if lanes.len() > 10_000 {
            lanes.retain(|_, lane| lane.in_flight > 0 || now.duration_since(lane.at).as_secs() < 2);
        }
        let lane = lanes.entry(connection_id).or_insert(Lane {
            tokens: rate,
            at: now,
            in_flight: 0,
        });
        lane.tokens = (lane.tokens + now.duration_since(lane.at).as_secs_f64() * rate).min(rate);
        lane.at = now;
        if lane.in_flight >= concurrency.max(1) {
            return Err(1);
        }
        if lane.tokens < 1.0 {
            return Err(((1.0 - lane.tokens) / rate).ceil().max(1.0) as u64);
        }
        lane.tokens -= 1.0;
        lane.in_flight += 1;
        Ok(InFlight {
            limiter: self.clone(),
            connection_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_its_rate_and_its_concurrency_and_no_more() {
        let limiter = Arc::new(ConnectionLimiter::default());
        let admitted: Vec<_> = (0..3).map(|_| limiter.admit(1, 100, 3).unwrap()).collect();
        assert_eq!(limiter.admit(1, 100, 3).unwrap_err(), 1, "three in flight");
        assert!(limiter.admit(2, 100, 3).is_ok(), "another connection has its own lane");
        drop(admitted);
        for _ in 0..97 {
            drop(limiter.admit(1, 100, 3).unwrap());
        }
        assert!(limiter.admit(1, 100, 3).is_err(), "a second's worth spent");
    }
}
