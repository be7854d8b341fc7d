//! What the two outboxes (webhook deliveries, emails) share: the delivery loop that drives
//! them ([`run`], one [`round`] at a time), due rows claimed under a lease in real time, so
//! that one instance at a time works on each and a crashed instance's rows are taken over
//! once its lease lapses, and the retry schedule.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use sqlx::any::AnyRow;
use tokio::sync::watch;

use crate::db::{Database, Engine};
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
    /// How long to wait at most after a round that found less than a full batch (the end
    /// of a delivery in flight ends the wait sooner).
    pub poll: Duration,
    /// First retry after this; doubling, at most an hour.
    pub retry_base: Duration,
    /// Retries stop this long after the row was queued.
    pub give_up_after: Duration,
}

impl Schedule {
    /// Rows one round claims: no more than finish within the lease even if every attempt
    /// takes its whole timeout (so no other instance takes a row this one still works on),
    /// and at most `batch`.
    pub fn claimable(&self) -> i64 {
        let waves = (self.lease.as_millis() / self.timeout.as_millis().max(1))
            .saturating_sub(1)
            .max(1) as i64;
        self.batch.min(self.concurrency.max(1) as i64 * waves)
    }

    /// When a row queued at `created_at` is tried again after `attempts` failed attempts,
    /// or `None`: its retries are over.
    pub fn retry_at(&self, attempts: i64, created_at: i64, now: i64) -> Option<i64> {
        (now - created_at < self.give_up_after.as_secs() as i64)
            .then(|| now + backoff_seconds(self.retry_base, attempts))
    }
}

/// After a delivery ends, how long [`run`] waits for others to end before it claims again
/// (a claim reads only what it takes, so claiming per delivery costs little; this gathers
/// the endings of one burst).
const GATHER_ENDINGS: Duration = Duration::from_millis(1);

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

    /// Claims at most `limit` due rows for this instance.
    async fn claim(&self, limit: i64) -> Result<Vec<Self::Claimed>, sqlx::Error>;

    /// Delivers one claimed row and records the outcome.
    async fn deliver(&self, claimed: Self::Claimed);
}

/// Works the outbox until `stop` turns true: rows are claimed only as delivery slots free
/// up (at most `concurrency` in flight), so a claimed row is worked at once and never waits
/// behind a slow one past its lease, and one slow target does not hold back the rest. On
/// stop, what is in flight finishes.
pub async fn run<C: Courier>(courier: Arc<C>, mut stop: watch::Receiver<bool>) {
    let schedule = *courier.schedule();
    let concurrency = schedule.concurrency.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    // Told when a delivery ends: a round that claimed less than it wanted (a target at its
    // cap of rows in flight) claims again then, not a whole poll later.
    let finished = Arc::new(tokio::sync::Notify::new());
    loop {
        if *stop.borrow() {
            break;
        }
        courier.before_round().await;
        let free = slots.available_permits();
        if free == 0 {
            // Every slot busy: wait for one (or the stop).
            tokio::select! {
                permit = slots.clone().acquire_owned() => drop(permit),
                _ = stop.changed() => {}
            }
            continue;
        }
        let wanted = (free as i64).min(schedule.claimable());
        let (pause, wake_when_one_ends) = match courier.claim(wanted).await {
            Ok(claimed) => {
                let full = claimed.len() as i64 >= wanted;
                for row in claimed {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        break;
                    };
                    let (courier, finished) = (courier.clone(), finished.clone());
                    tokio::spawn(async move {
                        courier.deliver(row).await;
                        drop(permit);
                        finished.notify_one();
                    });
                }
                if full {
                    (Duration::ZERO, false)
                } else {
                    // Fewer than wanted: nothing more is due, or what is due waits for
                    // room at its target, which a delivery's end makes (one that ended
                    // before the wait left its notice behind, so none is missed).
                    (schedule.poll, true)
                }
            }
            Err(error) => {
                tracing::warn!(%error, what = C::WHAT, "a delivery round failed");
                (schedule.poll * 4, false)
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                // Those that end within a millisecond of it are claimed for together.
                _ = async {
                    finished.notified().await;
                    tokio::time::sleep(GATHER_ENDINGS).await;
                }, if wake_when_one_ends => {}
                _ = stop.changed() => {}
            }
        }
    }
    // Let what is in flight finish (each attempt is bounded by its timeout).
    let _ = slots.acquire_many(concurrency as u32).await;
}

