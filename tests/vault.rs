//! The token vault against the simulator over real HTTP, on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use awx_onboard::airwallex::AirwallexClient;
use awx_onboard::crypto::TokenCipher;
use awx_onboard::db::{Database, Engine};
use awx_onboard::keeper::{Keeper, KeeperSettings};
use awx_onboard::oauth::{AccountPin, Authorization, OAuthSettings};
use awx_onboard::secret::{AccessToken, AuthorizationCode, RefreshToken};
use awx_onboard::simulator::{self, Endpoint, FaultKind, RandomFaults, Simulator};
use awx_onboard::store::{ConnectionStatus, ConnectionStore, EventKind, ReconnectReason};
use awx_onboard::testing::{insert_merchant, spawn_simulator, wait_until, TestDatabase};
use awx_onboard::time::Clock;
use awx_onboard::vault::{TokenVault, VaultError, VaultSettings};
use awx_onboard::webhooks::{self, WebhookOutcome, WebhookRejection};

const REDIRECT: &str = "http://127.0.0.1:9/oauth/callback";

struct Harness {
    sim: Simulator,
    sim_url: String,
    clock: Clock,
    test_db: TestDatabase,
    db: Database,
    cipher: Arc<TokenCipher>,
    vault: Arc<TokenVault>,
}

fn client_for(sim_url: &str) -> AirwallexClient {
    awx_onboard::testing::sim_client(sim_url)
}

fn fast_settings() -> VaultSettings {
    let mut settings = VaultSettings::new(60, Duration::from_secs(5));
    settings.retry_base = Duration::from_millis(20);
    settings
}

async fn harness(engine: Engine) -> Harness {
    let clock = Clock::system();
    let (sim, sim_url) = spawn_simulator(REDIRECT, &clock).await;
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    let cipher = Arc::new(TokenCipher::new(&rand_key(), &[]));
    let vault = Arc::new(new_vault(&db, &cipher, &sim_url, &clock));
    Harness {
        sim,
        sim_url,
        clock,
        test_db,
        db,
        cipher,
        vault,
    }
}

/// A harness with one merchant connected to the simulator's first account.
async fn harness_with_merchant(engine: Engine) -> (Harness, i64) {
    let h = harness(engine).await;
    let merchant = h.connected_merchant("a@x.example", &h.account()).await;
    (h, merchant)
}

fn rand_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    key
}

fn new_vault(db: &Database, cipher: &Arc<TokenCipher>, sim_url: &str, clock: &Clock) -> TokenVault {
    TokenVault::new(
        ConnectionStore::new(db.clone()),
        cipher.clone(),
        client_for(sim_url),
        clock.clone(),
        fast_settings(),
    )
}

impl Harness {
    /// A merchant whose Airwallex account is connected through the vault.
    async fn connected_merchant(&self, email: &str, account_id: &str) -> i64 {
        let merchant = insert_merchant(&self.db, email).await;
        let code = self
            .sim
            .approve(simulator::DEFAULT_CLIENT_ID, REDIRECT, account_id, None);
        self.connect(merchant, code).await;
        merchant
    }

    /// Stores an authorization code's connection, as the OAuth callback does.
    async fn connect(&self, merchant: i64, code: String) {
        Authorization::new(
            self.db.clone(),
            self.clock.clone(),
            self.vault.clone(),
            OAuthSettings {
                authorize_url: format!("{}/oauth/authorize", self.sim_url),
                redirect_uri: REDIRECT.into(),
                client_id: simulator::DEFAULT_CLIENT_ID.into(),
                scopes: vec!["account_details:read".into()],
            },
        )
        .connect(
            merchant,
            &AuthorizationCode::new(code),
            REDIRECT,
            None,
            "merchant",
            AccountPin::UnlessDisconnected,
        )
        .await
        .expect("connect");
    }

    fn account(&self) -> String {
        self.sim.account_ids()[0].clone()
    }

    async fn status(&self, merchant: i64) -> (ConnectionStatus, Option<String>) {
        let row = self.vault.store().by_merchant(merchant).await.unwrap().unwrap();
        (row.status, row.status_reason)
    }

    /// The merchant's connection timeline is exactly `kinds`, oldest first.
    async fn assert_events(&self, merchant: i64, kinds: &[EventKind]) {
        assert_eq!(self.event_kinds(merchant).await, kinds);
    }

    /// The merchant's connection needs reconnecting, `reason` stored with it.
    async fn assert_needs_reconnect(&self, merchant: i64, reason: &str) {
        assert_eq!(
            self.status(merchant).await,
            (ConnectionStatus::NeedsReconnect, Some(reason.to_string()))
        );
    }

