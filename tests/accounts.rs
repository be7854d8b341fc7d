//! Accounts under hostile input, against a real database: guessing is bounded per account
//! and address even when the guesses arrive at once (and across instances), nobody can lock
//! the owner out from another address, sign-ups are throttled, and the password-hashing
//! queue is bounded with logins ahead of sign-ups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use awx_onboard::accounts::{
    Account, AccountError, Accounts, Password, MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS, MAX_FAILURES_PER_ADDRESS,
    MAX_SIGN_UPS_PER_ADDRESS,
};
use awx_onboard::db::{Database, Engine};
use awx_onboard::testing::TestDatabase;
use awx_onboard::time::Clock;

const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "wrong horse battery staple";

async fn accounts(engine: Engine, slots: usize) -> (TestDatabase, Database, Accounts, Clock) {
    let test_db = TestDatabase::new(engine).await;
    let db = test_db.connect().await;
    let clock = Clock::system();
    let accounts = Accounts::new(db.clone(), clock.clone(), slots);
    (test_db, db, accounts, clock)
}

/// [`accounts`] with one slot and `email` signed up (from 10.0.0.1) with [`PASSWORD`].
async fn accounts_with(engine: Engine, email: &str) -> (TestDatabase, Database, Accounts, Clock) {
    let (test_db, db, accounts, clock) = accounts(engine, 1).await;
    accounts
        .sign_up(email, &Password::new(PASSWORD), "10.0.0.1")
        .await
        .unwrap();
    (test_db, db, accounts, clock)
}

