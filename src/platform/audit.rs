//! Who read which merchant's access token, and when: one row per key, connection and
//! minute, so that thousands of reads a second stay cheap.
//!
//! The first read of a (key, connection, minute) on an instance is written before the
//! token is handed out, so who read what, to the minute, is durable. Further reads in the
//! same minute are counted in memory and added to that row every second (and at
//! shutdown): a hard crash can lose at most a second of counts, never a reader. The table
//! is append-only (triggers refuse deletes and shrinking counts).

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use crate::db::Database;
use crate::time::Clock;

/// (key id, connection id, minute as unix seconds)
type Bucket = (String, i64, i64);

#[derive(Default)]
struct Counts {
    /// Buckets whose row this instance has written.
    written: HashSet<Bucket>,
    /// Reads not yet added to their row.
    pending: HashMap<Bucket, i64>,
}

/// Aggregated reads of one key in one minute.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRead {
    pub minute: i64,
    pub key_id: String,
    pub key_name: String,
    pub connection_id: i64,
    pub merchant_email: String,
    pub reads: i64,
}

#[derive(Clone)]
pub struct TokenReads {
    db: Database,
    clock: Clock,
    counts: Arc<Mutex<Counts>>,
}

impl std::fmt::Debug for TokenReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReads").finish_non_exhaustive()
    }
}