    async fn event_kinds(&self, merchant: i64) -> Vec<EventKind> {
        let row = self.vault.store().by_merchant(merchant).await.unwrap().unwrap();
        let mut events = self.vault.store().events(row.id, None, 1000).await.unwrap();
        events.reverse();
        events.into_iter().map(|e| e.kind).collect()
    }

    async fn account_status_with(&self, token: &AccessToken) -> reqwest::StatusCode {
        reqwest::Client::new()
            .get(format!("{}/api/v1/account/", self.sim_url))
            .bearer_auth(token.expose())
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn finish(self) {
        self.db.close().await;
        self.test_db.remove().await;
    }
}

/// Every caller's access token when each of `vaults` (one a caller) asks for `merchant`'s at
/// once; each must get one.
async fn tokens_at_once(vaults: Vec<Arc<TokenVault>>, merchant: i64) -> Vec<AccessToken> {
    let calls = vaults
        .into_iter()
        .map(|vault| tokio::spawn(async move { vault.access_token_for(merchant).await }));
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every caller gets a token").token)
        .collect()
}

async fn fresh_tokens_are_served_from_storage(engine: Engine) {
    let (h, merchant) = harness_with_merchant(engine).await;
    let first = h.vault.access_token_for(merchant).await.unwrap();
    let second = h.vault.access_token_for(merchant).await.unwrap();
    assert_eq!(first.token, second.token);
    assert_eq!(h.sim.counters().refreshes, 0);
    assert_eq!(h.account_status_with(&first.token).await, 200);
    assert_eq!(h.event_kinds(merchant).await, vec![EventKind::Connected]);
    assert!(matches!(
        h.vault.access_token_for(merchant + 1000).await,
        Err(VaultError::NotConnected)
    ));
    h.finish().await;
}

awx_onboard::both_engines!(fresh_tokens_are_served_from_storage);

/// A platform's launch day: many merchants' consents come back at once. Every code is
/// exchanged once only, so a store that fails loses that merchant's consent.
async fn many_authorizations_stored_at_once_all_succeed(engine: Engine) {
    let h = harness(engine).await;
    let account = h.sim.account_ids()[0].clone();
    let merchants = awx_onboard::testing::connect_merchants(&h.vault, &h.sim, REDIRECT, &account, 160).await;
    assert_eq!(merchants.len(), 160);
    let store = h.vault.store();
    for merchant in merchants {
        let row = store.by_merchant(merchant).await.unwrap().expect("a connection row");
        assert_eq!(row.status, ConnectionStatus::Connected);
    }
}

awx_onboard::both_engines!(many_authorizations_stored_at_once_all_succeed);

async fn two_hundred_callers_share_one_refresh(engine: Engine) {
    let (h, merchant) = harness_with_merchant(engine).await;
    h.clock.advance(300);
    let tokens = tokens_at_once((0..200).map(|_| h.vault.clone()).collect(), merchant).await;
    assert_eq!(h.sim.counters().refreshes, 1, "exactly one refresh reached Airwallex");
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "every caller got the same token"
    );
    assert_eq!(h.account_status_with(&tokens[0]).await, 200);
    h.assert_events(merchant, &[EventKind::Connected, EventKind::Refreshed])
        .await;
    h.finish().await;
}

awx_onboard::both_engines!(two_hundred_callers_share_one_refresh);

