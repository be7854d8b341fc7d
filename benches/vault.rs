//! Token vault figures on this machine: fresh-token lookups per second (1 and 64
//! concurrent callers, SQLite and PostgreSQL) and the keeper's refresh rate over 10,000
//! connections against the local simulator. Prints figures; fails when a lookup fails or
//! the keeper rotates other than every due connection once.
//!
//! Run: `cargo bench --bench vault` (PostgreSQL from TEST_POSTGRES_URL).

use std::sync::Arc;
use std::time::{Duration, Instant};

use awx_onboard::crypto::TokenCipher;
use awx_onboard::db::{Database, Engine};
use awx_onboard::keeper::{Keeper, KeeperSettings};
use awx_onboard::simulator::{SimClient, SimConfig, Simulator};
use awx_onboard::store::ConnectionStore;
use awx_onboard::testing::TestDatabase;
use awx_onboard::time::Clock;
use awx_onboard::vault::{TokenVault, VaultSettings};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

struct Setup {
    sim: Simulator,
    clock: Clock,
    test_db: TestDatabase,
    db: Database,
    vault: Arc<TokenVault>,
}

async fn setup(engine: Engine) -> Setup {
    let clock = Clock::system();
    let mut config = SimConfig::new(vec![SimClient::default_with_redirect(REDIRECT)]);
    config.clock = clock.clone();
    let sim = Simulator::new(config);
    let addr = sim.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    let client = awx_onboard::testing::sim_client(&format!("http://{addr}"));
    let vault = Arc::new(TokenVault::new(
        ConnectionStore::new(db.clone()),
        Arc::new(TokenCipher::new(&[42; 32], &[])),
        client,
        clock.clone(),
        VaultSettings::new(60, Duration::from_secs(10)),
    ));
    Setup {
        sim,
        clock,
        test_db,
        db,
        vault,
    }
}

/// Connects `count` merchants (code exchange at the simulator, tokens stored encrypted).
async fn connect_merchants(s: &Setup, count: usize) -> Vec<i64> {
    let account = s.sim.account_ids()[0].clone();
    let started = Instant::now();
    let ids = awx_onboard::testing::connect_merchants(&s.vault, &s.sim, REDIRECT, &account, count).await;
    eprintln!(
        "  (connected {count} merchants in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    ids
}

async fn lookups(s: &Setup, merchants: &[i64], callers: usize, total: usize) -> f64 {
    let merchants = Arc::new(merchants.to_vec());
    let per_caller = total / callers;
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let vault = s.vault.clone();
            let merchants = merchants.clone();
            tokio::spawn(async move {
                for i in 0..per_caller {
                    let merchant = merchants[(c * 7 + i) % merchants.len()];
                    vault.access_token_for(merchant).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (per_caller * callers) as f64 / started.elapsed().as_secs_f64()
}

async fn explain_hot_read(s: &Setup, engine: Engine) -> String {
    let sql = "SELECT id, status, status_reason, key_id, access_token, access_expires_at FROM connections WHERE merchant_id = 1";
    match engine {
        Engine::Sqlite => {
            let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(s.db.pool())
                .await
                .unwrap();
            rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("; ")
        }
        Engine::Postgres => {
            let rows: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN {sql}"))
                .fetch_all(s.db.pool())
                .await
                .unwrap();
            rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("; ")
        }
    }
}

async fn bench_lookups(engine: Engine) {
    let s = setup(engine).await;
    let merchants = connect_merchants(&s, 256).await;
    // Warm up pools and caches.
    lookups(&s, &merchants, 8, 2_000).await;
    let one = lookups(&s, &merchants, 1, 20_000).await;
    let many = lookups(&s, &merchants, 64, 100_000).await;
    println!("access_token_for, fresh token, {engine:?}: 1 caller {one:>8.0} calls/s; 64 callers {many:>8.0} calls/s");
    println!("  hot read plan: {}", explain_hot_read(&s, engine).await);
    assert_eq!(s.sim.counters().refreshes, 0, "fresh tokens never refresh");
    s.db.close().await;
    s.test_db.remove().await;
}

async fn bench_keeper(engine: Engine, count: usize) {
    let s = setup(engine).await;
    connect_merchants(&s, count).await;
    s.clock.advance(41 * 86_400);
    let keeper = Keeper::new(
        s.vault.clone(),
        KeeperSettings {
            max_per_pass: count as i64,
            ..KeeperSettings::default()
        },
    );
    let started = Instant::now();
    let report = keeper.run_once().await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "keeper, {engine:?}: {} of {} connections rotated in {elapsed:.2} s = {:.0} connections/s (simulator counted {} refreshes)",
        report.rotated,
        report.due,
        report.rotated as f64 / elapsed,
        s.sim.counters().refreshes
    );
    assert_eq!(report.due, count, "every connection is due");
    assert_eq!(report.rotated, report.due, "every due connection is rotated");
    assert_eq!(s.sim.counters().refreshes, report.rotated as u64, "one refresh each");
    s.db.close().await;
    s.test_db.remove().await;
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; only `cargo bench` measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("vault bench: run with `cargo bench --bench vault`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        bench_lookups(Engine::Sqlite).await;
        bench_lookups(Engine::Postgres).await;
        bench_keeper(Engine::Sqlite, 10_000).await;
        bench_keeper(Engine::Postgres, 10_000).await;
    });
}
