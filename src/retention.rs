//! What is kept, and for how long: finished webhook deliveries and their events, sent (or
//! given up) emails, ended invitations and idle lock rows are pruned after `RETENTION_DAYS`
//! in small batches, in the background, so no table only grows. The audit trails
//! (connection events, token reads, proxied calls, the security log) are append-only and
//! kept; sessions, authorization requests and log-in attempts have their own shorter
//! sweeps.

use crate::db::Database;
use crate::time::Clock;

/// Rows deleted per statement: short transactions that never hold the database for long.
const BATCH: i64 = 500;

/// `RETENTION_DAYS` when not set.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

/// What one pass removed, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: u64,
    pub events: u64,
    pub emails: u64,
    pub invitations: u64,
    pub locks: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.deliveries + self.events + self.emails + self.invitations + self.locks
    }
}

/// One prunable set: the table, its key, and which rows may go (`$1` is the cutoff).
struct Prunable {
    table: &'static str,
    key: &'static str,
    condition: &'static str,
}

impl Prunable {
    /// The rows of `table` (keyed by `id`) that meet `condition`.
    const fn by_id(table: &'static str, condition: &'static str) -> Prunable {
        Prunable {
            table,
            key: "id",
            condition,
        }
    }
}

const DELIVERIES: Prunable = Prunable::by_id(
    "webhook_deliveries",
    "status IN ('delivered', 'failed') AND created_at < $1",
);
/// Events whose deliveries are all gone (an event no endpoint wanted has none).
const EVENTS: Prunable = Prunable::by_id(
    "platform_events",
    "created_at < $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = platform_events.id)",
);
const EMAILS: Prunable = Prunable::by_id(
    "mail_outbox",
    "status IN ('sent', 'suppressed', 'failed') AND created_at < $1",
);
const INVITATIONS: Prunable = Prunable::by_id("operator_invitations", "expires_at < $1");
const LOCKS: Prunable = Prunable {
    table: "auth_locks",
    key: "lock_key",
    condition: "touched_at < $1",
};

#[derive(Debug, Clone)]
pub struct Retention {
    db: Database,
    clock: Clock,
    days: i64,
}

impl Retention {
    pub fn new(db: Database, clock: Clock, days: i64) -> Retention {
        Retention { db, clock, days }
    }

    pub fn days(&self) -> i64 {
        self.days
    }

    /// Deletes what is older than the retention, `BATCH` rows a statement, until nothing
    /// is left to delete.
    pub async fn prune(&self) -> Result<Pruned, sqlx::Error> {
        let cutoff = self.clock.now() - self.days * 86_400;
        Ok(Pruned {
            // Deliveries before their events (the events' rule needs them gone).
            deliveries: self.prune_all(&DELIVERIES, cutoff).await?,
            events: self.prune_all(&EVENTS, cutoff).await?,
            emails: self.prune_all(&EMAILS, cutoff).await?,
            invitations: self.prune_all(&INVITATIONS, cutoff).await?,
            // Lock rows only serialize concurrent attempts: a day without one is plenty.
            locks: self.prune_all(&LOCKS, self.clock.now() - 86_400).await?,
        })
    }

    async fn prune_all(&self, set: &Prunable, cutoff: i64) -> Result<u64, sqlx::Error> {
        let statement = format!(
            "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT {BATCH})",
            table = set.table,
            key = set.key,
            condition = set.condition,
        );
        let mut deleted = 0;
        loop {
            let done = {
                let _gate = self.db.write_gate().await;
                sqlx::query(&statement)
                    .bind(cutoff)
                    .execute(self.db.pool())
                    .await?
                    .rows_affected()
            };
            deleted += done;
            if done < BATCH as u64 {
                return Ok(deleted);
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
    }
}