#[tokio::test]
async fn two_instances_on_postgres_share_one_refresh() {
    let (h, merchant) = harness_with_merchant(Engine::Postgres).await;
    // A second instance: its own pool, its own vault, the same database.
    let other_db = h.test_db.connect().await;
    let other = Arc::new(new_vault(&other_db, &h.cipher, &h.sim_url, &h.clock));
    h.clock.advance(300);
    // Slow the refresh so that both instances are surely waiting at once.
    h.sim.inject(Endpoint::Token, FaultKind::Delay { ms: 300 }, 1);
    let vaults = (0..200).map(|i| if i % 2 == 0 { h.vault.clone() } else { other.clone() });
    let tokens = tokens_at_once(vaults.collect(), merchant).await;
    assert_eq!(h.sim.counters().refreshes, 1);
    assert_eq!(
        h.sim.counters().too_many_requests,
        0,
        "the lease kept the instances from racing"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    other_db.close().await;
    h.finish().await;
}

async fn a_dropped_answer_is_recovered_with_the_same_refresh_token(engine: Engine) {
    let (h, merchant) = harness_with_merchant(engine).await;
    h.clock.advance(300);
    h.sim.inject(Endpoint::Token, FaultKind::Drop, 1);
    let token = h.vault.access_token_for(merchant).await.expect("recovered");
    let counters = h.sim.counters();
    assert_eq!(counters.refreshes, 2, "the dropped rotation and the retry");
    assert_eq!(counters.reuse_detections, 0);
    assert_eq!(h.account_status_with(&token.token).await, 200);
    // Still alive much later: the stored refresh token is the newest one.
    h.clock.advance(3_600);
    let later = h.vault.access_token_for(merchant).await.expect("still connected");
    assert_eq!(h.account_status_with(&later.token).await, 200);
    assert_eq!(h.sim.counters().reuse_detections, 0);
    h.finish().await;
}

awx_onboard::both_engines!(a_dropped_answer_is_recovered_with_the_same_refresh_token);

#[tokio::test]
async fn server_errors_are_retried() {
    let (h, merchant) = harness_with_merchant(Engine::Sqlite).await;
    h.clock.advance(300);
    h.sim.inject(Endpoint::Token, FaultKind::Error500, 2);
    let token = h
        .vault
        .access_token_for(merchant)
        .await
        .expect("third attempt succeeds");
    assert_eq!(h.account_status_with(&token.token).await, 200);
    assert_eq!(h.sim.counters().token_calls["refresh_token"], 3);
    assert_eq!(h.status(merchant).await.0, ConnectionStatus::Connected);
    h.finish().await;
}

#[tokio::test]
async fn too_many_server_errors_leave_the_connection_for_a_later_retry() {
    let (h, merchant) = harness_with_merchant(Engine::Sqlite).await;
    h.clock.advance(300);
    h.sim.inject(Endpoint::Token, FaultKind::Error500, 5);
    assert_eq!(
        h.vault.access_token_for(merchant).await.unwrap_err(),
        VaultError::Unavailable
    );
    assert_eq!(h.status(merchant).await.0, ConnectionStatus::Connected);
    assert!(h.event_kinds(merchant).await.contains(&EventKind::RefreshFailed));
    // Inside the grace window the next caller retries with the same token.
    h.clock.advance(10);
    let token = h.vault.access_token_for(merchant).await.expect("recovers");
    assert_eq!(h.account_status_with(&token.token).await, 200);
    h.finish().await;
}

#[tokio::test]
async fn an_unconfirmed_refresh_is_never_resent_after_the_grace_window() {
    let (h, merchant) = harness_with_merchant(Engine::Sqlite).await;
    h.clock.advance(300);
    // Airwallex rotates, the answer is lost, and every retry fails too.
    h.sim.inject(Endpoint::Token, FaultKind::Drop, 1);
    h.sim.inject(Endpoint::Token, FaultKind::Error500, 4);
    assert_eq!(
        h.vault.access_token_for(merchant).await.unwrap_err(),
        VaultError::Unavailable
    );
    let sent_before = h.sim.counters().token_calls["refresh_token"];
    h.clock.advance(120);
    assert_eq!(
        h.vault.access_token_for(merchant).await.unwrap_err(),
        VaultError::NeedsReconnect(ReconnectReason::RefreshUnconfirmed)
    );
    assert_eq!(
        h.sim.counters().token_calls["refresh_token"],
        sent_before,
        "the old token was not sent again"
    );
    assert_eq!(h.sim.counters().reuse_detections, 0);
    h.finish().await;
}

#[tokio::test]
async fn a_concurrent_refresh_elsewhere_gets_429_then_success() {
    let (h, merchant) = harness_with_merchant(Engine::Sqlite).await;
    // Someone else (outside this vault) is refreshing the same connection, slowly.
    let row = h.vault.store().by_merchant(merchant).await.unwrap().unwrap();
    let refresh_token = h
        .cipher
        .decrypt_string(
            row.key_id.as_deref().unwrap(),
            row.refresh_token.as_deref().unwrap(),
            &awx_onboard::crypto::associated_data("connections", row.id, "refresh_token"),
        )
        .unwrap();
    h.sim.inject(Endpoint::Token, FaultKind::Delay { ms: 700 }, 1);
    let outsider = {
        let client = client_for(&h.sim_url);
        tokio::spawn(async move { client.refresh(&RefreshToken::new(refresh_token)).await })
    };
    wait_until("the outsider's refresh is in flight", || {
        h.sim.refreshes_in_flight() == 1
    })
    .await;
    h.clock.advance(300);
    let mut settings = VaultSettings::new(60, Duration::from_secs(5));
    settings.retry_base = Duration::from_millis(200); // the documented 1–2 s backoff
    let vault = TokenVault::new(
        ConnectionStore::new(h.db.clone()),
        h.cipher.clone(),
        client_for(&h.sim_url),
        h.clock.clone(),
        settings,
    );
    let started = std::time::Instant::now();
    let token = vault
        .access_token_for(merchant)
        .await
        .expect("succeeds after backing off");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "backed off at least a second"
    );
    assert!(outsider.await.unwrap().is_ok());
    let counters = h.sim.counters();
    assert_eq!(counters.too_many_requests, 1);
    assert_eq!(counters.reuse_detections, 0);
    assert_eq!(h.account_status_with(&token.token).await, 200);
    h.finish().await;
}

