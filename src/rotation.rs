//! Re-encrypting every sealed value under the current key, online: while the app serves,
//! in batches, resumable (it only ever looks for values under another key), with progress.
//! A row changed meanwhile (a refresh writes its new tokens under the current key
//! anyway) is left alone: each rewrite is conditioned on the row's generation and key id.
//! Afterwards no value needs a retired key, and the retired key can be dropped.

use sqlx::Row;

use crate::crypto::{associated_data, TokenCipher};
use crate::db::Database;

/// Rows re-encrypted per batch.
const BATCH: i64 = 500;

/// Where a rotation stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Values found under another key when the rotation started.
    pub total: i64,
    /// Rows re-encrypted so far.
    pub rotated: i64,
    /// Rows someone else rewrote between this rotation's read and its write (a refresh:
    /// already under the current key). Rows refreshed before the rotation reached them are
    /// not visited at all, so `rotated + changed_meanwhile` may stay below `total`.
    pub changed_meanwhile: i64,
    /// Rows whose key is not configured at all (neither current nor retired).
    pub unreadable: i64,
}

impl Progress {
    /// Counts a conditional re-encryption: written, or changed by someone else meanwhile.
    fn written(&mut self, rows: u64) {
        if rows == 1 {
            self.rotated += 1;
        } else {
            self.changed_meanwhile += 1;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Counts the sealed values not under `current_key_id`.
pub async fn remaining(db: &Database, current_key_id: &str) -> Result<i64, sqlx::Error> {
    let connections: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE key_id IS NOT NULL AND key_id <> $1")
            .bind(current_key_id)
            .fetch_one(db.pool())
            .await?;
    // A link's context is JSON with `"sealed":"<key id>.…"`.
    let invitations: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM mail_outbox WHERE kind IN ('invitation', 'verify_email', 'password_reset') \
         AND status = 'queued' AND context NOT LIKE '%\"sealed\":\"' || $1 || '.%'",
    )
    .bind(current_key_id)
    .fetch_one(db.pool())
    .await?;
    Ok(connections + invitations + count_sealed(db, current_key_id).await?)
}

/// Re-encrypts every sealed value under the cipher's current key: every connection's
/// tokens, every pending authorization's PKCE verifier, every second-factor secret, every
/// webhook endpoint's signing secret and every invitation link waiting to be sent,
/// reporting progress after each batch.
pub async fn rotate(
    db: &Database,
    cipher: &TokenCipher,
    mut report: impl FnMut(&Progress),
) -> Result<Progress, RotationError> {
    let current = cipher.current_key_id().to_string();
    let mut progress = Progress {
        total: remaining(db, &current).await?,
        ..Progress::default()
    };
    report(&progress);
    rotate_connections(db, cipher, &current, &mut progress, &mut report).await?;
    for column in &SEALED_COLUMNS {
        rotate_column(db, cipher, &current, &mut progress, column).await?;
    }
    rotate_invitations(db, cipher, &current, &mut progress).await?;
    report(&progress);
    Ok(progress)
}

fn reseal(
    cipher: &TokenCipher,
    key_id: &str,
    blob: Option<Vec<u8>>,
    aad: &[u8],
) -> Result<Option<Vec<u8>>, crate::crypto::CryptoError> {
    blob.map(|blob| {
        cipher
            .decrypt(key_id, &blob, aad)
            .map(|plain| cipher.encrypt(&plain, aad))
    })
    .transpose()
}

async fn rotate_connections(
    db: &Database,
    cipher: &TokenCipher,
    current: &str,
    progress: &mut Progress,
    report: &mut impl FnMut(&Progress),
) -> Result<(), sqlx::Error> {
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT id, generation, key_id, access_token, refresh_token FROM connections \
             WHERE key_id IS NOT NULL AND key_id <> $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(current)
        .bind(after)
        .bind(BATCH)
        .fetch_all(db.pool())
        .await?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.try_get("id")?;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let generation: i64 = row.try_get("generation")?;
            let key_id: String = row.try_get("key_id")?;
            let sealed = reseal(
                cipher,
                &key_id,
                row.try_get("access_token")?,
                &associated_data("connections", id, "access_token"),
            )
            .and_then(|access| {
                reseal(
                    cipher,
                    &key_id,
                    row.try_get("refresh_token").unwrap_or_default(),
                    &associated_data("connections", id, "refresh_token"),
                )
                .map(|refresh| (access, refresh))
            });
            let Ok((access, refresh)) = sealed else {
                tracing::error!(connection_id = id, %key_id, "a stored token cannot be read with any configured key");
                progress.unreadable += 1;
                continue;
            };
            let written = sqlx::query(
                "UPDATE connections SET key_id = $1, access_token = $2, refresh_token = $3 \
                 WHERE id = $4 AND generation = $5 AND key_id = $6",
            )
            .bind(current)
            .bind(access)
            .bind(refresh)
            .bind(id)
            .bind(generation)
            .bind(&key_id)
            .execute(db.pool())
            .await?;
            progress.written(written.rows_affected());
        }
        report(progress);
    }
}

