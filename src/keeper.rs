//! The keeper: a background task on every instance that rotates refresh tokens before
//! they run out, so a connection never expires from idleness.
//!
//! Each pass picks the connections whose refresh token has less than a set part of its
//! life left (or whose last refresh was never confirmed) and rotates them through the
//! vault, a bounded number at a time. With several instances on PostgreSQL each picks
//! the same rows, and the vault's lease and generation check make sure each connection
//! is rotated once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;
use tokio::sync::watch;

use crate::vault::{Actor, TokenVault, VaultError};

#[derive(Debug, Clone)]
pub struct KeeperSettings {
    /// Pause between passes (±20 % jitter so instances spread out).
    pub interval: Duration,
    /// Most connections taken in one pass.
    pub max_per_pass: i64,
    /// Rotations in flight at once.
    pub concurrency: usize,
}

impl Default for KeeperSettings {
    fn default() -> Self {
        KeeperSettings {
            interval: Duration::from_secs(15),
            max_per_pass: 5_000,
            concurrency: 16,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub due: usize,
    pub rotated: usize,
    pub needs_reconnect: usize,
    pub failed: usize,
}

pub struct Keeper {
    vault: Arc<TokenVault>,
    settings: KeeperSettings,
    backlog: AtomicU64,
}

impl Keeper {
    pub fn new(vault: Arc<TokenVault>, settings: KeeperSettings) -> Keeper {
        Keeper {
            vault,
            settings,
            backlog: AtomicU64::new(0),
        }
    }

    /// Connections found due in the latest pass.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// One pass over the connections that are due now.
    pub async fn run_once(&self) -> Result<PassReport, VaultError> {
        let (_keep, never) = watch::channel(false);
        self.run_pass(&never).await
    }

    /// One pass; once `stop` turns true no further rotation starts (those in flight finish).
    async fn run_pass(&self, stop: &watch::Receiver<bool>) -> Result<PassReport, VaultError> {
        let started = Instant::now();
        let now = self.vault.clock().now();
        let due = self.vault.store().keeper_due(now, self.settings.max_per_pass).await?;
        self.backlog.store(due.len() as u64, Ordering::Relaxed);
        let mut report = PassReport {
            due: due.len(),
            ..PassReport::default()
        };
        if due.is_empty() {
            return Ok(report);
        }
        tracing::info!(due = due.len(), "keeper pass started");
        let mut results = futures::stream::iter(due)
            .take_while(|_| std::future::ready(!*stop.borrow()))
            .map(|(id, generation)| {
                let vault = self.vault.clone();
                async move { vault.rotate(id, generation, Actor::Keeper).await }
            })
            .buffer_unordered(self.settings.concurrency.max(1));
        let mut done = 0usize;
        while let Some(result) = results.next().await {
            done += 1;
            match result {
                Ok(_) => report.rotated += 1,
                Err(VaultError::NeedsReconnect(_)) | Err(VaultError::Disconnected) | Err(VaultError::NotConnected) => {
                    report.needs_reconnect += 1
                }
                Err(_) => report.failed += 1,
            }
            if done.is_multiple_of(1_000) {
                tracing::info!(done, of = report.due, "keeper progress");
            }
        }
        self.backlog.store((report.due - done) as u64, Ordering::Relaxed);
        if *stop.borrow() && done < report.due {
            tracing::info!(
                done,
                of = report.due,
                "keeper stopped mid-pass; the rest is due next start"
            );
        }
        tracing::info!(
            due = report.due,
            rotated = report.rotated,
            needs_reconnect = report.needs_reconnect,
            failed = report.failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "keeper pass finished"
        );
        Ok(report)
    }

    /// Runs passes until `shutdown` turns true: a pass in progress starts no new rotation
    /// and lets the ones in flight finish (stopping mid-refresh would only leave work for
    /// the next start).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(interval_s = self.settings.interval.as_secs(), "keeper started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let full = match self.run_pass(&shutdown).await {
                Ok(report) => report.due as i64 >= self.settings.max_per_pass,
                Err(error) => {
                    tracing::warn!(%error, "keeper pass failed");
                    false
                }
            };
            let pause = if full {
                Duration::from_millis(100)
            } else {
                let base = self.settings.interval.as_millis() as u64;
                Duration::from_millis(rand::thread_rng().gen_range(base * 8 / 10..=base * 12 / 10))
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("keeper stopped");
    }
}
