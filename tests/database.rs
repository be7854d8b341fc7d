//! Migrations and basic storage rules on both engines.

use awx_onboard::db::{Database, Engine};
use awx_onboard::store::events::{EventKind, NewEvent};
use awx_onboard::store::ConnectionStore;
use awx_onboard::testing::TestDatabase;

async fn migrations_apply_and_are_idempotent(engine: Engine) {
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    assert_eq!(db.engine(), engine);
    db.ping().await.expect("ping");
    // A second start-up finds nothing to do.
    db.migrate().await.expect("migrations run twice");
    let tables: i64 = sqlx::query_scalar(match engine {
        Engine::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN \
                           ('merchants','connections','connection_events','oauth_states','sessions','auth_attempts','auth_locks','airwallex_events',\
                           'api_keys','token_reads','webhook_endpoints','platform_events','webhook_deliveries')"
        }
        Engine::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN \
                             ('merchants','connections','connection_events','oauth_states','sessions','auth_attempts','auth_locks','airwallex_events',\
                           'api_keys','token_reads','webhook_endpoints','platform_events','webhook_deliveries')"
        }
    })
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(tables, 13);
    db.close().await;
    test_db.remove().await;
}

awx_onboard::both_engines!(migrations_apply_and_are_idempotent);

/// A merchant with a connected connection, written straight to the tables; its id.
async fn a_connection(db: &Database) -> i64 {
    sqlx::query(
        "INSERT INTO merchants (email, password_hash, role, created_at) VALUES ('a@b.example', 'x', 'merchant', 1)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query_scalar(
        "INSERT INTO connections (merchant_id, status, last_activity_at, created_at, updated_at) \
         SELECT id, 'connected', 1, 1, 1 FROM merchants RETURNING id",
    )
    .fetch_one(db.pool())
    .await
    .unwrap()
}

async fn the_event_log_is_append_only(engine: Engine) {
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    a_connection(&db).await;
    sqlx::query("INSERT INTO connection_events (connection_id, kind, actor, created_at) SELECT id, 'connected', 'test', 1 FROM connections")
        .execute(db.pool())
        .await
        .unwrap();
    let update = sqlx::query("UPDATE connection_events SET kind = 'forged'")
        .execute(db.pool())
        .await;
    assert!(update.is_err(), "events must not be rewritten");
    let delete = sqlx::query("DELETE FROM connection_events").execute(db.pool()).await;
    assert!(delete.is_err(), "events must not be deleted");
    let kind: String = sqlx::query_scalar("SELECT kind FROM connection_events")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(kind, "connected");
    db.close().await;
    test_db.remove().await;
}

awx_onboard::both_engines!(the_event_log_is_append_only);

