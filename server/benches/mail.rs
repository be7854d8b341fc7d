//! Email throughput: 10,000 queued messages delivered by the app's sender to a local SMTP
//! server (the tests' sink: a real SMTP conversation per message over pooled
//! connections), on SQLite and PostgreSQL. Prints messages per second.
//!
//! Run: `cargo bench -p awx-onboard-server --bench mail`.

use std::time::{Duration, Instant};

use awx_onboard::db::Engine;
use awx_onboard::testing::insert_merchant;
use awx_onboard::testing::smtp::SmtpSink;
use awx_onboard_server::testing::bench::{self, peak_memory_mb};
use awx_onboard_server::testing::TestApp;

const MESSAGES: usize = 10_000;

async fn run(engine: Engine) {
    let sink = SmtpSink::start().await.unwrap();
    let app = TestApp::spawn_with_mail(
        engine,
        &sink.url(),
        &[("MAIL_FROM", "awx-onboard <no-reply@bench.test>")],
    )
    .await;
    let db = app.services().db.pool();
    let account = insert_merchant(&app.services().db, "bench@example.com").await;
    let series = match engine {
        Engine::Sqlite => format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {MESSAGES}) SELECT n FROM seq"
        ),
        Engine::Postgres => format!("SELECT generate_series(1, {MESSAGES}) AS n"),
    };
    let now = app.services().clock.now();
    let started = Instant::now();
    // All at once, as a mass revocation would queue them.
    sqlx::query(&format!(
        "INSERT INTO mail_outbox (dedupe_key, kind, reason, account_id, recipient, unsubscribe_token, status, attempts, \
         next_attempt_at, created_at) SELECT 'bench:' || n, 'reconnect', 'revoked', {account}, 'm' || n || '@example.com', \
         'benchtoken' || n, 'queued', 0, {now}, {now} FROM ({series}) s"
    ))
    .execute(db)
    .await
    .unwrap();
    let received = sink.wait_for(MESSAGES, Duration::from_secs(600)).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(received.len(), MESSAGES, "every message arrived");
    let sent =
        awx_onboard_server::testing::eventually("every message recorded as sent", Duration::from_secs(30), || async {
            let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent'")
                .fetch_one(db)
                .await
                .unwrap();
            (sent == MESSAGES as i64).then_some(sent)
        })
        .await;
    println!(
        "{engine:?}: {MESSAGES} queued messages delivered in {elapsed:.1} s = {:.0} messages/s \
         ({} SMTP connections; {sent} recorded as sent; peak memory {:.0} MB)",
        MESSAGES as f64 / elapsed,
        sink.conversations(),
        peak_memory_mb()
    );
    app.stop().await;
}

fn main() {
    bench::main("mail", run);
}
