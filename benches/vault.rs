//! Token vault figures on this machine: fresh-token lookups per second (1 and 64
//! concurrent callers, SQLite and PostgreSQL) and the keeper's refresh rate over 10,000
//! connections against the local simulator. Prints figures; fails when a lookup fails or
//! the keeper rotates other than every due connection once.
//!
//! With one caller it also says where a lookup's time goes, each part timed alone in the
//! same run: the hot read through the app's pool (sqlx `Any`), the same statement on a
//! pool that checks every connection it hands out (sqlx's default, the app's before
//! 2026-12-01), on a native pool of the engine's own driver, and the AES-256-GCM opening.
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

/// The vault's hot read, as `ConnectionStore::hot_token` sends it.
const HOT_READ: &str = "SELECT c.id, c.account_id, c.status, c.status_reason, c.key_id, c.access_token, \
     c.access_expires_at, c.generation FROM connections c JOIN merchants m ON m.id = c.merchant_id \
     WHERE c.merchant_id = $1 AND m.role = 'merchant'";

/// Mean microseconds of `op` over `count` calls, one at a time.
async fn micros_each<F, Fut>(count: usize, mut op: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for i in 0..count {
        op(i).await;
    }
    started.elapsed().as_secs_f64() * 1e6 / count as f64
}

/// The hot read's row: id, account, status, sealed token, expiry, generation.
type HotRow = (i64, Option<String>, String, Option<Vec<u8>>, Option<i64>, i64);

/// Decodes the hot read's row as the store does (every column by name).
fn decode<'r, R: sqlx::Row>(row: &'r R) -> HotRow
where
    &'static str: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let _: Option<String> = row.try_get("key_id").unwrap();
    let _: Option<String> = row.try_get("status_reason").unwrap();
    (
        row.try_get("id").unwrap(),
        row.try_get("account_id").unwrap(),
        row.try_get("status").unwrap(),
        row.try_get("access_token").unwrap(),
        row.try_get("access_expires_at").unwrap(),
        row.try_get("generation").unwrap(),
    )
}

/// Microseconds per hot read from one caller on a pool of the engine's own driver.
async fn native_micros_each(engine: Engine, url: &str, calls: usize, pick: impl Fn(usize) -> i64) -> f64 {
    macro_rules! timed_on {
        ($pool:expr) => {{
            let pool = $pool;
            let each = micros_each(calls, |i| {
                let pool = &pool;
                let merchant = pick(i);
                async move {
                    let row = sqlx::query(HOT_READ).bind(merchant).fetch_one(pool).await.unwrap();
                    decode(&row);
                }
            })
            .await;
            pool.close().await;
            each
        }};
    }
    match engine {
        Engine::Sqlite => timed_on!(sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect(url)
            .await
            .unwrap()),
        Engine::Postgres => timed_on!(sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .connect(url)
            .await
            .unwrap()),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One caller's lookup taken apart, each part alone, in the same run: five rounds of
/// every part in turn, the median of each.
async fn where_a_lookup_goes(s: &Setup, engine: Engine, merchants: &[i64]) {
    const CALLS: usize = 10_000;
    let pick = |i: usize| merchants[(i * 7) % merchants.len()];
    let store = ConnectionStore::new(s.db.clone());
    let cipher = TokenCipher::new(&[42; 32], &[]);
    let aad = awx_onboard::crypto::associated_data("connections", 1, "access_token");
    let sealed = cipher.encrypt(&[b'x'; 200], &aad);
    let key_id = cipher.current_key_id().to_string();
    let (mut whole, mut app_pool, mut checked, mut native, mut open) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..5 {
        whole.push(
            micros_each(CALLS, |i| {
                let vault = s.vault.clone();
                async move {
                    vault.access_token_for(pick(i)).await.unwrap();
                }
            })
            .await,
        );
        app_pool.push(
            micros_each(CALLS, |i| {
                let store = &store;
                async move {
                    assert!(store.hot_token(pick(i)).await.unwrap().is_some());
                }
            })
            .await,
        );
        // The same statement on an `Any` pool as sqlx makes it by default: a ping before
        // every query.
        let checking = sqlx::any::AnyPoolOptions::new()
            .max_connections(8)
            .connect(&s.test_db.url)
            .await
            .unwrap();
        checked.push(
            micros_each(CALLS, |i| {
                let pool = &checking;
                async move {
                    let row = sqlx::query(HOT_READ).bind(pick(i)).fetch_one(pool).await.unwrap();
                    decode(&row);
                }
            })
            .await,
        );
        checking.close().await;
        native.push(native_micros_each(engine, &s.test_db.url, CALLS, pick).await);
        let started = Instant::now();
        for _ in 0..CALLS {
            std::hint::black_box(cipher.decrypt(&key_id, &sealed, &aad).unwrap());
        }
        open.push(started.elapsed().as_secs_f64() * 1e6 / CALLS as f64);
    }
    let (whole, app_pool, checked, native, open) = (
        median(whole),
        median(app_pool),
        median(checked),
        median(native),
        median(open),
    );
    println!(
        "  one caller, {engine:?}, µs per call (medians of 5 rounds): whole lookup {whole:.1}; its hot read alone, \
         through the app's pool {app_pool:.1}; the same on sqlx's default pool (a ping before each) {checked:.1}; \
         on a native pool {native:.1}; AES-256-GCM open {open:.2}; the rest (the vault's own checks, the clock) {:.1}",
        whole - app_pool - open
    );
}

/// The hot read from 64 callers on `Any` pools of several sizes (as the app makes them:
/// no check before each query): how many connections two cores want.
async fn pool_sizes(s: &Setup, engine: Engine, merchants: &[i64]) {
    let mut figures = Vec::new();
    for size in [4u32, 8, 16, 32] {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(size)
            .min_connections(size)
            .test_before_acquire(false)
            .connect(&s.test_db.url)
            .await
            .unwrap();
        let merchants = Arc::new(merchants.to_vec());
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|c| {
                let (pool, merchants) = (pool.clone(), merchants.clone());
                tokio::spawn(async move {
                    for i in 0..1_000 {
                        let merchant = merchants[(c * 7 + i) % merchants.len()];
                        let row = sqlx::query(HOT_READ).bind(merchant).fetch_one(&pool).await.unwrap();
                        decode(&row);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        figures.push(format!("{size}: {:.0}", 64_000.0 / started.elapsed().as_secs_f64()));
        pool.close().await;
    }
    println!(
        "  hot read, 64 callers, {engine:?}, reads/s by pool size: {}",
        figures.join(", ")
    );
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
    where_a_lookup_goes(&s, engine, &merchants).await;
    pool_sizes(&s, engine, &merchants).await;
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
