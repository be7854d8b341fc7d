use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{
    loaded, Checkboxes, DataTable, FormCard, OperatorHeading, OperatorNav, PostButton, PostOutcome, QueryNotice,
};
use crate::dto::{EndpointDetailView, EndpointView};
use crate::operator_api::{load_webhook, load_webhooks};
use crate::paths::{self, Notice};

const EVENTS: [(&str, &str); 6] = [
    ("connection.connected", "connected — a merchant connected Airwallex"),
    ("connection.reconnected", "reconnected — a merchant connected again"),
    (
        "connection.needs_reconnect",
        "needs_reconnect — Airwallex stopped accepting a connection (with the reason)",
    ),
    ("connection.disconnected", "disconnected — a merchant disconnected"),
    (
        "connection.recovered",
        "recovered — a connection whose refreshes failed works again",
    ),
    (
        "connect_session.completed",
        "connect_session.completed — a connect link's session ended (with its outcome)",
    ),
];

#[component]
pub fn OperatorWebhooksPage() -> impl IntoView {
    let endpoints = Resource::new(|| (), |_| load_webhooks());
    view! {
        <OperatorHeading title="Webhooks" current=paths::OPERATOR_WEBHOOKS />
        <p class="muted">
            "Connection events are sent to these endpoints, signed per the Standard Webhooks "
            "specification (webhook-id, webhook-timestamp, webhook-signature), retried for 24 hours."
        </p>
        <QueryNotice notices=&[Notice::EndpointDisabled] />
        <PostOutcome />
        <FormCard id="new-endpoint" heading="Add an endpoint" action=paths::OPERATOR_WEBHOOKS submit="Add endpoint">
            <label>
                "URL"
                <input type="url" name="url" required placeholder="https://platform.example.com/hooks/awx" />
            </label>
            <Checkboxes legend="Events" name="event" options=&EVENTS checked=true />
        </FormCard>
        <Suspense fallback=|| view! { <p class="muted">"Loading endpoints…"</p> }>
            {move || Suspend::new(async move {
                loaded(endpoints.await, |endpoints| view! { <EndpointTable endpoints /> }.into_any())
            })}
        </Suspense>
    }
}

#[component]
fn EndpointTable(endpoints: Vec<EndpointView>) -> impl IntoView {
    let rows = endpoints
        .into_iter()
        .map(|e| {
            let status = match &e.disabled {
                Some(at) => view! { <span class="badge none">"Disabled " {at.clone()}</span> }.into_any(),
                None => view! {
                    <PostButton
                        action=paths::operator_webhook_disable(e.id)
                        label="Disable"
                        tone="danger"
                        name=format!("Disable {}", e.url)
                    />
                }
                .into_any(),
            };
            view! {
                <tr data-endpoint=e.id>
                    <td><a href=paths::operator_webhook(e.id)>{e.url.clone()}</a></td>
                    <td>{e.events.join(", ")}</td>
                    <td>{format!("{} / {} / {}", e.delivered, e.pending, e.failed)}</td>
                    <td>{status}</td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <DataTable
            caption="Endpoints"
            columns=&["URL", "Events", "Delivered / pending / failed", "Status"]
            empty="No endpoints yet."
            rows
        />
    }
}

#[component]
pub fn OperatorWebhookPage() -> impl IntoView {
    let data = Resource::new(crate::pages::id_param(), load_webhook);
    view! {
        <Title text="Webhook endpoint" />
        <OperatorNav current=paths::OPERATOR_WEBHOOKS />
        <p><a href=paths::OPERATOR_WEBHOOKS>"← All endpoints"</a></p>
        <QueryNotice notices=&[Notice::Resent] />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move { loaded(data.await, |detail| view! { <Deliveries detail /> }.into_any()) })}
        </Suspense>
    }
}

#[component]
fn Deliveries(detail: EndpointDetailView) -> impl IntoView {
    let EndpointDetailView { endpoint, deliveries } = detail;
    let disabled = endpoint.disabled.is_some();
    let rows = deliveries
        .into_iter()
        .map(|d| {
            let answer = match (d.last_status, d.last_error.clone()) {
                (_, Some(error)) => error,
                (Some(status), None) => format!("HTTP {status}"),
                (None, None) => "—".to_string(),
            };
            let when = d
                .delivered
                .clone()
                .or_else(|| d.next_attempt.clone().map(|at| format!("next attempt {at}")))
                .unwrap_or_default();
            view! {
                <tr data-delivery=d.id data-status=d.status.clone()>
                    <td>{d.kind.clone()}<br /><small class="muted"><code>{d.event_id.clone()}</code> " · " {d.created.clone()}</small></td>
                    <td>{d.status.clone()}<br /><small class="muted">{when}</small></td>
                    <td>{d.attempts}</td>
                    <td>{answer}</td>
                    <td>
                        {(!disabled).then(|| view! {
                            <PostButton action=paths::operator_delivery_resend(d.id) label="Resend" tone="secondary" />
                        })}
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <h1>{endpoint.url.clone()}</h1>
        <p class="muted">{endpoint.events.join(", ")}</p>
        <DataTable
            caption="Deliveries, newest first"
            columns=&["Event", "Status", "Attempts", "Last answer", ""]
            empty="Nothing delivered yet."
            rows
        />
    }
}