async fn invalid_grant_means_reconnect(engine: Engine) {
    let (h, merchant) = harness_with_merchant(engine).await;
    // The refresh token runs out (61 days, no keeper).
    h.clock.advance(61 * 86_400);
    assert_eq!(
        h.vault.access_token_for(merchant).await.unwrap_err(),
        VaultError::NeedsReconnect(ReconnectReason::RefreshExpired)
    );
    h.assert_needs_reconnect(merchant, "refresh_expired").await;
    let calls = h.sim.counters().token_calls["refresh_token"];
    // Never sent again.
    assert!(h.vault.access_token_for(merchant).await.is_err());
    assert_eq!(h.sim.counters().token_calls["refresh_token"], calls);
    let row = h.vault.store().by_merchant(merchant).await.unwrap().unwrap();
    assert!(
        row.refresh_token.is_none() && row.access_token.is_none(),
        "dead tokens are forgotten"
    );
    h.assert_events(merchant, &[EventKind::Connected, EventKind::NeedsReconnect])
        .await;

    // Reconnecting restores the same record, history kept.
    let code = h
        .sim
        .approve(simulator::DEFAULT_CLIENT_ID, REDIRECT, &h.account(), None);
    h.connect(merchant, code).await;
    let again = h.vault.store().by_merchant(merchant).await.unwrap().unwrap();
    assert_eq!(again.id, row.id);
    assert_eq!(again.status, ConnectionStatus::Connected);
    h.assert_events(
        merchant,
        &[EventKind::Connected, EventKind::NeedsReconnect, EventKind::Reconnected],
    )
    .await;
    h.finish().await;
}

awx_onboard::both_engines!(invalid_grant_means_reconnect);

#[tokio::test]
async fn revocation_is_detected_through_a_401() {
    let (h, merchant) = harness_with_merchant(Engine::Sqlite).await;
    let (_, details) = h.vault.account_for(merchant).await.unwrap();
    assert_eq!(
        details.business_name.as_deref(),
        Some("Harbour Coffee Roasters Pty Ltd")
    );
    assert_eq!(h.sim.revoke_account(&h.account()), 1);
    assert_eq!(
        h.vault.account_for(merchant).await.unwrap_err(),
        VaultError::NeedsReconnect(ReconnectReason::Revoked)
    );
    h.assert_needs_reconnect(merchant, "revoked").await;
    h.assert_events(merchant, &[EventKind::Connected, EventKind::Revoked])
        .await;
    assert_eq!(h.sim.counters().reuse_detections, 0);
    h.finish().await;
}

fn signed(body: &str, secret: &str, at_millis: i64) -> (String, String) {
    let timestamp = at_millis.to_string();
    let signature = awx_onboard::webhook_signature::sign(secret.as_bytes(), &timestamp, body.as_bytes());
    (timestamp, signature)
}

