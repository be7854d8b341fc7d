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

use leptos::prelude::ServerFnError;

/// A server function's error as a sentence for people (never internal details).
pub fn error_text(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        _ => "We could not load this page. Please try again.".to_string(),
    }
}
