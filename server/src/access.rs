//! Who may enter. The signed-in account is looked up once per request
//! ([`load_account`]); each area of the router (public, merchant, operator, see
//! `app::paths::Area`) is guarded by [`guard`] as a `route_layer`; plain handlers receive
//! the account through the [`SignedIn`] and [`OperatorUser`] extractors. All of them apply
//! the one rule, [`Access::check`].

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::Session;

use app::paths::{Area, LocalPath, Notice};
use awx_onboard::accounts::{Access, Account, CurrentAccount, Denied};
use awx_onboard::overview::CurrentConnection;
use awx_onboard::security_log::SecurityEventKind;
use awx_onboard::sessions::SessionState;

use crate::error::AppError;
use crate::net::ClientAddr;
use crate::state::AppState;

/// What each area of the app requires.
pub fn access_for(area: Area) -> Access {
    match area {
        Area::Public => Access::Anyone,
        Area::Merchant => Access::SignedIn,
        Area::Operator => Access::Operator,
    }
}

/// Reads the signed-in account from the session once, keeps an active session alive, and
/// leaves both the account and the typed session in the request's extensions.
pub async fn load_account(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let session = SessionState::new(session);
    let account = session.account().await?;
    if account.is_some() {
        session.keep_alive(state.services.clock.now()).await;
        if let Some(connection) = session.connection().await {
            request.extensions_mut().insert(CurrentConnection(connection));
        }
        if let Some(on) = session.emails_on().await {
            request.extensions_mut().insert(awx_onboard::mail::EmailChoice(on));
        }
        if let Some(verified) = session.email_verified().await {
            request
                .extensions_mut()
                .insert(awx_onboard::accounts::lifecycle::EmailVerified(verified));
        }
    }
    request.extensions_mut().insert(CurrentAccount(account));
    request.extensions_mut().insert(session);
    Ok(next.run(request).await)
}

fn current(parts_extensions: &axum::http::Extensions) -> Option<&Account> {
    parts_extensions.get::<CurrentAccount>().and_then(|c| c.0.as_ref())
}

/// Why someone was refused, as the answer: anonymous visitors go to the login page and
/// come back (to the page they asked for, or to the area's home after a form post).
fn refusal(denied: Denied, method: &Method, uri: &axum::http::Uri) -> AppError {
    match denied {
        Denied::OperatorsOnly => AppError::OperatorsOnly,
        Denied::LoginRequired => {
            let home = LocalPath::trusted(Area::of(uri.path()).home());
            let next = if method == Method::GET {
                uri.path_and_query()
                    .and_then(|p| LocalPath::parse(p.as_str()))
                    .unwrap_or(home)
            } else {
                home
            };
            AppError::LoginRequired {
                next,
                notice: Notice::LoginRequired,
            }
        }
    }
}

/// Guards one area of the router (pages, server functions and plain handlers alike).
pub async fn guard(area: Area, request: Request, next: Next) -> Result<Response, AppError> {
    access_for(area)
        .check(current(request.extensions()))
        .map_err(|denied| refusal(denied, request.method(), request.uri()))?;
    Ok(next.run(request).await)
}

fn require(parts: &Parts, access: Access) -> Result<Account, AppError> {
    let account = current(&parts.extensions);
    access
        .check(account)
        .map_err(|denied| refusal(denied, &parts.method, &parts.uri))?;
    account
        .cloned()
        .ok_or_else(|| AppError::internal("an admitted request has no account"))
}

/// The signed-in account (merchant or operator).
pub struct SignedIn(pub Account);

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        require(parts, Access::SignedIn).map(SignedIn)
    }
}

/// The signed-in operator.
pub struct OperatorUser(pub Account);

impl<S: Send + Sync> FromRequestParts<S> for OperatorUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        require(parts, Access::Operator).map(OperatorUser)
    }
}

/// The signed-in operator and where they act from: whom the security log names.
pub struct ActingOperator {
    pub operator: Account,
    pub client: ClientAddr,
}

impl ActingOperator {
    /// Logs what the operator did in the security log.
    pub async fn log(&self, state: &AppState, kind: SecurityEventKind, subject: &str) {
        state
            .log_security(kind, &self.operator, &self.client, Some(subject))
            .await;
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ActingOperator {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let OperatorUser(operator) = OperatorUser::from_request_parts(parts, state).await?;
        let client = ClientAddr::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::internal("no client address"))?;
        Ok(ActingOperator { operator, client })
    }
}

/// The account signed in on this request, if any.
pub struct CurrentUser(pub Option<Account>);

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(CurrentUser(current(&parts.extensions).cloned()))
    }
}

/// This request's typed session.
pub struct Sessions(pub SessionState);

impl<S: Send + Sync> FromRequestParts<S> for Sessions {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<SessionState>()
            .cloned()
            .map(Sessions)
            .ok_or_else(|| AppError::internal("the session layer did not run"))
    }
}