async fn events_are_read_whole_and_an_unknown_kind_is_named_not_guessed(engine: Engine) {
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    let connection = a_connection(&db).await;
    let store = ConnectionStore::new(db.clone());
    let event = NewEvent::new(EventKind::NeedsReconnect, "keeper")
        .reason("refresh_rejected")
        .detail(Some("invalid_grant"));
    store.log_event(connection, event, 42).await.unwrap();
    let events = store.events(connection, None, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    let read = &events[0];
    assert_eq!(read.connection_id, connection);
    assert_eq!(read.kind, EventKind::NeedsReconnect);
    assert_eq!(read.reason.as_deref(), Some("refresh_rejected"));
    assert_eq!(read.actor, "keeper");
    assert_eq!(read.detail.as_deref(), Some("invalid_grant"));
    assert_eq!(read.created_at, 42);
    // A row written by a newer version (or by hand): the read fails and says what it met.
    sqlx::query(
        "INSERT INTO connection_events (connection_id, kind, actor, created_at) VALUES ($1, 'teleported', 'x', 43)",
    )
    .bind(connection)
    .execute(db.pool())
    .await
    .unwrap();
    let error = store.events(connection, None, 10).await.unwrap_err().to_string();
    assert!(error.contains("unknown event kind \"teleported\""), "{error}");
    db.close().await;
    test_db.remove().await;
}

awx_onboard::both_engines!(events_are_read_whole_and_an_unknown_kind_is_named_not_guessed);

#[tokio::test]
async fn the_sqlite_file_and_its_folder_are_created_on_first_start() {
    let folder = std::env::temp_dir().join(format!("awx-t-{}", awx_onboard::secret::random_urlsafe(9)));
    let path = folder.join("nested/deeper/app.db");
    let db = Database::connect_and_migrate(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists());
    db.close().await;
    let _ = std::fs::remove_dir_all(folder);
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_clear_error_not_a_panic() {
    // Port 1 on loopback: nothing listens there.
    let error = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        Database::connect("postgres://postgres:secret-pw@127.0.0.1:1/nothing"),
    )
    .await
    .expect("gives up in time")
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("could not connect to the database"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("secret-pw"), "password leaked: {message}");
}

/// Migration 7 rebuilds `platform_events` on SQLite (its `connection_id` becomes optional):
/// events and the deliveries that point at them come through, foreign keys still hold.
async fn queued_webhooks_survive_the_connect_sessions_migration(engine: Engine) {
    let test_db = TestDatabase::new(engine).await;
    let db = Database::connect(&test_db.url).await.unwrap();
    db.migrate_until(6).await.unwrap();
    for statement in [
        "INSERT INTO merchants (id, email, password_hash, role, created_at) VALUES (1, 'a@b.example', 'x', 'merchant', 1)",
        "INSERT INTO connections (id, merchant_id, status, last_activity_at, created_at, updated_at) \
         VALUES (1, 1, 'connected', 1, 1, 1)",
        "INSERT INTO webhook_endpoints (id, url, events, secret, key_id, created_by, created_at) \
         VALUES (1, 'https://p.example/hooks', 'connection.connected', X'00', 'k1', 'test', 1)",
        "INSERT INTO platform_events (id, kind, connection_id, payload, created_at) \
         VALUES ('evt_1', 'connection.connected', 1, '{}', 1)",
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
         VALUES ('evt_1', 1, 'pending', 0, 1, 1)",
    ] {
        let statement = if engine == Engine::Postgres {
            statement.replace("X'00'", "'\\x00'::bytea")
        } else {
            statement.to_string()
        };
        sqlx::query(&statement).execute(db.pool()).await.unwrap();
    }
    db.migrate().await.expect("migration 7 applies over existing rows");
    let joined: (String, Option<i64>) = sqlx::query_as(
        "SELECT e.id, e.connection_id FROM webhook_deliveries d JOIN platform_events e ON e.id = d.event_id",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(joined, ("evt_1".to_string(), Some(1)));
    sqlx::query(
        "INSERT INTO platform_events (id, kind, connection_id, payload, created_at) \
         VALUES ('evt_2', 'connect_session.completed', NULL, '{}', 2)",
    )
    .execute(db.pool())
    .await
    .expect("an event with no connection");
    let orphan = sqlx::query(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
         VALUES ('evt_missing', 1, 'pending', 0, 1, 1)",
    )
    .execute(db.pool())
    .await;
    assert!(orphan.is_err(), "deliveries still need their event");
    db.close().await;
    test_db.remove().await;
}

awx_onboard::both_engines!(queued_webhooks_survive_the_connect_sessions_migration);

/// Four instances claiming one endpoint's backlog at the same instant, round after round:
/// each round leases exactly the endpoint's cap between them, never more (on PostgreSQL a
/// claim's statements each see what others committed meanwhile, so claims must wait for
/// each other).
#[tokio::test]
async fn instances_claiming_at_once_keep_an_endpoints_cap_on_postgres() {
    use awx_onboard::outbox_queue::{claim_due, PerGroup, Queue};
    use awx_onboard::platform::outbox::WEBHOOK_SCHEDULE;
    const MOST: i64 = 8;
    const QUEUE: Queue = Queue {
        table: "webhook_deliveries",
        due_status: "pending",
        per_group: Some(PerGroup {
            column: "endpoint_id",
            groups: "SELECT id FROM webhook_endpoints WHERE disabled_at IS NULL",
            most: MOST,
        }),
        filter: "1 = 1",
    };
    let test_db = TestDatabase::new(Engine::Postgres).await;
    let db = test_db.connect().await;
    let endpoint: i64 = sqlx::query_scalar(
        "INSERT INTO webhook_endpoints (url, events, secret, key_id, created_by, created_at) \
         VALUES ('https://platform.example/hooks', 'connection.connected', $1, 'k1', 'test', 1) RETURNING id",
    )
    .bind(vec![0u8; 32])
    .fetch_one(db.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO platform_events (id, kind, connection_id, payload, created_at) \
         SELECT 'evt_' || n, 'connection.connected', 1, '{}', 1 FROM generate_series(1, 400) AS n",
    )
    .execute(db.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts, next_attempt_at, created_at) \
         SELECT id, $1, 'pending', 0, 1, 1 FROM platform_events",
    )
    .bind(endpoint)
    .execute(db.pool())
    .await
    .unwrap();
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(test_db.connect().await);
    }
    for round in 0..40 {
        let claims = instances.iter().enumerate().map(|(i, instance)| {
            let instance = instance.clone();
            tokio::spawn(async move {
                claim_due(&instance, &QUEUE, &format!("instance-{i}"), &WEBHOOK_SCHEDULE, MOST, 10)
                    .await
                    .unwrap()
                    .len() as i64
            })
        });
        let mut claimed = 0;
        for claim in claims.collect::<Vec<_>>() {
            claimed += claim.await.unwrap();
        }
        assert_eq!(
            claimed, MOST,
            "round {round}: the cap is {MOST} in flight, {claimed} were leased"
        );
        // What was in flight is delivered: room for the next round.
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'delivered' WHERE status = 'pending' AND lease_until IS NOT NULL",
        )
        .execute(db.pool())
        .await
        .unwrap();
    }
    for instance in instances {
        instance.close().await;
    }
    db.close().await;
    test_db.remove().await;
}
