//! The session store against a real database: saving never brings back a session that
//! was deleted meanwhile (a request in flight during log-out), and sessions end 7 days
//! after sign-in however active they are.

use std::collections::HashMap;

use awx_onboard::db::Engine;
use awx_onboard::sessions::DbSessionStore;
use awx_onboard::testing::TestDatabase;
use awx_onboard::time::Clock;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::SessionStore;

fn record() -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([("note".to_string(), serde_json::json!("hello"))]),
        expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(12),
    }
}

async fn saving_never_recreates_a_deleted_session(engine: Engine) {
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    let store = DbSessionStore::new(db.clone(), Clock::system());
    let mut record = record();
    store.create(&mut record).await.unwrap();
    let loaded = store.load(&record.id).await.unwrap().expect("created");
    // Log-out deletes the session while another request still holds it ...
    store.delete(&record.id).await.unwrap();
    // ... which then saves it at its end.
    store.save(&loaded).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_none(), "not brought back");
    db.close().await;
    test_db.remove().await;
}
awx_onboard::both_engines!(saving_never_recreates_a_deleted_session);

#[tokio::test]
async fn sessions_end_seven_days_after_sign_in_however_active() {
    let test_db = TestDatabase::new(Engine::Sqlite).await;
    let db = test_db.connect().await;
    let clock = Clock::system();
    let store = DbSessionStore::new(db.clone(), clock.clone());
    let mut record = record();
    store.create(&mut record).await.unwrap();
    let mut hours = 0;
    while hours + 10 < 7 * 24 {
        clock.advance(10 * 3600);
        hours += 10;
        let loaded = store.load(&record.id).await.unwrap();
        let loaded = loaded.unwrap_or_else(|| panic!("alive after {hours} h of activity"));
        store.save(&loaded).await.unwrap();
    }
    clock.advance(10 * 3600);
    assert!(store.load(&record.id).await.unwrap().is_none(), "over after 7 days");
    db.close().await;
    test_db.remove().await;
}