async fn webhooks_revoke_and_bad_ones_change_nothing(engine: Engine) {
    let (h, merchant) = harness_with_merchant(engine).await;
    let store = h.vault.store();
    let secret = "whsec_test";
    let now = h.clock.now();
    let body = format!(
        r#"{{"id":"9a1f0c3e-5b7d-4e2a-8c6f-1d3b5a7c9e01","name":"connection.disconnected","account_id":"{a}","data":{{"id":"conn_x","account_id":"{a}","status":"DISCONNECTED","authorized_scopes":["account_details:read"]}},"created_at":"{at}","version":"2024-09-27","source_id":"conn_x"}}"#,
        a = h.account(),
        at = awx_onboard::time::rfc3339(now).replace('Z', "+0000"),
    );
    let (ts, sig) = signed(&body, secret, now * 1000);

    // Another event (its own id) for an account nobody here has connected.
    let unknown_body = body
        .replace(&h.account(), "acct_nobody")
        .replace("9a1f0c3e-5b7d", "0b2e1d4f-6c8e");
    let (uts, usig) = signed(&unknown_body, secret, now * 1000);
    let (sts, ssig) = signed(&body, secret, (now - 301) * 1000);
    let (mts, msig) = signed("{not json", secret, now * 1000);
    let bad: Vec<(Option<&str>, Option<&str>, &str, WebhookRejection)> = vec![
        (Some(&ts), Some("00ff"), &body, WebhookRejection::BadSignature),
        (Some(&ts), Some(&sig), &unknown_body, WebhookRejection::BadSignature),
        (Some(&sts), Some(&ssig), &body, WebhookRejection::StaleTimestamp),
        (Some(&mts), Some(&msig), "{not json", WebhookRejection::Malformed),
        (None, Some(&sig), &body, WebhookRejection::MissingHeaders),
    ];
    for (timestamp, signature, payload, expected) in bad {
        let result = webhooks::handle(store, secret.as_bytes(), timestamp, signature, payload.as_bytes(), now).await;
        assert_eq!(result, Err(expected));
        assert_eq!(
            h.status(merchant).await.0,
            ConnectionStatus::Connected,
            "nothing changed"
        );
    }
    assert_eq!(h.event_kinds(merchant).await, vec![EventKind::Connected]);
    // An account we do not know is acknowledged (so Airwallex stops retrying), nothing else.
    let unknown = webhooks::handle(
        store,
        secret.as_bytes(),
        Some(&uts),
        Some(&usig),
        unknown_body.as_bytes(),
        now,
    )
    .await;
    assert_eq!(unknown, Ok(WebhookOutcome::UnknownAccount));
    assert_eq!(h.status(merchant).await.0, ConnectionStatus::Connected);

    let applied = webhooks::handle(store, secret.as_bytes(), Some(&ts), Some(&sig), body.as_bytes(), now).await;
    assert!(matches!(applied, Ok(WebhookOutcome::Revoked(ref ids)) if ids.len() == 1));
    h.assert_needs_reconnect(merchant, "revoked").await;
    // A repeated delivery of the same event is recognised and harmless.
    let again = webhooks::handle(store, secret.as_bytes(), Some(&ts), Some(&sig), body.as_bytes(), now).await;
    assert_eq!(again, Ok(WebhookOutcome::Duplicate));
    h.assert_events(merchant, &[EventKind::Connected, EventKind::Revoked])
        .await;
    h.finish().await;
}

awx_onboard::both_engines!(webhooks_revoke_and_bad_ones_change_nothing);

#[tokio::test]
async fn the_keeper_rotates_idle_connections_before_they_expire() {
    let (h, merchant) = harness_with_merchant(Engine::Sqlite).await;
    let keeper = Keeper::new(h.vault.clone(), KeeperSettings::default());
    assert_eq!(keeper.run_once().await.unwrap().due, 0, "a new connection is not due");
    // 41 of 60 days: less than a third of the refresh token's life is left.
    h.clock.advance(41 * 86_400);
    let report = keeper.run_once().await.unwrap();
    assert_eq!((report.due, report.rotated), (1, 1));
    assert_eq!(keeper.run_once().await.unwrap().due, 0);
    // Another 41 days on: the original token would be long dead, the connection is not.
    h.clock.advance(41 * 86_400);
    assert_eq!(keeper.run_once().await.unwrap().rotated, 1);
    h.clock.advance(41 * 86_400);
    assert_eq!(keeper.run_once().await.unwrap().rotated, 1);
    let token = h.vault.access_token_for(merchant).await.unwrap();
    assert_eq!(h.account_status_with(&token.token).await, 200);
    h.assert_events(
        merchant,
        &[
            EventKind::Connected,
            EventKind::Refreshed,
            EventKind::Refreshed,
            EventKind::Refreshed,
        ],
    )
    .await;
    h.finish().await;
}

