//! "Confirm it's you": what can take data out (a key, a webhook endpoint, a CSV export, a
//! connect link, inviting or removing an operator) needs a second-factor code given within
//! the last [`FRESH_SECONDS`]. A log-in's code counts. Otherwise the action answers a page
//! that asks for a code and carries the action's own fields, so the same action goes on
//! right after the code (nothing typed is lost); an export (a GET) goes on through
//! [`CONFIRM`].

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};

use app::paths::{Area, LocalPath};
use awx_onboard::accounts::second_factor::FactorUsed;
use awx_onboard::accounts::{Account, AccountError, THROTTLE_WINDOW_SECONDS};
use awx_onboard::html::escape;
use awx_onboard::security_log::{Actor, SecurityEventKind};
use awx_onboard::sessions::SessionState;

use crate::access::{ActingOperator, Sessions};
use crate::error::AppError;
use crate::form::{FormFields, PageRequest};
use crate::net::ClientAddr;
use crate::state::AppState;

/// How long a given second factor stays fresh.
pub const FRESH_SECONDS: i64 = 300;
/// Where a confirmation before an export (a GET) is posted.
pub const CONFIRM: &str = app::paths::OPERATOR_CONFIRM;
/// The code's field on the confirmation form (never carried on to the action).
const CODE_FIELD: &str = "confirm_code";
/// The export to go on to, on [`CONFIRM`]'s form.
const NEXT_FIELD: &str = "next";

/// Whether the session gave a second factor within [`FRESH_SECONDS`].
pub async fn is_fresh(state: &AppState, session: &SessionState) -> bool {
    let now = state.services.clock.now();
    session
        .confirmed_at()
        .await
        .is_some_and(|at| at <= now && now - at < FRESH_SECONDS)
}

/// The confirmation page: `action` is where it posts, `fields` what it carries on.
fn page(status: StatusCode, action: &str, fields: &[(String, String)], problem: Option<&str>) -> Response {
    let hidden: String = fields
        .iter()
        .filter(|(name, _)| name != CODE_FIELD)
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            )
        })
        .collect();
    let problem = problem
        .map(|p| format!("<p class=\"notice bad\" role=\"alert\">{}</p>", escape(p)))
        .unwrap_or_default();
    let body = format!(
        "<p>This can take data out of awx-onboard, so it needs a fresh code. Enter the 6 digits your \
         authenticator app shows (or a recovery code); what you asked for is done right after.</p>{problem}\
         <form class=\"stack\" method=\"post\" action=\"{action}\">{hidden}\
         <label for=\"confirm_code\">Code</label>\
         <input id=\"confirm_code\" name=\"{CODE_FIELD}\" type=\"text\" inputmode=\"numeric\" \
         autocomplete=\"one-time-code\" required maxlength=\"20\" autofocus>\
         <div class=\"actions\"><button type=\"submit\" class=\"button\">Confirm and continue</button>\
         <a class=\"button secondary\" href=\"{back}\">Cancel</a></div></form>",
        action = escape(action),
        back = app::paths::OPERATOR,
    );
    let mut response = crate::problem::page_with_eyebrow(status, "Security", "Confirm it's you", &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(THROTTLE_WINDOW_SECONDS));
    }
    response
}

/// What a confirmation came to.
enum Checked {
    /// The code was right: the session is fresh again.
    Confirmed,
    /// Answer this page (asked for, wrong or throttled).
    Page(StatusCode, Option<String>),
}

