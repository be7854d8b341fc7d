pub mod connect_problem;
pub mod connection;
pub mod home;
pub mod login;
pub mod not_found;
pub mod operator;
pub mod operator_api_keys;
pub mod operator_connection;
pub mod operator_emails;
pub mod operator_team;
pub mod operator_webhooks;
pub mod signup;

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

/// A server function's error as a sentence for people (never internal details).
pub fn error_text(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        _ => "We could not load this page. Please try again.".to_string(),
    }
}

/// The `{id}` of the page's path, kept up to date (-1 when it is not a number: nothing has
/// that id).
pub fn id_param() -> impl Fn() -> i64 + Copy + Send + Sync + 'static {
    let params = use_params_map();
    move || {
        params
            .with(|p| p.get("id"))
            .and_then(|id| id.parse::<i64>().ok())
            .unwrap_or(-1)
    }
}