#[tokio::test]
async fn two_keepers_on_postgres_rotate_each_connection_once() {
    let h = harness(Engine::Postgres).await;
    let account = h.account();
    for i in 0..20 {
        h.connected_merchant(&format!("m{i}@x.example"), &account).await;
    }
    let other_db = h.test_db.connect().await;
    let other = Arc::new(new_vault(&other_db, &h.cipher, &h.sim_url, &h.clock));
    let first = Keeper::new(h.vault.clone(), KeeperSettings::default());
    let second = Keeper::new(other, KeeperSettings::default());
    h.clock.advance(41 * 86_400);
    let (a, b) = tokio::join!(first.run_once(), second.run_once());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(h.sim.counters().refreshes, 20, "each connection rotated exactly once");
    assert_eq!(a.failed + b.failed, 0);
    assert_eq!(h.sim.counters().too_many_requests, 0);
    other_db.close().await;
    h.finish().await;
}

#[tokio::test]
async fn a_long_run_with_faults_loses_nothing() {
    let h = harness(Engine::Sqlite).await;
    let mut merchants = Vec::new();
    for i in 0..100 {
        let account = h
            .sim
            .add_account(&format!("Business {i}"), &format!("owner{i}@x.example"));
        merchants.push(h.connected_merchant(&format!("m{i}@x.example"), &account).await);
    }
    h.sim.set_random_faults(
        Endpoint::Token,
        RandomFaults {
            error500: 0.05,
            drop: 0.02,
        },
    );
    let keeper = Keeper::new(h.vault.clone(), KeeperSettings::default());
    let active = &merchants[..50]; // the other 50 are idle: only the keeper keeps them alive
    let mut unavailable = 0usize;
    let steps = 400; // 200 days in 12-hour steps
    for _ in 0..steps {
        h.clock.advance(12 * 3_600);
        let callers = (0..12).map(|_| {
            let vault = h.vault.clone();
            let merchant = active[rand::random::<usize>() % active.len()];
            async move { vault.access_token_for(merchant).await }
        });
        let (results, pass) = tokio::join!(futures::future::join_all(callers), keeper.run_once());
        pass.unwrap();
        for result in results {
            match result {
                Ok(_) => {}
                Err(VaultError::Unavailable) => unavailable += 1,
                Err(other) => panic!("a caller saw {other:?}"),
            }
        }
        // The keeper runs often; a refresh left unconfirmed is picked up in time.
        keeper.run_once().await.unwrap();
    }
    let counters = h.sim.counters();
    assert_eq!(counters.reuse_detections, 0, "no refresh token was ever reused");
    assert_eq!(counters.revocations, 0);
    for merchant in &merchants {
        assert_eq!(
            h.status(*merchant).await.0,
            ConnectionStatus::Connected,
            "merchant {merchant} lost"
        );
    }
    h.sim.set_random_faults(Endpoint::Token, RandomFaults::default());
    for merchant in &merchants {
        let token = h.vault.access_token_for(*merchant).await.unwrap();
        assert_eq!(h.account_status_with(&token.token).await, 200);
    }
    println!(
        "long run: {} refreshes, {} token calls, {} unavailable answers to callers",
        counters.refreshes,
        counters.token_calls.values().sum::<u64>(),
        unavailable
    );
    // A caller is told "unavailable" only when every retry of a refresh failed: rare.
    let calls = steps * 12;
    assert!(
        unavailable * 100 <= calls,
        "{unavailable} of {calls} callers were turned away (more than 1 %)"
    );
    // No plaintext token anywhere in the database files: the database file itself must
    // be read (the write-ahead log only while it exists).
    let path = h.test_db.url.trim_start_matches("sqlite://").to_string();
    h.db.close().await;
    let mut scanned = 0;
    for (file, required) in [(path.clone(), true), (format!("{path}-wal"), false)] {
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(error) if required => panic!("the database file {file} must be scanned: {error}"),
            Err(_) => continue,
        };
        scanned += bytes.len();
        for marker in [b"awx_at_".as_slice(), b"awx_rt_".as_slice()] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "plaintext token in {file}"
            );
        }
    }
    assert!(
        scanned > 100_000,
        "100 connections' worth of database was scanned: {scanned} bytes"
    );
    h.test_db.remove().await;
}

/// A second connection to the test database that can hold a connection's row (a long
/// write transaction: SQLite's write lock, a row lock on PostgreSQL).
struct Stall {
    db: Database,
}

impl Stall {
    async fn new(h: &Harness) -> Stall {
        Stall {
            db: h.test_db.connect().await,
        }
    }

