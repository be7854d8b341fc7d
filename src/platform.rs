//! What the platform's own systems get: service keys with scopes ([`keys`]), the
//! merchants' connections as a directory ([`directory`]), audited access-token reads
//! ([`audit`]), and connection events delivered to their webhook endpoints from a durable
//! outbox ([`outbox`]).

pub mod audit;
pub mod connect_sessions;
pub mod directory;
pub mod keys;
pub mod outbox;
pub mod proxy_calls;
