//! The server's integration tests, one binary (less link time): the real app on a free
//! port over real HTTP, on SQLite and PostgreSQL, against its embedded simulator.

mod accounts;
mod app;
mod connect_sessions;
mod hardening;
mod journey;
mod mail;
mod operator;
mod platform;
mod production;
mod proxy;
mod retention;
mod round_trips;
mod second_factor;
mod team;
mod trends;