    /// Holds the row until the returned sender fires.
    async fn hold(&self, connection_id: i64) -> tokio::sync::oneshot::Sender<()> {
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (held, is_held) = tokio::sync::oneshot::channel::<()>();
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            sqlx::query("UPDATE connections SET updated_at = updated_at WHERE id = $1")
                .bind(connection_id)
                .execute(&mut *tx)
                .await
                .unwrap();
            let _ = held.send(());
            let _ = released.await;
            tx.commit().await.unwrap();
        });
        is_held.await.unwrap();
        release
    }

    /// Waits until someone else waits for the held row. PostgreSQL shows it (a lock not
    /// granted); SQLite's busy waiting shows nowhere, so there the waiter gets `settle`.
    async fn wait_for_waiter(&self, settle: Duration) {
        match self.db.engine() {
            Engine::Postgres => self.wait_for_waiters(1).await,
            Engine::Sqlite => tokio::time::sleep(settle).await,
        }
    }

    /// PostgreSQL: waits until `count` sessions wait for a lock.
    async fn wait_for_waiters(&self, count: i64) {
        match self.db.engine() {
            Engine::Postgres => {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                         AND wait_event_type = 'Lock'",
                    )
                    .fetch_one(self.db.pool())
                    .await
                    .unwrap();
                    if waiting >= count {
                        return;
                    }
                    assert!(std::time::Instant::now() < deadline, "{count} waiting for the held row");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Engine::Sqlite => unreachable!("SQLite shows no lock waits"),
        }
    }
}

async fn a_resend_held_up_by_the_database_never_leaves_after_the_grace_minute(engine: Engine) {
    let mut h = harness(engine).await;
    let mut settings = fast_settings();
    settings.retry_base = Duration::from_millis(400);
    h.vault = Arc::new(TokenVault::new(
        ConnectionStore::new(h.db.clone()),
        h.cipher.clone(),
        client_for(&h.sim_url),
        h.clock.clone(),
        settings,
    ));
    let merchant = h.connected_merchant("a@x.example", &h.account()).await;
    let connection = h.vault.store().by_merchant(merchant).await.unwrap().unwrap().id;
    h.clock.advance(300);
    // Airwallex rotates, but the answer is lost: the vault will resend the same token.
    h.sim.inject(Endpoint::Token, FaultKind::Drop, 1);
    let stall = Stall::new(&h).await;
    let vault = h.vault.clone();
    let refresh = tokio::spawn(async move { vault.access_token_for(merchant).await });
    wait_until("the dropped refresh reached Airwallex", || {
        h.sim.counters().refreshes == 1
    })
    .await;
    // The database stalls right then. The retry (after a 0.4–0.8 s backoff) decides to
    // resend, then waits for the database; meanwhile the grace minute runs out.
    let release = stall.hold(connection).await;
    stall.wait_for_waiter(Duration::from_millis(1000)).await;
    h.clock.advance(61);
    release.send(()).unwrap();
    let result = refresh.await.unwrap();
    assert_eq!(
        result.err(),
        Some(VaultError::NeedsReconnect(ReconnectReason::RefreshUnconfirmed)),
        "the stale token is not sent"
    );
    assert_eq!(h.sim.counters().reuse_detections, 0, "Airwallex never saw a reuse");
    h.finish().await;
}
awx_onboard::both_engines!(a_resend_held_up_by_the_database_never_leaves_after_the_grace_minute);