/// Thirty wrong passwords for ana@example.com from one address at once, taking turns over
/// `instances`; what each got.
async fn thirty_guesses_at_once(instances: &[Accounts]) -> Vec<Result<Account, AccountError>> {
    let guesses = (0..30).map(|i| {
        let accounts = instances[i % instances.len()].clone();
        tokio::spawn(async move {
            accounts
                .log_in("ana@example.com", &Password::new(WRONG), "203.0.113.7")
                .await
        })
    });
    futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

async fn thirty_parallel_guesses_evaluate_at_most_five(engine: Engine) {
    let (test_db, db, accounts, _) = accounts_with(engine, "ana@example.com").await;
    let results = thirty_guesses_at_once(std::slice::from_ref(&accounts)).await;
    let evaluated = results
        .iter()
        .filter(|r| **r == Err(AccountError::InvalidCredentials))
        .count();
    let throttled = results.iter().filter(|r| **r == Err(AccountError::Throttled)).count();
    assert_eq!(evaluated as i64, MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS, "{results:?}");
    assert_eq!(evaluated + throttled, 30);
    // The same address stays throttled for this account, even with the right password.
    assert_eq!(
        accounts
            .log_in("ana@example.com", &Password::new(PASSWORD), "203.0.113.7")
            .await,
        Err(AccountError::Throttled)
    );
    // The owner, from another address, logs in at once.
    let owner = accounts
        .log_in("ana@example.com", &Password::new(PASSWORD), "198.51.100.20")
        .await
        .expect("the owner is not locked out");
    assert_eq!(owner.email, "ana@example.com");
    db.close().await;
    test_db.remove().await;
}
awx_onboard::both_engines!(thirty_parallel_guesses_evaluate_at_most_five);

#[tokio::test]
async fn the_bound_holds_across_instances() {
    let (test_db, db, accounts, clock) = accounts_with(Engine::Postgres, "ana@example.com").await;
    let other_db = test_db.connect().await;
    let other = Accounts::new(other_db.clone(), clock, 1);
    let evaluated = thirty_guesses_at_once(&[accounts.clone(), other.clone()])
        .await
        .into_iter()
        .filter(|r| *r == Err(AccountError::InvalidCredentials))
        .count();
    assert_eq!(evaluated as i64, MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS);
    other_db.close().await;
    db.close().await;
    test_db.remove().await;
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_stopped() {
    let (test_db, db, accounts, clock) = accounts(Engine::Sqlite, 1).await;
    let mut throttled_at = None;
    for i in 0..40 {
        let result = accounts
            .log_in(&format!("user{i}@example.com"), &Password::new(WRONG), "203.0.113.9")
            .await;
        if result == Err(AccountError::Throttled) {
            throttled_at = Some(i);
            break;
        }
        assert_eq!(result, Err(AccountError::InvalidCredentials));
    }
    let throttled_at = throttled_at.expect("a per-address limit across accounts");
    assert_eq!(
        throttled_at, MAX_FAILURES_PER_ADDRESS,
        "a shared office address gets exactly its room"
    );
    // Another address is not affected; after the window the address may try again.
    assert_eq!(
        accounts
            .log_in("someone@example.com", &Password::new(WRONG), "198.51.100.1")
            .await,
        Err(AccountError::InvalidCredentials)
    );
    clock.advance(15 * 60 + 1);
    assert_eq!(
        accounts
            .log_in("user0@example.com", &Password::new(WRONG), "203.0.113.9")
            .await,
        Err(AccountError::InvalidCredentials)
    );
    db.close().await;
    test_db.remove().await;
}

#[tokio::test]
async fn a_failure_burst_on_an_account_slows_it_down_without_locking_it() {
    let (test_db, db, accounts, _) = accounts_with(Engine::Sqlite, "ops@example.com").await;
    // Guesses from many addresses (a botnet): each address within its own bound.
    for i in 0..20 {
        let _ = accounts
            .log_in("ops@example.com", &Password::new(WRONG), &format!("203.0.113.{i}"))
            .await;
    }
    let started = Instant::now();
    let owner = accounts
        .log_in("ops@example.com", &Password::new(PASSWORD), "198.51.100.20")
        .await;
    assert!(owner.is_ok(), "the owner gets in: {owner:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "slowed down, never locked: {:?}",
        started.elapsed()
    );
    db.close().await;
    test_db.remove().await;
}

#[tokio::test]
async fn sign_ups_are_throttled_per_address() {
    let (test_db, db, accounts, clock) = accounts(Engine::Sqlite, 1).await;
    let mut accepted = 0;
    let mut throttled = 0;
    for i in 0..40 {
        match accounts
            .sign_up(&format!("new{i}@example.com"), &Password::new(PASSWORD), "203.0.113.50")
            .await
        {
            Ok(_) => accepted += 1,
            Err(AccountError::SignUpThrottled) => throttled += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, MAX_SIGN_UPS_PER_ADDRESS, "sign-ups accepted from one address");
    assert_eq!(accepted + throttled, 40);
    // Other addresses sign up as usual; the address gets room again after the window.
    assert!(accounts
        .sign_up("elsewhere@example.com", &Password::new(PASSWORD), "198.51.100.3")
        .await
        .is_ok());
    clock.advance(3600 + 1);
    assert!(accounts
        .sign_up("later@example.com", &Password::new(PASSWORD), "203.0.113.50")
        .await
        .is_ok());
    db.close().await;
    test_db.remove().await;
}

#[tokio::test]
async fn the_hashing_queue_is_bounded_and_answers_at_once_when_full() {
    let (test_db, db, accounts, _) = accounts(Engine::Sqlite, 1).await;
    let calls = (0..40).map(|i| {
        let accounts = accounts.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = accounts
                .log_in(
                    &format!("nobody{i}@example.com"),
                    &Password::new(WRONG),
                    &format!("203.0.{}.{}", i / 200, i % 200),
                )
                .await;
            (result, started.elapsed())
        })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let busy: Vec<_> = results.iter().filter(|(r, _)| *r == Err(AccountError::Busy)).collect();
    assert!(!busy.is_empty(), "40 hashes at once on one slot: some are refused");
    assert!(
        busy.iter().all(|(_, took)| *took < Duration::from_millis(500)),
        "refused at once, not after waiting"
    );
    db.close().await;
    test_db.remove().await;
}

#[tokio::test]
async fn logins_go_ahead_of_sign_ups() {
    let (test_db, db, accounts, _) = accounts_with(Engine::Sqlite, "ana@example.com").await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (accounts, order) = (accounts.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _ = accounts
                .sign_up(
                    &format!("rush{i}@example.com"),
                    &Password::new(PASSWORD),
                    &format!("10.1.0.{i}"),
                )
                .await;
            order.lock().unwrap().push(format!("sign-up {i}"));
        }));
    }
    // One sign-up hashes; at least two more queue behind it (the fourth may still be
    // reserving its attempt on a loaded machine). In arrival order the log-in would come
    // fourth or later; it must come no later than third.
    awx_onboard::testing::wait_until("the sign-ups queue", || accounts.hashes_waiting() >= 2).await;
    {
        let (accounts, order) = (accounts.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            accounts
                .log_in("ana@example.com", &Password::new(PASSWORD), "10.2.0.1")
                .await
                .expect("the login succeeds");
            order.lock().unwrap().push("login".to_string());
        }));
    }
    futures::future::join_all(tasks).await;
    let order = order.lock().unwrap().clone();
    let login_at = order.iter().position(|o| o == "login").unwrap();
    assert!(login_at <= 2, "the login waited behind the sign-up rush: {order:?}");
    db.close().await;
    test_db.remove().await;
}
