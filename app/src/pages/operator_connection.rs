use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::components::{Detail, QueryNotice};
use crate::dto::ConnectionDetailView;
use crate::operator_api::load_operator_connection;
use crate::pages::operator::{countdown, status_class, status_label};
use crate::paths::{self, Notice};

const NOTICES: &[Notice] = &[Notice::Refreshed, Notice::Checked, Notice::MerchantDeleted];

#[component]
pub fn OperatorConnectionPage() -> impl IntoView {
    let id = crate::pages::id_param();
    let query = use_query_map();
    let before = move || query.with(|q| q.get("before")).and_then(|b| b.parse::<i64>().ok());
    let data = Resource::new(
        move || (id(), before()),
        |(id, before)| load_operator_connection(id, before),
    );
    view! {
        <Title text="Connection" />
        <crate::components::OperatorNav current=paths::OPERATOR />
        <p><a href=paths::OPERATOR>"← All connections"</a></p>
        <QueryNotice notices=NOTICES />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                crate::components::loaded(data.await, |view| view! { <Detail_ view /> }.into_any())
            })}
        </Suspense>
    }
}

#[component]
#[allow(non_snake_case)]
fn Detail_(view: ConnectionDetailView) -> impl IntoView {
    let line = view.line;
    let id = view.connection_id;
    let older = view
        .older_before
        .map(|before| format!("{}?before={before}", paths::operator_connection(id)));
    view! {
        <h1>{line.email.clone()}</h1>
        <section class="card">
            <h2>"Status: " <span class=status_class(&line.status)>{status_label(&line.status)}</span></h2>
            <dl class="details">
                <Detail label="Reason" value=line.status_reason.clone() />
                <Detail label="External id" value=line.external_id.clone() />
                <Detail label="Tags" value=(!line.tags.is_empty()).then(|| line.tags.join(", ")) />
                <Detail label="Business name" value=line.business_name.clone() />
                <Detail label="Account ID" value=line.account_id.clone() />
                <Detail label="Connected since" value=line.connected_since.clone() />
                <Detail label="Last refresh" value=line.last_refresh.clone().map(|at| match &line.last_refresh_result {
                    Some(result) => format!("{at} ({result})"),
                    None => at,
                }) />
                <Detail label="Access token expires" value=line.access_expires.clone() />
                <Detail label="Refresh token expires" value=view.refresh_expires_at.map(|at| {
                    format!("{at} (in {})", line.refresh_expires_in.map(countdown).unwrap_or_default())
                }) />
                <Detail label="Last error" value=line.last_error.clone() />
                <Detail label="Token generation" value=Some(view.generation.to_string()) />
                <Detail label="Encryption key id" value=view.key_id />
            </dl>
            <div class="actions">
                <form method="post" action=paths::operator_refresh(id)>
                    <button type="submit" class="button">"Refresh now"</button>
                </form>
                <form method="post" action=paths::operator_check(id)>
                    <button type="submit" class="button secondary">"Check with Airwallex"</button>
                </form>
                <form method="post" action=paths::operator_delete_merchant(id)>
                    <button type="submit" class="button danger">"Delete the merchant's account"</button>
                </form>
            </div>
        </section>
        <section class="card" aria-labelledby="token-reads">
            <h2 id="token-reads">"Token reads by the platform"</h2>
            {if view.token_reads.is_empty() {
                view! { <p class="muted">"No service key has read this connection's access token."</p> }.into_any()
            } else {
                view! {
                    <table class="data compact">
                        <caption class="visually-hidden">"Access-token reads per key and minute, newest first"</caption>
                        <thead>
                            <tr><th scope="col">"Minute"</th><th scope="col">"Key"</th><th scope="col">"Reads"</th></tr>
                        </thead>
                        <tbody>
                            {view
                                .token_reads
                                .iter()
                                .map(|r| view! {
                                    <tr>
                                        <td>{r.minute.clone()}</td>
                                        <td>{r.key_name.clone()} " " <code>{r.key_id.clone()}</code></td>
                                        <td>{r.reads}</td>
                                    </tr>
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                .into_any()
            }}
            <p><a rel="external" href=paths::operator_connection_token_reads_csv(id)>"Download every read of this connection (CSV)"</a></p>
        </section>
        <ProxyCalls calls=view.proxy_calls.clone() id />
        {line.external_id.clone().map(|external_id| {
            let last_return = view.connect_sessions.first().map(|s| s.return_url.clone()).unwrap_or_default();
            view! {
                <ConnectSessions sessions=view.connect_sessions.clone() />
                <crate::pages::operator_api_keys::ConnectLinkForm external_id return_url=last_return />
            }
        })}
        <section class="card">
            <h2>"Timeline"</h2>
            <ol class="timeline">
                {view
                    .events
                    .into_iter()
                    .map(|event| {
                        let kind = event.kind.clone();
                        view! {
                        <li data-kind=kind>
                            <strong>{event.kind}</strong>
                            {event.reason.map(|r| view! { " · " <span>{r}</span> })}
                            <br />
                            <small class="muted">{event.at} " · " {event.actor}</small>
                            {event.detail.map(|d| view! { <br /><small>{d}</small> })}
                        </li>
                        }
                    })
                    .collect_view()}
            </ol>
            {older.map(|href| view! { <a class="button secondary" href=href>"Older events"</a> })}
        </section>
    }
}

/// The merchant's connect sessions: who created each, when it was opened, how it ended.
#[component]
fn ConnectSessions(sessions: Vec<crate::dto::ConnectSessionView>) -> impl IntoView {
    let rows = sessions
        .into_iter()
        .map(|s| {
            let outcome = match (s.outcome, s.reason) {
                (Some(outcome), Some(reason)) => format!("{outcome} ({reason})"),
                (Some(outcome), None) => outcome,
                (None, _) => "—".to_string(),
            };
            let shown = s.id.clone();
            view! {
                <tr data-session=s.id>
                    <td><code>{shown}</code></td>
                    <td>{s.created_at}<br /><small class="muted">{s.created_by}</small></td>
                    <td>{s.opened_at.unwrap_or_else(|| "not yet".into())}</td>
                    <td>{s.status}</td>
                    <td>{outcome}</td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <section class="card" aria-labelledby="connect-sessions">
            <h2 id="connect-sessions">"Connect sessions"</h2>
            <crate::components::DataTable
                caption="Links the platform (or support) made for this merchant, newest first"
                columns=&["Session", "Created", "Opened", "Status", "Outcome"]
                empty="No connect sessions yet."
                rows
            />
        </section>
    }
}

/// What the platform asked Airwallex through the proxy for this connection.
#[component]
fn ProxyCalls(calls: Vec<crate::dto::ProxyCallView>, id: i64) -> impl IntoView {
    let rows = calls
        .into_iter()
        .map(|c| {
            view! {
                <tr data-status=c.status>
                    <td>{c.at}</td>
                    <td>{c.key_name} " " <code>{c.key_id}</code></td>
                    <td><code>{c.method} " /" {c.path}</code></td>
                    <td>{c.status}</td>
                    <td>{c.duration_ms} " ms"</td>
                    <td>{c.request_bytes} " / " {c.response_bytes}</td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <section class="card" aria-labelledby="proxy-calls">
            <h2 id="proxy-calls">"Airwallex calls through the proxy"</h2>
            <crate::components::DataTable
                caption="Calls the platform made on this merchant's behalf, newest first (never a body or a query)"
                columns=&["When", "Key", "Call", "Status", "Took", "Bytes up / down"]
                empty="The platform has not called Airwallex through the proxy for this connection."
                rows
            />
            <p><a rel="external" href=paths::operator_connection_proxy_calls_csv(id)>"Download every proxied call of this connection (CSV)"</a></p>
        </section>
    }
}