#[tokio::test]
async fn good_tokens_are_kept_when_the_lease_moved_during_a_slow_commit() {
    let (h, merchant) = harness_with_merchant(Engine::Postgres).await;
    let connection = h.vault.store().by_merchant(merchant).await.unwrap().unwrap().id;
    let vault_with_short_lease = |db: &Database| {
        let mut settings = fast_settings();
        settings.lease = Duration::from_secs(1);
        Arc::new(TokenVault::new(
            ConnectionStore::new(db.clone()),
            h.cipher.clone(),
            client_for(&h.sim_url),
            h.clock.clone(),
            settings,
        ))
    };
    let first = vault_with_short_lease(&h.db);
    let other_db = h.test_db.connect().await;
    let second = vault_with_short_lease(&other_db);
    let stall = Stall::new(&h).await;
    h.clock.advance(300);
    // The first instance's refresh takes longer than its lease (whole seconds) ...
    h.sim.inject(Endpoint::Token, FaultKind::Delay { ms: 3000 }, 1);
    let a = {
        let first = first.clone();
        tokio::spawn(async move { first.access_token_for(merchant).await })
    };
    wait_until("the refresh is at Airwallex", || h.sim.refreshes_in_flight() == 1).await;
    loop {
        let lease_until: Option<i64> = sqlx::query_scalar("SELECT lease_until FROM connections WHERE id = $1")
            .bind(connection)
            .fetch_one(h.db.pool())
            .await
            .unwrap();
        if lease_until.is_some_and(|until| until < awx_onboard::time::real_now()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... the database stalls; the second instance queues for the lapsed lease before the
    // first instance's answer arrives and queues its commit; time passes beyond the
    // resend window meanwhile.
    let release = stall.hold(connection).await;
    let b = {
        let second = second.clone();
        tokio::spawn(async move { second.access_token_for(merchant).await })
    };
    stall.wait_for_waiters(2).await;
    h.clock.advance(52);
    release.send(()).unwrap();
    let a = a.await.unwrap().expect("the first instance's new tokens are kept");
    let b = b.await.unwrap().expect("the second instance uses them");
    assert_eq!(a.token, b.token);
    assert_eq!(h.status(merchant).await.0, ConnectionStatus::Connected);
    assert_eq!(h.sim.counters().reuse_detections, 0);
    assert_eq!(h.account_status_with(&a.token).await, 200);
    other_db.close().await;
    h.finish().await;
}

#[tokio::test]
async fn the_keeper_stops_between_batches_on_shutdown() {
    let h = harness(Engine::Sqlite).await;
    let account = h.account();
    let merchants = awx_onboard::testing::connect_merchants(&h.vault, &h.sim, REDIRECT, &account, 40).await;
    // Every refresh token is due; each rotation takes 300 ms at Airwallex.
    h.clock.advance(41 * 86_400);
    h.sim.inject(Endpoint::Token, FaultKind::Delay { ms: 300 }, 40);
    let keeper = Arc::new(Keeper::new(
        h.vault.clone(),
        KeeperSettings {
            concurrency: 4,
            ..KeeperSettings::default()
        },
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(keeper.clone().run(stopped));
    wait_until("rotations have begun", || h.sim.counters().refreshes >= 4).await;
    let asked = std::time::Instant::now();
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the keeper stops")
        .unwrap();
    assert!(
        asked.elapsed() < Duration::from_millis(1500),
        "only the rotations in flight finished: {:?}",
        asked.elapsed()
    );
    let rotated = h.sim.counters().refreshes;
    assert!(rotated > 0 && rotated < 40, "{rotated} of 40 rotated before stopping");
    for merchant in merchants {
        let row = h.vault.store().by_merchant(merchant).await.unwrap().unwrap();
        assert_eq!(row.status, ConnectionStatus::Connected);
        assert_eq!(row.refresh_sent_at, None, "no refresh left unconfirmed");
    }
    h.finish().await;
}

/// Every new pooled connection prepares a write transaction's statements for the first
/// time inside that transaction. On SQLite, preparing reads the schema: a deferred `BEGIN`
/// then holds a read snapshot, its first write must upgrade, and an upgrade that meets
/// another writer fails at once ("database is locked"), whatever the busy timeout. Many
/// fresh connections (new pools, as at start-up or when idle connections are replaced)
/// storing authorizations at once must all succeed.
#[tokio::test]
async fn fresh_connections_storing_at_once_on_sqlite_all_succeed() {
    use awx_onboard::store::{AccountRecord, SealedTokens};
    const POOLS: usize = 16;
    const PER_POOL: usize = 8;
    let h = harness(Engine::Sqlite).await;
    let now = h.clock.now();
    let mut rows = Vec::new();
    for i in 0..POOLS * PER_POOL {
        let merchant = insert_merchant(&h.db, &format!("fresh{i}@x.example")).await;
        rows.push(h.vault.store().ensure_row(merchant, now).await.unwrap());
    }
    let pools = futures::future::join_all((0..POOLS).map(|_| h.test_db.connect())).await;
    let writes = rows.iter().enumerate().map(|(i, &row)| {
        let store = ConnectionStore::new(pools[i % POOLS].clone());
        async move {
            let sealed = SealedTokens {
                key_id: "k1".into(),
                access_token: vec![1; 48],
                access_expires_at: now + 300,
                refresh_token: vec![2; 48],
                refresh_issued_at: now,
                refresh_expires_at: now + 86_400,
                rotate_due_at: now + 43_200,
                scope: None,
            };
            let account = AccountRecord {
                account_id: Some("acct_fresh"),
                business_name: Some("Fresh Co"),
                account_json: None,
            };
            store.store_authorization(row, &sealed, &account, "test", now).await
        }
    });
    let results = futures::future::join_all(writes).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} stores failed: {:?}",
        failed.len(),
        results.len(),
        failed.first()
    );
    for pool in pools {
        pool.close().await;
    }
    h.finish().await;
}