impl TokenReads {
    pub fn new(db: Database, clock: Clock) -> TokenReads {
        TokenReads {
            db,
            clock,
            counts: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one read of `connection_id`'s access token with `key_id`.
    pub async fn record(&self, key_id: &str, connection_id: i64) -> Result<(), sqlx::Error> {
        let now = self.clock.now();
        let bucket: Bucket = (key_id.to_string(), connection_id, now - now.rem_euclid(60));
        {
            let mut counts = self.lock();
            if counts.written.contains(&bucket) {
                *counts.pending.entry(bucket).or_default() += 1;
                return Ok(());
            }
        }
        sqlx::query(
            "INSERT INTO token_reads (key_id, connection_id, minute, reads) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (connection_id, minute, key_id) DO UPDATE SET reads = token_reads.reads + 1",
        )
        .bind(&bucket.0)
        .bind(bucket.1)
        .bind(bucket.2)
        .execute(self.db.pool())
        .await?;
        self.lock().written.insert(bucket);
        Ok(())
    }

    /// Adds the reads counted in memory to their rows; forgets buckets of past minutes.
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
        let pending = std::mem::take(&mut self.lock().pending);
        for ((key_id, connection_id, minute), reads) in pending {
            let result = sqlx::query(
                "UPDATE token_reads SET reads = reads + $1 WHERE connection_id = $2 AND minute = $3 AND key_id = $4",
            )
            .bind(reads)
            .bind(connection_id)
            .bind(minute)
            .bind(&key_id)
            .execute(self.db.pool())
            .await;
            if let Err(error) = result {
                // Kept for the next flush.
                *self.lock().pending.entry((key_id, connection_id, minute)).or_default() += reads;
                return Err(error);
            }
        }
        let now = self.clock.now();
        let current = now - now.rem_euclid(60);
        let mut counts = self.lock();
        let Counts { written, pending } = &mut *counts;
        written.retain(|bucket| bucket.2 >= current - 60 || pending.contains_key(bucket));
        Ok(())
    }

    /// The reads of one connection's token, newest minute first.
    pub async fn for_connection(&self, connection_id: i64, limit: i64) -> Result<Vec<TokenRead>, sqlx::Error> {
        self.query(Some(connection_id), None, limit).await
    }

    async fn query(
        &self,
        connection_id: Option<i64>,
        since: Option<i64>,
        limit: i64,
    ) -> Result<Vec<TokenRead>, sqlx::Error> {
        self.query_after(connection_id, since, None, limit).await
    }

    /// [`query`](Self::query) after a row (newest first: `minute` down, then connection
    /// and key up), for paging through every read.
    async fn query_after(
        &self,
        connection_id: Option<i64>,
        since: Option<i64>,
        after: Option<&TokenRead>,
        limit: i64,
    ) -> Result<Vec<TokenRead>, sqlx::Error> {
        sqlx::query_as::<_, TokenRead>(
            "SELECT r.minute, r.key_id, k.name AS key_name, r.connection_id, m.email AS merchant_email, r.reads \
             FROM token_reads r \
             JOIN api_keys k ON k.id = r.key_id JOIN connections c ON c.id = r.connection_id \
             JOIN merchants m ON m.id = c.merchant_id \
             WHERE ($1 IS NULL OR r.connection_id = $1) AND ($2 IS NULL OR r.minute >= $2) \
             AND ($4 IS NULL OR r.minute < $4 OR (r.minute = $4 AND (r.connection_id > $5 \
                  OR (r.connection_id = $5 AND r.key_id > $6)))) \
             ORDER BY r.minute DESC, r.connection_id, r.key_id LIMIT $3",
        )
        .bind(connection_id)
        .bind(since)
        .bind(limit)
        .bind(after.map(|a| a.minute))
        .bind(after.map(|a| a.connection_id).unwrap_or(0))
        .bind(after.map(|a| a.key_id.clone()).unwrap_or_default())
        .fetch_all(self.db.pool())
        .await
    }

    /// The reads as CSV (`minute,key_id,key_name,connection_id,merchant_email,reads`), for
    /// one connection or all, newest first, from `since` (unix seconds) on, streamed a page
    /// at a time ([`csv_pages`]).
    pub fn csv_stream(&self, connection_id: Option<i64>, since: Option<i64>) -> CsvChunks {
        let (reads, pending) = (self.clone(), self.clone());
        let page = move |after: Option<TokenRead>, limit| {
            let reads = reads.clone();
            async move { reads.query_after(connection_id, since, after.as_ref(), limit).await }
        };
        let flush = async move { pending.flush().await };
        csv_pages(HEADER, flush, page, csv_line, TokenRead::clone)
    }
}

/// An audit's CSV export as it is streamed: the header, then a page of rows at a time.
pub type CsvChunks = futures::stream::BoxStream<'static, Result<String, sqlx::Error>>;

/// The header of the reads' CSV export.
const HEADER: &str = "minute,key_id,key_name,connection_id,merchant_email,reads\n";

/// Rows per page of a streamed CSV export.
const CSV_PAGE: i64 = 1_000;

/// An audit's CSV export as a stream of chunks: `header`, then page after page, so that no
/// export is ever whole in memory. `flush` runs before the first page (what is still counted
/// in memory is written, so the export has it). `page(after, limit)` reads at most `limit`
/// rows after the row `after` (from the first for `None`), each written out by `line`;
/// after a full page, the next one reads on from `cursor` of its last row.
pub(crate) fn csv_pages<R, C, Flush, Page, PageFut>(
    header: &'static str,
    flush: Flush,
    page: Page,
    line: fn(&mut String, &R),
    cursor: fn(&R) -> C,
) -> CsvChunks
where
    R: Send + 'static,
    C: Send + 'static,
    Flush: std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'static,
    Page: Fn(Option<C>, i64) -> PageFut + Send + 'static,
    PageFut: std::future::Future<Output = Result<Vec<R>, sqlx::Error>> + Send,
{
    enum Step<F, C> {
        Header(F),
        /// The flush still to run (before the first page only), and the row to read after.
        Page(Option<F>, Option<C>),
        Done,
    }
    let chunks = futures::stream::try_unfold((Step::Header(flush), page), move |(step, page)| async move {
        match step {
            Step::Done => Ok(None),
            Step::Header(flush) => Ok(Some((header.to_string(), (Step::Page(Some(flush), None), page)))),
            Step::Page(flush, after) => {
                if let Some(flush) = flush {
                    flush.await?;
                }
                let rows = page(after, CSV_PAGE).await?;
                let mut lines = String::new();
                for row in &rows {
                    line(&mut lines, row);
                }
                let next = match rows.last() {
                    Some(last) if rows.len() as i64 == CSV_PAGE => Step::Page(None, Some(cursor(last))),
                    _ => Step::Done,
                };
                Ok(Some((lines, (next, page))))
            }
        }
    });
    Box::pin(chunks)
}

fn csv_line(out: &mut String, read: &TokenRead) {
    csv_reader_fields(
        out,
        read.minute,
        &read.key_id,
        &read.key_name,
        read.connection_id,
        &read.merchant_email,
    );
    let _ = writeln!(out, ",{}", read.reads);
}

/// The fields every audit's CSV line starts with (no newline): when, with which key (its id
/// and name), and whose connection.
pub(crate) fn csv_reader_fields(
    out: &mut String,
    at: i64,
    key_id: &str,
    key_name: &str,
    connection_id: i64,
    merchant_email: &str,
) {
    let _ = write!(
        out,
        "{},{},{},{},{}",
        crate::time::rfc3339(at),
        csv_field(key_id),
        csv_field(key_name),
        connection_id,
        csv_field(merchant_email)
    );
}

/// A CSV field, quoted when it needs to be, and never read as a formula by a spreadsheet.
pub(crate) fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