/// One round: claims what fits in a lease and delivers it, `concurrency` at a time.
/// Returns how many it claimed.
pub async fn round<C: Courier>(courier: &C) -> Result<usize, sqlx::Error> {
    let claimed = courier.claim(courier.schedule().claimable()).await?;
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

/// Which rows of which table an outbox claims. Every field is the caller's constant,
/// never input.
#[derive(Debug, Clone, Copy)]
pub struct Queue {
    pub table: &'static str,
    /// The status of rows still to do.
    pub due_status: &'static str,
    /// At most so many rows in flight per group (one slow target does not take every slot).
    pub per_group: Option<PerGroup>,
    /// A condition a row must meet to be claimed (`"1 = 1"`: every due row); it may use
    /// `$1` (the product's time) and `$2` (real time).
    pub filter: &'static str,
}

/// Rows grouped by a column (a webhook delivery's endpoint), with a cap on each group's rows
/// in flight across every instance.
#[derive(Debug, Clone, Copy)]
pub struct PerGroup {
    /// The column that names a row's group.
    pub column: &'static str,
    /// A query listing the ids of the groups that may have rows due (few: they are read
    /// every claim).
    pub groups: &'static str,
    /// Rows in flight per group at the most.
    pub most: i64,
}

/// Claims up to `limit` rows of the queue that are due at `now` (the product's clock) and
/// not leased by anyone (real time); returns their ids.
pub async fn claim_due(
    db: &Database,
    queue: &Queue,
    owner: &str,
    schedule: &Schedule,
    limit: i64,
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    let Queue {
        table,
        due_status,
        per_group,
        filter,
    } = *queue;
    let (lease, batch) = (schedule.lease, limit.min(schedule.claimable()));
    let real = real_now();
    // Every statement that says what is due binds `now` as $1 and real time as $2 (the
    // filter may use them too).
    let due = format!(
        "status = '{due_status}' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $2) AND ({filter})"
    );
    let Some(group) = per_group else {
        return sqlx::query_scalar(&format!(
            "UPDATE {table} SET lease_owner = $3, lease_until = $4 WHERE id IN \
             (SELECT id FROM {table} WHERE {due} ORDER BY next_attempt_at, id LIMIT $5) \
             AND status = '{due_status}' AND (lease_until IS NULL OR lease_until < $2) RETURNING id"
        ))
        .bind(now)
        .bind(real)
        .bind(owner)
        .bind(real + lease.as_secs() as i64)
        .bind(batch)
        .fetch_all(db.pool())
        .await;
    };
    // Nothing due (no endpoint, or all of it in flight): no write lock taken.
    let anything_due: Option<i64> = sqlx::query_scalar(&format!("SELECT id FROM {table} WHERE {due} LIMIT 1"))
        .bind(now)
        .bind(real)
        .fetch_optional(db.pool())
        .await?;
    if anything_due.is_none() {
        return Ok(Vec::new());
    }
    // Each group's room (its cap less its rows in flight) is filled with its rows due
    // first, then the earliest of those are leased. Every read takes only what it needs
    // through an index: the rows in flight, and each group's next due rows in order; a
    // claim costs the same with ten or ten thousand rows due. No other instance claims
    // between the count and the lease: on SQLite the write lock is held throughout, on
    // PostgreSQL (where each statement sees what others committed meanwhile) the claims of
    // this table take turns on a transaction-scoped advisory lock.
    let PerGroup { column, groups, most } = group;
    let mut tx = db.begin().await?;
    if db.engine() == Engine::Postgres {
        // (Its void answer is not a type every driver reads: the statement answers a count.)
        sqlx::query("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS taken")
            .bind(advisory_key(table))
            .execute(&mut *tx)
            .await?;
    }
    let in_flight: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT {column}, COUNT(*) FROM {table} WHERE status = '{due_status}' AND lease_until >= $1 GROUP BY {column}"
    ))
    .bind(real)
    .fetch_all(&mut *tx)
    .await?;
    let group_ids: Vec<i64> = sqlx::query_scalar(groups).fetch_all(&mut *tx).await?;
    let mut candidates: Vec<(i64, i64)> = Vec::new();
    for id in group_ids {
        let busy = in_flight.iter().find(|(g, _)| *g == id).map_or(0, |(_, n)| *n);
        let room = (most - busy).min(batch);
        if room <= 0 {
            continue;
        }
        let due_rows: Vec<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT next_attempt_at, id FROM {table} WHERE {due} AND {column} = $3 \
             ORDER BY next_attempt_at, id LIMIT $4"
        ))
        .bind(now)
        .bind(real)
        .bind(id)
        .bind(room)
        .fetch_all(&mut *tx)
        .await?;
        candidates.extend(due_rows);
    }
    candidates.sort_unstable();
    candidates.truncate(usize::try_from(batch).unwrap_or(0));
    if candidates.is_empty() {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let list = candidates
        .iter()
        .map(|(_, id)| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let claimed = sqlx::query_scalar(&format!(
        "UPDATE {table} SET lease_owner = $1, lease_until = $2 WHERE id IN ({list}) \
         AND status = '{due_status}' AND (lease_until IS NULL OR lease_until < $3) RETURNING id"
    ))
    .bind(owner)
    .bind(real + lease.as_secs() as i64)
    .bind(real)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// The advisory lock PostgreSQL's claims of `table` take turns on: the table's name hashed
/// (FNV-1a), the same in every instance and every version.
fn advisory_key(table: &str) -> i64 {
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash as i64
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
    fn a_round_claims_only_what_fits_in_its_lease() {
        let webhooks = crate::platform::outbox::WEBHOOK_SCHEDULE;
        // 30 s lease, 10 s attempts, 32 at once: two waves of 32 fit (20 s), not 200.
        assert_eq!(webhooks.claimable(), 64);
        let tight = Schedule {
            lease: Duration::from_secs(11),
            ..webhooks
        };
        assert_eq!(tight.claimable(), 32, "one wave at least");
        let mail = crate::mail::MailSettings::new(None, "a@b.example".into(), "http://x".into()).schedule;
        // 60 s lease, 20 s attempts, 16 at once: two waves (40 s).
        assert_eq!(mail.claimable(), 2 * mail.concurrency as i64);
    }

    /// A queue of `total` rows of which at most `cap` may be in flight at once (as one
    /// webhook endpoint's deliveries are), delivered in 5 ms each.
    struct CappedQueue {
        schedule: Schedule,
        total: usize,
        cap: usize,
        claimed: std::sync::Mutex<(usize, usize)>,
        delivered: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Courier for CappedQueue {
        type Claimed = ();
        const WHAT: &'static str = "test row";

        fn schedule(&self) -> &Schedule {
            &self.schedule
        }

        async fn claim(&self, limit: i64) -> Result<Vec<()>, sqlx::Error> {
            let mut state = self.claimed.lock().unwrap();
            let (claimed, in_flight) = *state;
            let take = (limit as usize).min(self.cap - in_flight).min(self.total - claimed);
            *state = (claimed + take, in_flight + take);
            Ok(vec![(); take])
        }

        async fn deliver(&self, _: ()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.claimed.lock().unwrap().1 -= 1;
            self.delivered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn rows_held_back_by_their_targets_cap_go_as_soon_as_room_is_made() {
        // A poll of an hour: only a delivery's end can start the next claim in time.
        let queue = Arc::new(CappedQueue {
            schedule: Schedule {
                poll: Duration::from_secs(3600),
                ..crate::platform::outbox::WEBHOOK_SCHEDULE
            },
            total: 40,
            cap: 8,
            claimed: std::sync::Mutex::new((0, 0)),
            delivered: Default::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(run(queue.clone(), stopped));
        let every_row = async {
            while queue.delivered.load(std::sync::atomic::Ordering::SeqCst) < 40 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let result = tokio::time::timeout(Duration::from_secs(30), every_row).await;
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .unwrap()
            .unwrap();
        assert!(
            result.is_ok(),
            "{} of 40 rows delivered: the loop waited a poll for room at the target",
            queue.delivered.load(std::sync::atomic::Ordering::SeqCst)
        );
    }

    #[test]
    fn retries_double_up_to_an_hour() {
        let base = Duration::from_secs(5);
        let waits: Vec<i64> = (1..=12).map(|n| backoff_seconds(base, n)).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(backoff_seconds(Duration::ZERO, 1), 1);
    }
}
