//! The merchant's side of Airwallex: the simulator's home page and the connected-apps page
//! where a merchant disconnects an app.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::answers::error_page;
use super::pages;
use super::state::ConnectionStatus;
use super::webhooks::spawn_webhook;
use super::Simulator;

pub async fn index() -> Html<String> {
    Html(pages::index())
}

#[derive(Debug, Deserialize)]
pub struct AppsQuery {
    account: Option<String>,
    disconnected: Option<String>,
}

pub async fn merchant_apps(State(sim): State<Simulator>, Query(query): Query<AppsQuery>) -> Response {
    let data = sim.inner.lock();
    let Some(account_id) = query.account else {
        return Html(pages::choose_account(&data.accounts)).into_response();
    };
    let Some(account) = data.accounts.iter().find(|a| a.id == account_id) else {
        return error_page(StatusCode::NOT_FOUND, "No such Airwallex account.");
    };
    let mut connections: Vec<_> = data
        .connections
        .values()
        .filter(|c| c.account_id == account_id && c.status == ConnectionStatus::Active)
        .cloned()
        .collect();
    connections.sort_by_key(|c| c.created_at);
    let apps: Vec<(super::state::SimConnection, String)> = connections
        .into_iter()
        .map(|c| {
            let name = sim
                .inner
                .client(&c.client_id)
                .map(|client| client.app_name.clone())
                .unwrap_or_else(|| c.client_id.clone());
            (c, name)
        })
        .collect();
    Html(pages::connected_apps(account, &apps, query.disconnected.is_some())).into_response()
}

#[derive(Debug, Deserialize)]
pub struct DisconnectForm {
    connection_id: String,
}

pub async fn merchant_disconnect(State(sim): State<Simulator>, Form(form): Form<DisconnectForm>) -> Response {
    let account_id = sim
        .inner
        .lock()
        .connections
        .get(&form.connection_id)
        .map(|c| c.account_id.clone());
    let Some(account_id) = account_id else {
        return error_page(StatusCode::NOT_FOUND, "That connection does not exist.");
    };
    if let Some(revocation) = sim.inner.revoke(&form.connection_id) {
        spawn_webhook(sim.clone(), revocation);
    }
    let mut location = url::Url::parse("http://sim/merchant/apps").expect("static URL parses");
    location
        .query_pairs_mut()
        .append_pair("account", &account_id)
        .append_pair("disconnected", "1");
    Redirect::to(&format!("/merchant/apps?{}", location.query().unwrap_or_default())).into_response()
}
