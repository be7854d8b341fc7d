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
    let states: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM oauth_states WHERE key_id <> $1 AND consumed_at IS NULL")
            .bind(current_key_id)
            .fetch_one(db.pool())
            .await?;
    let factors: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM second_factors WHERE key_id <> $1")
        .bind(current_key_id)
        .fetch_one(db.pool())
        .await?;
    Ok(connections + states + factors)
}

/// Re-encrypts every connection's tokens, every pending authorization's PKCE verifier and
/// every second-factor secret under the cipher's current key, reporting progress after
/// each batch.
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
    rotate_states(db, cipher, &current, &mut progress).await?;
    rotate_second_factors(db, cipher, &current, &mut progress).await?;
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

async fn rotate_states(
    db: &Database,
    cipher: &TokenCipher,
    current: &str,
    progress: &mut Progress,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT state_hash, key_id, pkce_verifier FROM oauth_states WHERE key_id <> $1 AND consumed_at IS NULL",
    )
    .bind(current)
    .fetch_all(db.pool())
    .await?;
    for row in rows {
        let hash: String = row.try_get("state_hash")?;
        let key_id: String = row.try_get("key_id")?;
        let aad = crate::oauth::verifier_aad(&hash);
        match reseal(cipher, &key_id, Some(row.try_get("pkce_verifier")?), &aad) {
            Ok(Some(sealed)) => {
                let written = sqlx::query(
                    "UPDATE oauth_states SET key_id = $1, pkce_verifier = $2 WHERE state_hash = $3 AND key_id = $4",
                )
                .bind(current)
                .bind(sealed)
                .bind(&hash)
                .bind(&key_id)
                .execute(db.pool())
                .await?;
                progress.written(written.rows_affected());
            }
            _ => progress.unreadable += 1,
        }
    }
    Ok(())
}

async fn rotate_second_factors(
    db: &Database,
    cipher: &TokenCipher,
    current: &str,
    progress: &mut Progress,
) -> Result<(), sqlx::Error> {
    let rows = sqlx::query("SELECT account_id, key_id, secret FROM second_factors WHERE key_id <> $1")
        .bind(current)
        .fetch_all(db.pool())
        .await?;
    for row in rows {
        let account_id: i64 = row.try_get("account_id")?;
        let key_id: String = row.try_get("key_id")?;
        let aad = crate::crypto::associated_data("second_factors", account_id, "secret");
        match reseal(cipher, &key_id, Some(row.try_get("secret")?), &aad) {
            Ok(Some(sealed)) => {
                let written = sqlx::query(
                    "UPDATE second_factors SET key_id = $1, secret = $2 WHERE account_id = $3 AND key_id = $4",
                )
                .bind(current)
                .bind(sealed)
                .bind(account_id)
                .bind(&key_id)
                .execute(db.pool())
                .await?;
                progress.written(written.rows_affected());
            }
            _ => progress.unreadable += 1,
        }
    }
    Ok(())
}
