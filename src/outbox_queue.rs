//! What the two outboxes (webhook deliveries, emails) share: the delivery loop that drives
//! them ([`run`], one [`round`] at a time), due rows claimed under a lease in real time, so
//! that one instance at a time works on each and a crashed instance's rows are taken over
//! once its lease lapses, and the retry schedule.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sqlx::any::AnyRow;
use tokio::sync::watch;

use crate::db::Database;
use crate::time::real_now;

/// How an outbox is worked: its lease, its pace and its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// A claimed row is another instance's to take after this (real time).
    pub lease: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// Rows claimed per round.
    pub batch: i64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long to wait after a round that found less than a full batch.
    pub poll: Duration,
    /// First retry after this; doubling, at most an hour.
    pub retry_base: Duration,
    /// Retries stop this long after the row was queued.
    pub give_up_after: Duration,
}

impl Schedule {
    /// When a row queued at `created_at` is tried again after `attempts` failed attempts,
    /// or `None`: its retries are over.
    pub fn retry_at(&self, attempts: i64, created_at: i64, now: i64) -> Option<i64> {
        (now - created_at < self.give_up_after.as_secs() as i64)
            .then(|| now + backoff_seconds(self.retry_base, attempts))
    }
}

/// An outbox that [`run`] drives: it claims due rows for this instance and delivers each,
/// recording each outcome itself (only while it still holds the row).
#[async_trait::async_trait]
pub trait Courier: Send + Sync + 'static {
    type Claimed: Send + 'static;
    /// For logs: what one delivery is ("webhook delivery", "email").
    const WHAT: &'static str;

    fn schedule(&self) -> &Schedule;

    /// Work due before a round (the mail outbox plans its messages here).
    async fn before_round(&self) {}

    /// Claims due rows for this instance.
    async fn claim(&self) -> Result<Vec<Self::Claimed>, sqlx::Error>;

    /// Delivers one claimed row and records the outcome.
    async fn deliver(&self, claimed: Self::Claimed);
}

/// Rounds until `stop` turns true; a round in progress finishes what it claimed. A full
/// batch is followed by the next round at once, anything less by a pause.
pub async fn run<C: Courier>(courier: Arc<C>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        courier.before_round().await;
        let schedule = *courier.schedule();
        let pause = match round(&*courier).await {
            Ok(claimed) if claimed as i64 >= schedule.batch => Duration::ZERO,
            Ok(_) => schedule.poll,
            Err(error) => {
                tracing::warn!(%error, what = C::WHAT, "a delivery round failed");
                schedule.poll * 4
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// One round: claims due rows and delivers them, `concurrency` at a time. Returns how
/// many it claimed.
pub async fn round<C: Courier>(courier: &C) -> Result<usize, sqlx::Error> {
    let claimed = courier.claim().await?;
    let count = claimed.len();
    futures::stream::iter(claimed)
        .map(|row| courier.deliver(row))
        .buffer_unordered(courier.schedule().concurrency.max(1))
        .collect::<Vec<()>>()
        .await;
    Ok(count)
}

/// The rows of `ids`, read by `select` (a query ending in `IN`, to which the id list is
/// appended), 500 ids a query.
pub async fn fetch_claimed(db: &Database, select: &str, ids: &[i64]) -> Result<Vec<AnyRow>, sqlx::Error> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        rows.extend(sqlx::query(&format!("{select} ({list})")).fetch_all(db.pool()).await?);
    }
    Ok(rows)
}

/// Claims up to `batch` rows of `table` whose `status` is `due_status`, that are due at
/// `now` (the product's clock) and not leased by anyone (real time); returns their ids.
/// `table` and `due_status` are the caller's constants, never input.
pub async fn claim_due(
    db: &Database,
    table: &'static str,
    due_status: &'static str,
    owner: &str,
    schedule: &Schedule,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let (lease, batch) = (schedule.lease, schedule.batch);
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
