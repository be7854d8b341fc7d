use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::{loaded, DataTable, OperatorHeading, PostButton, QueryNotice};
use crate::dto::OutboxView;
use crate::operator_api::load_outbox;
use crate::paths::{self, Notice};

/// The mail outbox: every message to merchants and operators, what the SMTP server
/// answered, and Resend.
#[component]
pub fn OperatorEmailsPage() -> impl IntoView {
    let query = use_query_map();
    let before = move || query.with(|q| q.get("before")).and_then(|b| b.parse::<i64>().ok());
    let data = Resource::new(before, load_outbox);
    view! {
        <OperatorHeading title="Emails" current=paths::OPERATOR_EMAILS />
        <QueryNotice notices=&[Notice::Resent] />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move { loaded(data.await, |outbox| view! { <Outbox outbox /> }.into_any()) })}
        </Suspense>
    }
}

#[component]
fn Outbox(outbox: OutboxView) -> impl IntoView {
    let OutboxView {
        configured,
        queued,
        sent,
        failed,
        suppressed,
        messages,
        older_before,
    } = outbox;
    let rows = messages
        .into_iter()
        .map(|m| {
            let about = match m.connection_id {
                Some(id) => view! { <a href=paths::operator_connection(id)>{m.about.clone()}</a> }.into_any(),
                None => view! { <span>{m.about.clone()}</span> }.into_any(),
            };
            let resendable = m.status != "queued";
            view! {
                <tr data-mail=m.id data-status=m.status.clone()>
                    <td>{about}<br /><small class="muted">{m.created.clone()}</small></td>
                    <td>{m.recipient.clone()}</td>
                    <td>{m.status.clone()}<br /><small class="muted">{m.when.clone().unwrap_or_default()}</small></td>
                    <td>{m.attempts}</td>
                    <td class="answer">{m.answer.clone().unwrap_or_else(|| "—".to_string())}</td>
                    <td>
                        {resendable.then(|| view! {
                            <PostButton action=paths::operator_email_resend(m.id) label="Resend" tone="secondary" />
                        })}
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        {(!configured).then(|| view! {
            <p class="notice warn" role="status">
                "No mail server is configured (SMTP_URL), so messages wait here: not sent. "
                "They go out once SMTP_URL is set and the server restarted."
            </p>
        })}
        <p class="counts-line">
            <span data-count="queued">{format!("Queued: {queued}")}</span>" · "
            <span data-count="sent">{format!("Sent: {sent}")}</span>" · "
            <span data-count="failed">{format!("Failed: {failed}")}</span>" · "
            <span data-count="suppressed">{format!("Turned off by the recipient: {suppressed}")}</span>
        </p>
        <DataTable
            caption="Messages, newest first"
            columns=&["About", "To", "Status", "Attempts", "Last answer", ""]
            empty="No email yet. Merchants are written to when a connection needs them."
            rows
        />
        {older_before.map(|before| view! {
            <p><a href=format!("{}?before={before}", paths::OPERATOR_EMAILS)>"Older messages →"</a></p>
        })}
    }
}
