//! The operators' trends: connections by status per day over 30 days (from the event
//! log), refreshes per hour over 48 hours by outcome, refresh-token expiries per day over
//! the next 60 days.
//!
//! Past days and hours never change (events are appended with the time they happen), so
//! each one is computed from the log once, when it has been over for [`SETTLE_SECONDS`],
//! and kept in a rollup table; the dashboard then reads a few dozen rollup rows plus the
//! unsettled present. The expiry forecast is counted at most once a minute.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sqlx::Row;

use crate::db::Database;
use crate::time::Clock;

pub const DAYS: i64 = 30;
pub const HOURS: i64 = 48;
pub const EXPIRY_DAYS: i64 = 60;
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// A period is rolled up once it has been over this long (a transaction that took its
/// time from the clock just before the end has committed by then).
pub const SETTLE_SECONDS: i64 = 300;

/// The rolled-up days and hours from `$1` to before `$2`.
const ROLLED_UP_DAYS: &str =
    "SELECT day, connected, needs_reconnect, disconnected FROM trend_status_days WHERE day >= $1 AND day < $2";
const ROLLED_UP_HOURS: &str =
    "SELECT hour, ok, transient, rejected FROM trend_refresh_hours WHERE hour >= $1 AND hour < $2";

/// Event kinds that set a connection's status, and the status each sets.
const STATUS_KINDS: &str = "('connected', 'reconnected', 'needs_reconnect', 'revoked', 'disconnected')";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusDay {
    /// Midnight (UTC) starting the day; the counts are as the day ended (today: now).
    pub day: i64,
    pub connected: i64,
    pub needs_reconnect: i64,
    pub disconnected: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshHour {
    pub hour: i64,
    pub ok: i64,
    /// Failed for now (Airwallex unreachable, 5xx); the connection stays.
    pub transient: i64,
    /// Refused for good: the connection needs reconnection.
    pub rejected: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryDay {
    pub day: i64,
    pub count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrendData {
    /// Oldest first; the last is today.
    pub status_days: Vec<StatusDay>,
    /// Oldest first; the last is the current hour.
    pub refresh_hours: Vec<RefreshHour>,
    /// From today on.
    pub expiry_days: Vec<ExpiryDay>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Connected,
    NeedsReconnect,
    Disconnected,
}

fn status_of(kind: &str) -> Option<Status> {
    match kind {
        "connected" | "reconnected" => Some(Status::Connected),
        "needs_reconnect" | "revoked" => Some(Status::NeedsReconnect),
        "disconnected" => Some(Status::Disconnected),
        _ => None,
    }
}

fn status_of_row(status: &str) -> Status {
    match status {
        "connected" => Status::Connected,
        "needs_reconnect" => Status::NeedsReconnect,
        _ => Status::Disconnected,
    }
}

fn tally(day: i64, states: &HashMap<i64, Status>) -> StatusDay {
    let mut counts = StatusDay {
        day,
        ..Default::default()
    };
    for status in states.values() {
        match status {
            Status::Connected => counts.connected += 1,
            Status::NeedsReconnect => counts.needs_reconnect += 1,
            Status::Disconnected => counts.disconnected += 1,
        }
    }
    counts
}

/// The expiry forecast as last counted (a day-level forecast does not need to be newer
/// than a minute, and counting it reads every connected row's expiry).
#[derive(Debug, Clone)]
struct Forecast {
    counted_at: std::time::Instant,
    today: i64,
    days: Vec<ExpiryDay>,
}

/// A forecast this fresh is served as it is.
const FORECAST_FRESH: std::time::Duration = std::time::Duration::from_secs(60);
/// A forecast this fresh is served while a newer one is counted in the background; an
/// older one is counted again before the page is served.
const FORECAST_USABLE: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct Trends {
    db: Database,
    clock: Clock,
    forecast: Arc<tokio::sync::Mutex<Option<Forecast>>>,
    recounting: Arc<AtomicBool>,
}

impl Trends {
    pub fn new(db: Database, clock: Clock) -> Trends {
        Trends {
            db,
            clock,
            forecast: Arc::default(),
            recounting: Arc::default(),
        }
    }

    pub async fn load(&self) -> Result<TrendData, sqlx::Error> {
        let now = self.clock.now();
        Ok(TrendData {
            status_days: self.status_days(now).await?,
            refresh_hours: self.refresh_hours(now).await?,
            expiry_days: self.forecast(now).await?,
        })
    }

    async fn status_days(&self, now: i64) -> Result<Vec<StatusDay>, sqlx::Error> {
        let today = now - now.rem_euclid(DAY);
        let first = today - (DAYS - 1) * DAY;
        // Days that ended at least SETTLE_SECONDS ago are rolled up.
        let settled_end = now - SETTLE_SECONDS;
        let mut stored = self
            .rolled_up(ROLLED_UP_DAYS, first, today, |day: &StatusDay| day.day)
            .await?;
        let days: Vec<i64> = (0..DAYS).map(|i| first + i * DAY).collect();
        // Past days missing from the rollup (after a deployment, or just after midnight)
        // are replayed from the log.
        let past = &days[..days.len() - 1];
        if let Some(&from) = past.iter().find(|d| !stored.contains_key(d)) {
            for day in self.replay(from, past, now).await? {
                if day.day + DAY <= settled_end {
                    sqlx::query(
                        "INSERT INTO trend_status_days (day, connected, needs_reconnect, disconnected) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (day) DO NOTHING",
                    )
                    .bind(day.day)
                    .bind(day.connected)
                    .bind(day.needs_reconnect)
                    .bind(day.disconnected)
                    .execute(self.db.pool())
                    .await?;
                }
                stored.insert(day.day, day);
            }
        }
        // Today: the connections as they are now (from the counters the triggers keep).
        // Each status change is written with its event, and a row that never connected has
        // no status event, so this is what replaying the log up to now gives.
        let mut live = StatusDay {
            day: today,
            ..Default::default()
        };
        for row in
            sqlx::query("SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM connection_status_counts WHERE ever_connected = 1 GROUP BY status")
                .fetch_all(self.db.pool())
                .await?
        {
            let n: i64 = row.try_get("n")?;
            match status_of_row(&row.try_get::<String, _>("status")?) {
                Status::Connected => live.connected = n,
                Status::NeedsReconnect => live.needs_reconnect = n,
                Status::Disconnected => live.disconnected = n,
            }
        }
        stored.insert(today, live);
        Ok(days
            .iter()
            .map(|d| {
                stored.get(d).copied().unwrap_or(StatusDay {
                    day: *d,
                    ..Default::default()
                })
            })
            .collect())
    }

    /// The rollup rows from `first` to before `end` (`sql` binds them as `$1` and `$2`), by
    /// the day or hour each counts (`start`).
    async fn rolled_up<T>(
        &self,
        sql: &str,
        first: i64,
        end: i64,
        start: impl Fn(&T) -> i64,
    ) -> Result<HashMap<i64, T>, sqlx::Error>
    where
        T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let rows = sqlx::query_as::<sqlx::Any, T>(sql)
            .bind(first)
            .bind(end)
            .fetch_all(self.db.pool())
            .await?;
        Ok(rows.into_iter().map(|row| (start(&row), row)).collect())
    }

    /// Replays the log from `from` (a midnight) to now: each connection's status as each
    /// day in `days` at or after `from` ended (today: now).
    async fn replay(&self, from: i64, days: &[i64], now: i64) -> Result<Vec<StatusDay>, sqlx::Error> {
        let mut states: HashMap<i64, Status> = HashMap::new();
        let baseline = sqlx::query(&format!(
            "SELECT e.connection_id, e.kind FROM connection_events e WHERE e.id IN \
             (SELECT MAX(id) FROM connection_events WHERE kind IN {STATUS_KINDS} AND created_at < $1 GROUP BY connection_id)"
        ))
        .bind(from)
        .fetch_all(self.db.pool())
        .await?;
        for row in baseline {
            if let Some(status) = status_of(&row.try_get::<String, _>("kind")?) {
                states.insert(row.try_get("connection_id")?, status);
            }
        }
        let events = sqlx::query(&format!(
            "SELECT connection_id, kind, created_at FROM connection_events \
             WHERE kind IN {STATUS_KINDS} AND created_at >= $1 AND created_at <= $2 ORDER BY created_at, id"
        ))
        .bind(from)
        .bind(now)
        .fetch_all(self.db.pool())
        .await?;
        let mut events = events.iter().peekable();
        let mut out = Vec::new();
        for &day in days.iter().filter(|d| **d >= from) {
            let end = (day + DAY).min(now + 1);
            while let Some(row) = events.peek() {
                let at: i64 = row.try_get("created_at")?;
                if at >= end {
                    break;
                }
                if let Some(status) = status_of(&row.try_get::<String, _>("kind")?) {
                    states.insert(row.try_get("connection_id")?, status);
                }
                events.next();
            }
            out.push(tally(day, &states));
        }
        Ok(out)
    }

    async fn refresh_hours(&self, now: i64) -> Result<Vec<RefreshHour>, sqlx::Error> {
        let current = now - now.rem_euclid(HOUR);
        let first = current - (HOURS - 1) * HOUR;
        // Hours that ended at least SETTLE_SECONDS ago are rolled up.
        let settled_end = now - SETTLE_SECONDS;
        let mut stored = self
            .rolled_up(ROLLED_UP_HOURS, first, current, |hour: &RefreshHour| hour.hour)
            .await?;
        let hours: Vec<i64> = (0..HOURS).map(|i| first + i * HOUR).collect();
        if let Some(&from) = hours.iter().find(|h| !stored.contains_key(h)) {
            let mut counted: HashMap<i64, RefreshHour> = HashMap::new();
            for row in sqlx::query(
                "SELECT created_at / 3600 AS hour, kind, COUNT(*) AS n FROM connection_events \
                 WHERE kind IN ('refreshed', 'refresh_failed', 'needs_reconnect') AND created_at >= $1 AND created_at <= $2 \
                 GROUP BY created_at / 3600, kind",
            )
            .bind(from)
            .bind(now)
            .fetch_all(self.db.pool())
            .await?
            {
                let hour = row.try_get::<i64, _>("hour")? * HOUR;
                let n: i64 = row.try_get("n")?;
                let entry = counted.entry(hour).or_insert(RefreshHour {
                    hour,
                    ..Default::default()
                });
                match row.try_get::<String, _>("kind")?.as_str() {
                    "refreshed" => entry.ok += n,
                    "refresh_failed" => entry.transient += n,
                    _ => entry.rejected += n,
                }
            }
            let missing: Vec<i64> = hours
                .iter()
                .copied()
                .filter(|h| *h >= from && !stored.contains_key(h))
                .collect();
            for hour in missing {
                let value = counted.get(&hour).copied().unwrap_or(RefreshHour {
                    hour,
                    ..Default::default()
                });
                if hour + HOUR <= settled_end {
                    sqlx::query(
                        "INSERT INTO trend_refresh_hours (hour, ok, transient, rejected) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (hour) DO NOTHING",
                    )
                    .bind(hour)
                    .bind(value.ok)
                    .bind(value.transient)
                    .bind(value.rejected)
                    .execute(self.db.pool())
                    .await?;
                }
                stored.insert(hour, value);
            }
        }
        Ok(hours.iter().map(|h| stored[h]).collect())
    }

    /// The expiry forecast: counted at most once a minute, recounted in the background
    /// while a recent one is served.
    async fn forecast(&self, now: i64) -> Result<Vec<ExpiryDay>, sqlx::Error> {
        let today = now - now.rem_euclid(DAY);
        let mut cached = self.forecast.lock().await;
        if let Some(forecast) = cached.as_ref().filter(|f| f.today == today) {
            let age = forecast.counted_at.elapsed();
            if age < FORECAST_FRESH {
                return Ok(forecast.days.clone());
            }
            if age < FORECAST_USABLE && !self.recounting.swap(true, Ordering::SeqCst) {
                let trends = self.clone();
                tokio::spawn(async move {
                    match trends.expiry_days(trends.clock.now()).await {
                        Ok(days) => {
                            *trends.forecast.lock().await = Some(Forecast {
                                counted_at: std::time::Instant::now(),
                                today,
                                days,
                            })
                        }
                        Err(error) => tracing::warn!(%error, "the expiry forecast could not be counted"),
                    }
                    trends.recounting.store(false, Ordering::SeqCst);
                });
                return Ok(forecast.days.clone());
            }
            if age < FORECAST_USABLE {
                return Ok(forecast.days.clone());
            }
        }
        let days = self.expiry_days(now).await?;
        *cached = Some(Forecast {
            counted_at: std::time::Instant::now(),
            today,
            days: days.clone(),
        });
        Ok(days)
    }

    /// Counts the expiry forecast now (what the background recount does).
    pub async fn count_forecast(&self) -> Result<Vec<ExpiryDay>, sqlx::Error> {
        self.expiry_days(self.clock.now()).await
    }

    async fn expiry_days(&self, now: i64) -> Result<Vec<ExpiryDay>, sqlx::Error> {
        let today = now - now.rem_euclid(DAY);
        let mut counts: HashMap<i64, i64> = HashMap::new();
        // The expression matches the index on (status, COALESCE(refresh_expires_at, …)).
        for row in sqlx::query(
            "SELECT COALESCE(refresh_expires_at, 9000000000000000000) / 86400 AS day, COUNT(*) AS n FROM connections \
             WHERE status = 'connected' AND COALESCE(refresh_expires_at, 9000000000000000000) >= $1 \
             AND COALESCE(refresh_expires_at, 9000000000000000000) < $2 \
             GROUP BY COALESCE(refresh_expires_at, 9000000000000000000) / 86400",
        )
        .bind(now)
        .bind(today + EXPIRY_DAYS * DAY)
        .fetch_all(self.db.pool())
        .await?
        {
            counts.insert(row.try_get::<i64, _>("day")? * DAY, row.try_get("n")?);
        }
        Ok((0..EXPIRY_DAYS)
            .map(|i| {
                let day = today + i * DAY;
                ExpiryDay {
                    day,
                    count: counts.get(&day).copied().unwrap_or(0),
                }
            })
            .collect())
    }
}
