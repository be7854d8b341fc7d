use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::components::{OperatorNav, PostOutcome, QueryNotice};
use crate::dto::{EndpointDetailView, EndpointView};
use crate::operator_api::{load_webhook, load_webhooks};
use crate::paths::{self, Notice};

const EVENTS: [(&str, &str); 5] = [
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
];

#[component]
pub fn OperatorWebhooksPage() -> impl IntoView {
    let endpoints = Resource::new(|| (), |_| load_webhooks());
    view! {
        <Title text="Webhooks" />
        <OperatorNav current=paths::OPERATOR_WEBHOOKS />
        <h1>"Webhooks"</h1>
        <p class="muted">
            "Connection events are sent to these endpoints, signed per the Standard Webhooks "
            "specification (webhook-id, webhook-timestamp, webhook-signature), retried for 24 hours."
        </p>
        <QueryNotice notices=&[Notice::EndpointDisabled] />
        <PostOutcome />
        <section class="card" aria-labelledby="new-endpoint">
            <h2 id="new-endpoint">"Add an endpoint"</h2>
            <form class="stack" method="post" action=paths::OPERATOR_WEBHOOKS>
                <label>
                    "URL"
                    <input type="url" name="url" required placeholder="https://platform.example.com/hooks/awx" />
                </label>
                <fieldset>
                    <legend>"Events"</legend>
                    {EVENTS
                        .iter()
                        .map(|(event, label)| view! {
                            <label class="check">
                                <input type="checkbox" name="event" value=*event checked />
                                {*label}
                            </label>
                        })
                        .collect_view()}
                </fieldset>
                <button type="submit" class="button">"Add endpoint"</button>
            </form>
        </section>
        <Suspense fallback=|| view! { <p class="muted">"Loading endpoints…"</p> }>
            {move || Suspend::new(async move {
                match endpoints.await {
                    Ok(endpoints) => view! { <EndpointTable endpoints /> }.into_any(),
                    Err(error) => view! { <p class="notice bad" role="alert">{crate::pages::error_text(&error)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn EndpointTable(endpoints: Vec<EndpointView>) -> impl IntoView {
    if endpoints.is_empty() {
        return view! { <p class="muted">"No endpoints yet."</p> }.into_any();
    }
    view! {
        <table class="data">
            <caption>"Endpoints"</caption>
            <thead>
                <tr>
                    <th scope="col">"URL"</th>
                    <th scope="col">"Events"</th>
                    <th scope="col">"Delivered / pending / failed"</th>
                    <th scope="col">"Status"</th>
                </tr>
            </thead>
            <tbody>
                {endpoints
                    .into_iter()
                    .map(|e| {
                        let status = match &e.disabled {
                            Some(at) => view! { <span class="badge none">"Disabled " {at.clone()}</span> }.into_any(),
                            None => view! {
                                <form method="post" action=paths::operator_webhook_disable(e.id)>
                                    <button type="submit" class="button small danger" aria-label=format!("Disable {}", e.url)>
                                        "Disable"
                                    </button>
                                </form>
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
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
pub fn OperatorWebhookPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .with(|p| p.get("id"))
            .and_then(|id| id.parse::<i64>().ok())
            .unwrap_or(-1)
    };
    let data = Resource::new(id, load_webhook);
    view! {
        <Title text="Webhook endpoint" />
        <OperatorNav current=paths::OPERATOR_WEBHOOKS />
        <p><a href=paths::OPERATOR_WEBHOOKS>"← All endpoints"</a></p>
        <QueryNotice notices=&[Notice::Resent] />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(detail) => view! { <Deliveries detail /> }.into_any(),
                    Err(error) => view! { <p class="notice bad" role="alert">{crate::pages::error_text(&error)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Deliveries(detail: EndpointDetailView) -> impl IntoView {
    let EndpointDetailView { endpoint, deliveries } = detail;
    let disabled = endpoint.disabled.is_some();
    view! {
        <h1>{endpoint.url.clone()}</h1>
        <p class="muted">{endpoint.events.join(", ")}</p>
        {if deliveries.is_empty() {
            view! { <p class="muted">"Nothing delivered yet."</p> }.into_any()
        } else {
            view! {
                <table class="data">
                    <caption>"Deliveries, newest first"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Event"</th>
                            <th scope="col">"Status"</th>
                            <th scope="col">"Attempts"</th>
                            <th scope="col">"Last answer"</th>
                            <th scope="col"><span class="visually-hidden">"Action"</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        {deliveries
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
                                                <form method="post" action=paths::operator_delivery_resend(d.id)>
                                                    <button type="submit" class="button small secondary">"Resend"</button>
                                                </form>
                                            })}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
            .into_any()
        }}
    }
}