/// Checks `code` (empty: not given) for `account`, against the log-in's limits, and logs it.
async fn check_code(
    state: &AppState,
    session: &SessionState,
    account: &Account,
    client: &ClientAddr,
    code: &str,
) -> Result<Checked, AppError> {
    if code.trim().is_empty() {
        return Ok(Checked::Page(StatusCode::FORBIDDEN, None));
    }
    let services = &state.services;
    let ip = client.ip.to_string();
    let mut used = None;
    let attempt = services
        .accounts
        .second_factor_attempt(&account.email, &ip, async {
            used = services.second_factors.verify(account.id, code).await?;
            Ok(used.is_some())
        })
        .await;
    let actor = Actor::of(account, Some(&ip));
    match attempt {
        Ok(()) => {
            session.confirmed(services.clock.now()).await?;
            if used == Some(FactorUsed::RecoveryCode) {
                services
                    .security_log
                    .record(SecurityEventKind::RecoveryCodeUsed, &actor, None)
                    .await;
            }
            services
                .security_log
                .record(SecurityEventKind::Reauthenticated, &actor, None)
                .await;
            Ok(Checked::Confirmed)
        }
        Err(AccountError::WrongCode) => {
            services
                .security_log
                .record(SecurityEventKind::SecondFactorFailed, &actor, Some("confirmation"))
                .await;
            Ok(Checked::Page(
                StatusCode::UNAUTHORIZED,
                Some(AccountError::WrongCode.to_string()),
            ))
        }
        Err(AccountError::Throttled) => Ok(Checked::Page(
            StatusCode::TOO_MANY_REQUESTS,
            Some(AccountError::Throttled.to_string()),
        )),
        Err(error) => Err(AppError::internal(error)),
    }
}

/// An operator's form post that can take data out: who, from where, the session that must
/// be fresh, the request's head (to render a refused form again) and the fields (which the
/// page asking for a code carries on).
pub struct OperatorPost {
    pub operator: Account,
    pub session: SessionState,
    pub client: ClientAddr,
    pub page: PageRequest,
    pub form: FormFields,
}

impl OperatorPost {
    /// `None` to go on, or the page to answer (it posts the same fields back to `action`
    /// with a code).
    pub async fn confirm(&self, state: &AppState, action: &str) -> Result<Option<Response>, AppError> {
        if is_fresh(state, &self.session).await {
            return Ok(None);
        }
        let code = self.form.first(CODE_FIELD);
        match check_code(state, &self.session, &self.operator, &self.client, code).await? {
            Checked::Confirmed => Ok(None),
            Checked::Page(status, problem) => Ok(Some(page(status, action, self.form.pairs(), problem.as_deref()))),
        }
    }

    /// Logs what the operator did in the security log.
    pub async fn log(&self, state: &AppState, kind: SecurityEventKind, subject: &str) {
        state
            .log_security(kind, &self.operator, &self.client, Some(subject))
            .await;
    }
}

impl FromRequest<AppState> for OperatorPost {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let (mut parts, body) = request.into_parts();
        let ActingOperator { operator, client } = ActingOperator::from_request_parts(&mut parts, state).await?;
        let Sessions(session) = Sessions::from_request_parts(&mut parts, state).await?;
        let page = PageRequest(parts.clone());
        let form = FormFields::from_request(Request::from_parts(parts, body), state).await?;
        Ok(OperatorPost {
            operator,
            session,
            client,
            page,
            form,
        })
    }
}

/// Before an export (a GET): `None` to go on, or the page that asks for a code and then
/// comes back here through [`CONFIRM`].
pub async fn confirm_get(state: &AppState, session: &SessionState, uri: &Uri) -> Option<Response> {
    if is_fresh(state, session).await {
        return None;
    }
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or(app::paths::OPERATOR);
    let fields = [(NEXT_FIELD.to_string(), next.to_string())];
    Some(page(StatusCode::FORBIDDEN, CONFIRM, &fields, None))
}

/// `POST /operator/confirm`: a code, then on to the operator page or export in `next`.
pub async fn confirm(State(state): State<AppState>, post: OperatorPost) -> Result<Response, AppError> {
    let next = LocalPath::parse(post.form.first(NEXT_FIELD))
        .filter(|next| Area::of(next.as_str().split('?').next().unwrap_or_default()) == Area::Operator)
        .unwrap_or_else(|| LocalPath::trusted(app::paths::OPERATOR));
    let code = post.form.first(CODE_FIELD);
    match check_code(&state, &post.session, &post.operator, &post.client, code).await? {
        Checked::Confirmed => Ok(Redirect::to(next.as_str()).into_response()),
        Checked::Page(status, problem) => {
            let fields = [(NEXT_FIELD.to_string(), next.as_str().to_string())];
            Ok(page(status, CONFIRM, &fields, problem.as_deref()))
        }
    }
}
