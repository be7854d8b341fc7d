//! Key rotation online: 10,000 connections re-encrypted under a new key while the app
//! keeps refreshing them, on SQLite and PostgreSQL. Nothing is lost, no refresh is missed,
//! and afterwards the old key is not needed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use awx_onboard::crypto::{associated_data, TokenCipher};
use awx_onboard::db::{Database, Engine};
use awx_onboard::rotation;
use awx_onboard::store::ConnectionStore;
use awx_onboard::testing::TestDatabase;
use awx_onboard::time::Clock;
use awx_onboard::vault::{TokenVault, VaultSettings};
use sqlx::Row;

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";
const CONNECTIONS: usize = 10_000;
const OLD: [u8; 32] = [7; 32];
const NEW: [u8; 32] = [42; 32];

fn vault(db: &Database, cipher: TokenCipher, sim_url: &str, clock: &Clock) -> Arc<TokenVault> {
    let mut settings = VaultSettings::new(60, Duration::from_secs(5));
    settings.retry_base = Duration::from_millis(20);
    Arc::new(TokenVault::new(
        ConnectionStore::new(db.clone()),
        Arc::new(cipher),
        awx_onboard::testing::sim_client(sim_url),
        clock.clone(),
        settings,
    ))
}

async fn every_token_is_re_encrypted_while_the_app_serves(engine: Engine) {
    let clock = Clock::system();
    let (sim, sim_url) = awx_onboard::testing::spawn_simulator(REDIRECT, &clock).await;
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    let before = vault(&db, TokenCipher::new(&OLD, &[]), &sim_url, &clock);
    let account = sim.account_ids()[0].clone();
    let merchants = awx_onboard::testing::connect_merchants(&before, &sim, REDIRECT, &account, CONNECTIONS).await;

    // The key changes: the app now writes under the new key, reads the old one too.
    let app = vault(&db, TokenCipher::new(&NEW, &[OLD]), &sim_url, &clock);
    // Every access token is due: the load below refreshes connections while they rotate.
    clock.advance(300);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|worker| {
            let (app, stop, served, failed, merchants) = (
                app.clone(),
                stop.clone(),
                served.clone(),
                failed.clone(),
                merchants.clone(),
            );
            tokio::spawn(async move {
                let mut i = worker * 997;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 7919) % merchants.len();
                    match app.access_token_for(merchants[i]).await {
                        Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let cipher = TokenCipher::new(&NEW, &[OLD]);
    let mut reports = 0;
    let progress = rotation::rotate(&db, &cipher, |_| reports += 1).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for worker in load {
        worker.await.unwrap();
    }
    assert!(reports > 2, "progress is reported as it goes");
    // Connections the load refreshed before the rotation reached them were re-keyed by the
    // refresh itself; the rotation did the rest.
    assert!(
        progress.total > 0 && progress.total <= CONNECTIONS as i64,
        "{progress:?}"
    );
    assert_eq!(progress.unreadable, 0);
    assert!(progress.rotated > 0);
    assert!(
        progress.rotated + progress.changed_meanwhile <= progress.total,
        "{progress:?}"
    );
    let refreshed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM connections WHERE generation > 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(refreshed > 0, "the app refreshed connections while they were rotated");
    assert_eq!(rotation::remaining(&db, cipher.current_key_id()).await.unwrap(), 0);
    assert!(served.load(Ordering::Relaxed) > 0);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "the app served throughout");

    // Nothing lost: every stored token opens with the new key alone.
    let new_only = TokenCipher::new(&NEW, &[]);
    let rows = sqlx::query("SELECT id, status, key_id, access_token, refresh_token FROM connections")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), CONNECTIONS);
    for row in &rows {
        let id: i64 = row.get("id");
        assert_eq!(row.get::<String, _>("status"), "connected");
        let key_id: String = row.get("key_id");
        for field in ["access_token", "refresh_token"] {
            let blob: Vec<u8> = row.get(field);
            new_only
                .decrypt(&key_id, &blob, &associated_data("connections", id, field))
                .unwrap_or_else(|e| panic!("connection {id} {field}: {e}"));
        }
    }
    // No refresh missed or misfired: Airwallex never saw a reused token, and the app
    // still works with the new key alone.
    assert_eq!(sim.counters().reuse_detections, 0);
    let after = vault(&db, TokenCipher::new(&NEW, &[]), &sim_url, &clock);
    for merchant in merchants.iter().step_by(CONNECTIONS / 50) {
        after
            .access_token_for(*merchant)
            .await
            .expect("served with the new key alone");
    }
    db.close().await;
    test_db.remove().await;
}
awx_onboard::both_engines!(every_token_is_re_encrypted_while_the_app_serves);