/// A sealed column outside `connections`: one blob per row under the row's `key_id`.
struct SealedColumn {
    table: &'static str,
    /// The row's key (text or a whole number).
    id: &'static str,
    blob: &'static str,
    /// Rows that still matter (e.g. OAuth states not used yet).
    only: &'static str,
    aad: fn(&RowId) -> Vec<u8>,
}

enum RowId {
    Int(i64),
    Text(String),
}

impl RowId {
    fn read(row: &sqlx::any::AnyRow, column: &str) -> Result<RowId, sqlx::Error> {
        match row.try_get::<i64, _>(column) {
            Ok(id) => Ok(RowId::Int(id)),
            Err(_) => Ok(RowId::Text(row.try_get(column)?)),
        }
    }

    fn int(&self) -> i64 {
        match self {
            RowId::Int(id) => *id,
            RowId::Text(_) => 0,
        }
    }
}

/// Every sealed column besides the connections' tokens. A value added later gets a line
/// here (and a test that rotates, drops the old key and still reads it).
const SEALED_COLUMNS: [SealedColumn; 3] = [
    SealedColumn {
        table: "oauth_states",
        id: "state_hash",
        blob: "pkce_verifier",
        only: "consumed_at IS NULL",
        aad: |id| match id {
            RowId::Text(hash) => crate::oauth::verifier_aad(hash),
            RowId::Int(_) => Vec::new(),
        },
    },
    SealedColumn {
        table: "second_factors",
        id: "account_id",
        blob: "secret",
        only: "1 = 1",
        aad: |id| associated_data("second_factors", id.int(), "secret"),
    },
    SealedColumn {
        table: "webhook_endpoints",
        id: "id",
        blob: "secret",
        only: "1 = 1",
        aad: |id| associated_data("webhook_endpoints", id.int(), "secret"),
    },
];

async fn count_sealed(db: &Database, current: &str) -> Result<i64, sqlx::Error> {
    let mut total = 0;
    for column in &SEALED_COLUMNS {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE key_id <> $1 AND {}",
            column.table, column.only
        ))
        .bind(current)
        .fetch_one(db.pool())
        .await?;
        total += n;
    }
    Ok(total)
}

async fn rotate_column(
    db: &Database,
    cipher: &TokenCipher,
    current: &str,
    progress: &mut Progress,
    column: &SealedColumn,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {id}, key_id, {blob} FROM {table} WHERE key_id <> $1 AND {only}",
        id = column.id,
        blob = column.blob,
        table = column.table,
        only = column.only
    ))
    .bind(current)
    .fetch_all(db.pool())
    .await?;
    let update = format!(
        "UPDATE {table} SET key_id = $1, {blob} = $2 WHERE {id} = $3 AND key_id = $4",
        table = column.table,
        blob = column.blob,
        id = column.id
    );
    for row in rows {
        let id = RowId::read(&row, column.id)?;
        let key_id: String = row.try_get("key_id")?;
        let Ok(Some(sealed)) = reseal(cipher, &key_id, Some(row.try_get(column.blob)?), &(column.aad)(&id)) else {
            tracing::error!(table = column.table, %key_id, "a sealed value cannot be read with any configured key");
            progress.unreadable += 1;
            continue;
        };
        let query = sqlx::query(&update).bind(current).bind(sealed);
        let query = match &id {
            RowId::Int(id) => query.bind(*id),
            RowId::Text(id) => query.bind(id.clone()),
        };
        let written = query.bind(&key_id).execute(db.pool()).await?;
        progress.written(written.rows_affected());
    }
    Ok(())
}

/// Links waiting in the mail outbox (invitations, verifications, resets) are sealed in the
/// message's context.
async fn rotate_invitations(
    db: &Database,
    cipher: &TokenCipher,
    current: &str,
    progress: &mut Progress,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, context FROM mail_outbox WHERE kind IN ('invitation', 'verify_email', 'password_reset') \
         AND status = 'queued'",
    )
    .fetch_all(db.pool())
    .await?;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let context: Option<String> = row.try_get("context")?;
        let Some(mut link) = context.as_deref().and_then(crate::mail::SealedLink::from_json) else {
            continue;
        };
        if link.sealed.starts_with(&format!("{current}.")) {
            continue;
        }
        let Some(token) = cipher.open_text(&link.sealed, &link.aad()) else {
            progress.unreadable += 1;
            continue;
        };
        link.sealed = cipher.seal_text(&token, &link.aad());
        let written = sqlx::query("UPDATE mail_outbox SET context = $1 WHERE id = $2 AND context = $3")
            .bind(link.to_json())
            .bind(id)
            .bind(context)
            .execute(db.pool())
            .await?;
        progress.written(written.rows_affected());
    }
    Ok(())
}
