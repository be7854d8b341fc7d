//! What pages receive from the server. Plain data: no tokens, no hashes, no internals.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub email: String,
    pub is_operator: bool,
}

/// A message for the form a failed POST came from, with what the person typed (never a
/// password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormFeedback {
    pub message: String,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    NotConnected,
    Connected,
    NeedsReconnect { reason: String },
    Disconnected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AccountView {
    pub business_name: Option<String>,
    pub trading_name: Option<String>,
    pub account_id: Option<String>,
    pub status: Option<String>,
    pub legal_entity_type: Option<String>,
    pub email: Option<String>,
    pub country: Option<String>,
    pub created: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub state: ConnectionState,
    pub account: Option<AccountView>,
    pub account_stale: bool,
    pub connected_at: Option<String>,
    pub last_refresh_at: Option<String>,
}
