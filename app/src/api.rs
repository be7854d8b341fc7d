//! Server functions: how pages read data. Mutations are plain form posts handled by the
//! server (they work the same with and without JavaScript).

use leptos::prelude::*;

use crate::dto::{ConnectionView, UserView};

#[cfg(feature = "ssr")]
pub mod ssr {
    use leptos::prelude::*;

    use awx_onboard::accounts::{Access, Account, CurrentAccount, Denied};
    use awx_onboard::services::Services;

    pub fn services() -> Result<std::sync::Arc<Services>, ServerFnError> {
        use_context::<std::sync::Arc<Services>>().ok_or_else(|| ServerFnError::new("services missing"))
    }

    /// What the server put on this request as it looked it up once for the request (see
    /// the server's `access` module), if it did.
    pub fn from_request<T: Clone + Send + Sync + 'static>() -> Option<T> {
        use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get::<T>().cloned())
    }

    /// The account signed in on this request.
    pub fn signed_in() -> Option<Account> {
        from_request::<CurrentAccount>().and_then(|current| current.0)
    }

    /// What the browser hears when a read fails (the cause stays on the server).
    pub fn went_wrong<E>(_: E) -> ServerFnError {
        ServerFnError::new("Something went wrong on our side. Please try again.")
    }

    /// The signed-in account if [`Access`] lets it in; otherwise an error, and 401/403 on
    /// the response. The server guards whole areas with the same rule before this runs.
    pub fn require(access: Access) -> Result<Account, ServerFnError> {
        let account = signed_in();
        let refusal = match access.check(account.as_ref()) {
            Ok(()) => return account.ok_or_else(|| ServerFnError::new("Log in to continue.")),
            Err(Denied::LoginRequired) => (http::StatusCode::UNAUTHORIZED, "Log in to continue."),
            Err(Denied::OperatorsOnly) => (http::StatusCode::FORBIDDEN, "Only operators can see this."),
        };
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(refusal.0);
        }
        Err(ServerFnError::new(refusal.1))
    }

    pub fn reason_text(reason: Option<awx_onboard::store::ReconnectReason>) -> String {
        use awx_onboard::store::ReconnectReason::*;
        match reason {
            Some(Revoked) => "Airwallex told us access was revoked, for example because the app was disconnected in Airwallex.",
            Some(RefreshRejected) => "Airwallex no longer accepts this connection's credentials.",
            Some(RefreshExpired) => "The connection was unused for too long and expired.",
            Some(RefreshUnconfirmed) => "We could not confirm a renewal with Airwallex in time, so we stopped using the connection to keep it safe.",
            None => "Airwallex no longer accepts this connection.",
        }
        .to_string()
    }
}

/// Who is signed in (for the header), or `None`.
#[server(endpoint = "current_user")]
pub async fn current_user() -> Result<Option<UserView>, ServerFnError> {
    Ok(ssr::signed_in().map(|account| UserView {
        email: account.email,
        is_operator: account.role == awx_onboard::accounts::Role::Operator,
    }))
}

/// The signed-in merchant's connection page data.
#[server(endpoint = "connection")]
pub async fn load_connection() -> Result<ConnectionView, ServerFnError> {
    use crate::dto::{AccountView, ConnectionState};
    use awx_onboard::accounts::lifecycle::EmailVerified;
    use awx_onboard::mail::EmailChoice;
    use awx_onboard::overview::CurrentConnection;
    use awx_onboard::sessions::SessionState;
    use awx_onboard::store::ConnectionStatus;
    use awx_onboard::time::{human_date, human_datetime};

    let account = ssr::require(awx_onboard::accounts::Access::SignedIn)?;
    // Read with the session when the server had it (one round trip for the page).
    let known = ssr::from_request::<CurrentConnection>().map(|current| current.0);
    let services = ssr::services()?;
    let overview = services
        .connections
        .overview(account.id, known)
        .await
        .map_err(ssr::went_wrong)?;
    // Read with the session too when the server had it; otherwise one more query.
    let emails_on = match ssr::from_request::<EmailChoice>() {
        Some(choice) => choice.0,
        None => services.mail.emails_on(account.id).await.map_err(ssr::went_wrong)?,
    };
    let email_verified = match ssr::from_request::<EmailVerified>() {
        Some(verified) => verified.0,
        None => services.links.is_verified(account.id).await.map_err(ssr::went_wrong)?,
    };
    let platform_return = match ssr::from_request::<SessionState>() {
        Some(session) => session.platform_return().await,
        None => None,
    };
    let back_to = platform_return.map(|back| crate::dto::BackLink {
        label: format!("Back to {}", services.connect_sessions.settings().platform_name),
        href: back.return_url,
    });
    let state = match overview.status {
        None => ConnectionState::NotConnected,
        Some(ConnectionStatus::Connected) => ConnectionState::Connected,
        Some(ConnectionStatus::NeedsReconnect) => ConnectionState::NeedsReconnect {
            reason: ssr::reason_text(overview.reason),
        },
        Some(ConnectionStatus::Disconnected) => ConnectionState::Disconnected,
    };
    Ok(ConnectionView {
        state,
        account: overview.account.map(|a| AccountView {
            business_name: a.business_name.clone(),
            trading_name: a.trading_name.clone(),
            account_id: a.id.clone(),
            status: a.status.clone(),
            legal_entity_type: a.legal_entity_type.clone(),
            email: a.email.clone(),
            country: a.country_code.clone(),
            created: a.created_at.as_deref().map(human_date),
        }),
        account_stale: overview.account_stale,
        connected_at: overview.connected_at.map(human_datetime),
        last_refresh_at: overview.last_refresh_at.map(human_datetime),
        emails_on,
        back_to,
        email_verified,
        email: account.email.clone(),
    })
}
