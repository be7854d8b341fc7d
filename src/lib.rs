//! awx-onboard core: everything the web app does that is not a web page.
//!
//! The Airwallex client, the token vault (refresh, rotation, locking), storage through
//! sqlx on SQLite or PostgreSQL, encryption at rest, merchant accounts, the keeper, and an
//! Airwallex simulator that follows the documented protocol. No Leptos in here.

pub mod accounts;
pub mod airwallex;
pub mod crypto;
pub mod db;
pub mod keeper;
pub mod metrics;
pub mod oauth;
pub mod operator;
pub mod overview;
pub mod secret;
pub mod services;
pub mod simulator;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod time;
pub mod vault;
pub mod webhook_signature;
pub mod webhooks;
