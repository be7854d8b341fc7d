//! Rendering Leptos pages: for every page route, and from plain handlers for form posts
//! that fail (the page is rendered for a path with the form's feedback and a status).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use leptos::prelude::provide_context;

use app::dto::{FormFeedback, Revealed};
use app::shell;

use crate::error::AppError;
use crate::state::AppState;

/// What every page and server function can read from context.
pub fn provide_app_context(state: &AppState) {
    provide_context(state.services.clone());
    provide_context(state.authorize_origin.clone());
}

async fn render(
    state: &AppState,
    request: Request,
    feedback: Option<FormFeedback>,
    revealed: Option<Revealed>,
) -> Response {
    let render_state = state.clone();
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_async_with_context(
        move || {
            provide_app_context(&render_state);
            if let Some(feedback) = feedback.clone() {
                provide_context(feedback);
            }
            if let Some(revealed) = revealed.clone() {
                provide_context(revealed);
            }
        },
        move || shell(options.clone()),
    );
    // Kept for the log line only: a matched path is a shared string, the URI a cheap clone.
    let matched = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let uri = request.uri().clone();
    let deadline = state.config.network.render_deadline;
    // Async rendering collects the whole page before the headers go out: a render that
    // never finishes would leave the client with nothing at all.
    match tokio::time::timeout(deadline, render(request)).await {
        Ok(rendered) => rendered.into_response(),
        Err(_) => {
            let route = matched.as_ref().map_or(uri.path(), |m| m.as_str());
            tracing::error!(
                route = %route,
                deadline_seconds = deadline.as_secs(),
                "the page did not finish rendering in time; answered 503"
            );
            crate::problem::plain_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "This page is taking too long",
                "We could not put this page together in time. Please try again in a moment.",
            )
        }
    }
}

/// The handler of every page route.
pub async fn page(State(state): State<AppState>, request: Request) -> Response {
    render(&state, request, None, None).await
}

/// The page at `path`, as a GET of it, with a form's feedback and the given status.
pub async fn render_with_feedback(
    state: &AppState,
    parts: Parts,
    path: &str,
    feedback: FormFeedback,
    status: StatusCode,
) -> Result<Response, AppError> {
    render_page_with(state, parts, path, status, Some(feedback), None).await
}

/// The page at `path`, as a GET of it, with a form's feedback or a secret shown once.
pub async fn render_page_with(
    state: &AppState,
    mut parts: Parts,
    path: &str,
    status: StatusCode,
    feedback: Option<FormFeedback>,
    revealed: Option<Revealed>,
) -> Result<Response, AppError> {
    parts.method = Method::GET;
    parts.uri = path.parse().map_err(AppError::internal)?;
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let mut response = render(state, Request::from_parts(parts, Body::empty()), feedback, revealed).await;
    *response.status_mut() = status;
    Ok(response)
}
