//! What the two outboxes (webhook deliveries, emails) share: due rows claimed under a lease
//! in real time, so that one instance at a time works on each and a crashed instance's rows
//! are taken over once its lease lapses; and the retry schedule.

use std::time::Duration;

use crate::db::Database;
use crate::time::real_now;

/// Claims up to `batch` rows of `table` whose `status` is `due_status`, that are due at
/// `now` (the product's clock) and not leased by anyone (real time); returns their ids.
/// `table` and `due_status` are the caller's constants, never input.
pub async fn claim_due(
    db: &Database,
    table: &'static str,
    due_status: &'static str,
    owner: &str,
    lease: Duration,
    now: i64,
    batch: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let real = real_now();
    sqlx::query_scalar(&format!(
        "UPDATE {table} SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM {table} WHERE status = '{due_status}' AND next_attempt_at <= $3 \
           AND (lease_until IS NULL OR lease_until < $4) ORDER BY next_attempt_at, id LIMIT $5) \
         AND status = '{due_status}' AND (lease_until IS NULL OR lease_until < $4) RETURNING id"
    ))
    .bind(owner)
    .bind(real + lease.as_secs() as i64)
    .bind(now)
    .bind(real)
    .bind(batch)
    .fetch_all(db.pool())
    .await
}

/// Seconds until the next attempt after `attempts` failed ones: `base`, doubling, at most
/// an hour, at least a second.
pub fn backoff_seconds(base: Duration, attempts: i64) -> i64 {
    ((base.as_secs_f64() * 2f64.powi((attempts - 1).clamp(0, 20) as i32)).min(3600.0) as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_an_hour() {
        let base = Duration::from_secs(5);
        let waits: Vec<i64> = (1..=12).map(|n| backoff_seconds(base, n)).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(backoff_seconds(Duration::ZERO, 1), 1);
    }
}
