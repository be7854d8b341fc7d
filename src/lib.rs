//! awx-onboard core: everything the web app does that is not a web page.
//!
//! The Airwallex client, the token vault (refresh, rotation, locking), storage through
//! sqlx on SQLite or PostgreSQL, encryption at rest, merchant accounts and sessions, the
//! keeper, and (feature `simulator`) an Airwallex simulator that follows the documented
//! protocol. No Leptos, and without `simulator` no web framework either.

pub mod accounts;
pub mod airwallex;
pub mod crypto;
pub mod db;
pub mod html;
pub mod keeper;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod operator;
pub mod outbox_queue;
pub mod overview;
pub mod platform;
pub mod retention;
pub mod rotation;
pub mod secret;
pub mod security_log;
pub mod services;
pub mod sessions;
#[cfg(feature = "simulator")]
pub mod simulator;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod trends;
pub mod urls;
pub mod vault;
pub mod webhook_signature;
pub mod webhooks;
