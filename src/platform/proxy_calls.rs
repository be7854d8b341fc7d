//! The audit of the Airwallex proxy: every call the platform made through it (key,
//! connection, method, path, status, duration, bytes each way), never a body and never a
//! query. Calls are kept in memory and written in one transaction every second (and at
//! shutdown), so the proxy adds no write to each call; a hard crash can lose at most a
//! second of them. The table is append-only (triggers refuse updates and deletes).

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use super::audit::{csv_field, csv_pages, csv_reader_fields, CsvChunks};
use crate::db::Database;
use crate::time::Clock;

/// One proxied call as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProxyCall {
    pub key_id: String,
    pub connection_id: i64,
    pub method: String,
    /// The upstream path (`api/v1/…`), without its query.
    pub path: String,
    #[sqlx(try_from = "i64")]
    pub status: u16,
    pub duration_ms: i64,
    pub request_bytes: i64,
    pub response_bytes: i64,
    #[sqlx(rename = "created_at")]
    pub at: i64,
}

/// A recorded call with the key's name, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProxyCallLine {
    /// The row's id (the calls' order).
    pub id: i64,
    #[sqlx(flatten)]
    pub call: ProxyCall,
    pub key_name: String,
    #[sqlx(rename = "email")]
    pub merchant_email: String,
}

/// Calls kept in memory at most while the database cannot be written.
pub const MAX_PENDING: usize = 100_000;

/// The header of the calls' CSV export.
const HEADER: &str =
    "at,key_id,key_name,connection_id,merchant_email,method,path,status,duration_ms,request_bytes,response_bytes\n";

/// Rows written per statement when flushing.
const BATCH: usize = 200;

#[derive(Clone)]
pub struct ProxyCalls {
    db: Database,
    clock: Clock,
    pending: Arc<Mutex<VecDeque<ProxyCall>>>,
}

impl std::fmt::Debug for ProxyCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCalls").finish_non_exhaustive()
    }
}

impl ProxyCalls {
    pub fn new(db: Database, clock: Clock) -> ProxyCalls {
        ProxyCalls {
            db,
            clock,
            pending: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ProxyCall>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Records a call (written at the next flush). While the database cannot be written,
    /// at most [`MAX_PENDING`] calls wait; past that the oldest are dropped, and said so.
    pub fn record(&self, call: ProxyCall) {
        let mut pending = self.lock();
        if pending.len() >= MAX_PENDING {
            pending.pop_front();
            tracing::warn!("the proxy audit could not be written for a while: its oldest waiting call was dropped");
        }
        pending.push_back(call);
    }

    /// Writes the calls recorded since the last flush; on failure they are kept for the next.
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
        let calls: Vec<ProxyCall> = std::mem::take(&mut *self.lock()).into();
        if calls.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.write(&calls).await {
            let mut pending = self.lock();
            let newer = std::mem::replace(&mut *pending, calls.into());
            pending.extend(newer);
            let excess = pending.len().saturating_sub(MAX_PENDING);
            if excess > 0 {
                pending.drain(..excess);
                tracing::warn!(
                    dropped = excess,
                    "the proxy audit could not be written: its oldest calls were dropped"
                );
            }
            return Err(error);
        }
        Ok(())
    }

    async fn write(&self, calls: &[ProxyCall]) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        for chunk in calls.chunks(BATCH) {
            let mut sql = String::from(
                "INSERT INTO proxy_calls (key_id, connection_id, method, path, status, duration_ms, request_bytes, \
                 response_bytes, created_at) VALUES ",
            );
            for i in 0..chunk.len() {
                let n = i * 9;
                let _ = write!(
                    sql,
                    "{}(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    if i == 0 { "" } else { ", " },
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5,
                    n + 6,
                    n + 7,
                    n + 8,
                    n + 9
                );
            }
            let mut query = sqlx::query(&sql);
            for call in chunk {
                query = query
                    .bind(&call.key_id)
                    .bind(call.connection_id)
                    .bind(&call.method)
                    .bind(&call.path)
                    .bind(i64::from(call.status))
                    .bind(call.duration_ms)
                    .bind(call.request_bytes)
                    .bind(call.response_bytes)
                    .bind(call.at);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// One connection's calls, newest first.
    pub async fn for_connection(&self, connection_id: i64, limit: i64) -> Result<Vec<ProxyCallLine>, sqlx::Error> {
        self.query(Some(connection_id), None, None, limit).await
    }

    /// Calls newest first, those before the call `before_id` only when given.
    async fn query(
        &self,
        connection_id: Option<i64>,
        since: Option<i64>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ProxyCallLine>, sqlx::Error> {
        sqlx::query_as(
            "SELECT p.id, p.key_id, COALESCE(k.name, p.key_id) AS key_name, p.connection_id, m.email, p.method, p.path, \
             p.status, p.duration_ms, p.request_bytes, p.response_bytes, p.created_at FROM proxy_calls p \
             LEFT JOIN api_keys k ON k.id = p.key_id JOIN connections c ON c.id = p.connection_id \
             JOIN merchants m ON m.id = c.merchant_id \
             WHERE ($1 IS NULL OR p.connection_id = $1) AND ($2 IS NULL OR p.created_at >= $2) \
             AND ($4 IS NULL OR p.id < $4) ORDER BY p.id DESC LIMIT $3",
        )
        .bind(connection_id)
        .bind(since)
        .bind(limit)
        .bind(before_id)
        .fetch_all(self.db.pool())
        .await
    }

    /// The calls as CSV (`at,key_id,key_name,connection_id,merchant_email,method,path,status,
    /// duration_ms,request_bytes,response_bytes`), for one connection or all, newest first,
    /// from `since` (unix seconds) on, streamed a page at a time ([`csv_pages`]).
    pub fn csv_stream(&self, connection_id: Option<i64>, since: Option<i64>) -> CsvChunks {
        let (calls, pending) = (self.clone(), self.clone());
        let page = move |before_id: Option<i64>, limit| {
            let calls = calls.clone();
            async move { calls.query(connection_id, since, before_id, limit).await }
        };
        let flush = async move { pending.flush().await };
        csv_pages(HEADER, flush, page, csv_line, |line: &ProxyCallLine| line.id)
    }
}

fn csv_line(out: &mut String, line: &ProxyCallLine) {
    let call = &line.call;
    csv_reader_fields(
        out,
        call.at,
        &call.key_id,
        &line.key_name,
        call.connection_id,
        &line.merchant_email,
    );
    let _ = writeln!(
        out,
        ",{},{},{},{},{},{}",
        call.method,
        csv_field(&call.path),
        call.status,
        call.duration_ms,
        call.request_bytes,
        call.response_bytes
    );
}
