//! What the authorization flow takes and gives: its settings, the callback's query, the
//! Airwallex account a consent may bring back, and how a callback ends.

use crate::airwallex::{AccountDetails, AirwallexError};
use crate::secret::AuthorizationCode;
use crate::store::EventKind;

/// What went wrong at the callback; each has its own page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackProblem {
    #[error("the callback had no state")]
    MissingState,
    #[error("the state is unknown")]
    UnknownState,
    #[error("the state was already used")]
    ReusedState,
    #[error("the state expired")]
    ExpiredState,
    #[error("the state belongs to another session")]
    OtherSession,
    #[error("the merchant declined")]
    Declined,
    #[error("Airwallex reported an error")]
    AirwallexError(String),
    #[error("the code exchange failed")]
    ExchangeFailed,
    /// The consent was for another Airwallex account than the connection's (pinned).
    #[error("the consent was for another Airwallex account")]
    AccountMismatch { expected: String },
    #[error("Airwallex could not be reached")]
    Unreachable,
    #[error("internal error")]
    Internal,
}

impl CallbackProblem {
    /// A stable slug for URLs and logs.
    pub fn slug(&self) -> &'static str {
        match self {
            CallbackProblem::MissingState => "missing_state",
            CallbackProblem::UnknownState => "unknown_state",
            CallbackProblem::ReusedState => "reused_state",
            CallbackProblem::ExpiredState => "expired_state",
            CallbackProblem::OtherSession => "other_session",
            CallbackProblem::Declined => "declined",
            CallbackProblem::AirwallexError(_) => "airwallex_error",
            CallbackProblem::ExchangeFailed => "exchange_failed",
            CallbackProblem::AccountMismatch { .. } => "account_mismatch",
            CallbackProblem::Unreachable => "unreachable",
            CallbackProblem::Internal => "internal",
        }
    }
}

/// The query of `GET /oauth/callback`.
/// (`Debug` shows no code: [`AuthorizationCode`] is redacted.)
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct CallbackParams {
    pub code: Option<AuthorizationCode>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// How this app asks Airwallex for authorization.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub authorize_url: String,
    pub redirect_uri: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

/// Why a new authorization could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the authorization code could not be exchanged: {0}")]
    Exchange(AirwallexError),
    #[error("the account details could not be read: {0}")]
    Account(AirwallexError),
    #[error("the consent was for another Airwallex account than {expected}")]
    AccountMismatch { expected: String },
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

/// Which Airwallex account a new consent may bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountPin {
    /// The connection's last account; after a disconnect, any (the merchant's own flow:
    /// they disconnect first to change accounts on purpose).
    UnlessDisconnected,
    /// The connection's last account, whatever its status (a connect session).
    Always,
    /// Any account (a connect session that allows the change).
    Free,
}

impl AccountPin {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountPin::UnlessDisconnected => "unless_disconnected",
            AccountPin::Always => "always",
            AccountPin::Free => "free",
        }
    }

    pub fn parse(text: &str) -> Option<AccountPin> {
        [AccountPin::UnlessDisconnected, AccountPin::Always, AccountPin::Free]
            .into_iter()
            .find(|pin| pin.as_str() == text)
    }

    /// The pin of a connect session's authorizations (and of anything its browser starts).
    pub fn of_connect_session(allow_account_change: bool) -> AccountPin {
        if allow_account_change {
            AccountPin::Free
        } else {
            AccountPin::Always
        }
    }
}

/// A completed authorization.
#[derive(Debug, Clone)]
pub struct Completed {
    pub connection_id: i64,
    pub account: AccountDetails,
    /// [`EventKind::Connected`] or [`EventKind::Reconnected`].
    pub kind: EventKind,
    /// The connect session the authorization was started from, if any.
    pub connect_session: Option<String>,
}

/// A callback that stored nothing: why, and the connect session it belonged to (when the
/// state was this browser's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackFailure {
    pub problem: CallbackProblem,
    pub connect_session: Option<String>,
}

impl From<CallbackProblem> for CallbackFailure {
    fn from(problem: CallbackProblem) -> Self {
        CallbackFailure {
            problem,
            connect_session: None,
        }
    }
}
