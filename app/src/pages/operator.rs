use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::dto::{LineView, OperatorOverview};
use crate::operator_api::load_operator_overview;
use crate::paths;

/// Refresh tokens closer than this to expiry are highlighted.
const SOON_SECONDS: i64 = 7 * 86_400;

pub fn countdown(seconds: i64) -> String {
    if seconds <= 0 {
        return "expired".to_string();
    }
    let days = seconds / 86_400;
    let hours = (seconds % 86_400) / 3_600;
    if days > 0 {
        format!("{days} d {hours} h")
    } else {
        format!("{hours} h {} min", (seconds % 3_600) / 60)
    }
}

pub fn status_label(status: &str) -> &'static str {
    match status {
        "connected" => "Connected",
        "needs_reconnect" => "Needs reconnection",
        "disconnected" => "Disconnected",
        _ => "Not connected",
    }
}

pub fn status_class(status: &str) -> &'static str {
    match status {
        "connected" => "badge ok",
        "needs_reconnect" => "badge warn",
        _ => "badge none",
    }
}

#[component]
pub fn OperatorPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |name: &'static str| move || query.with(|q| q.get(name)).filter(|v| !v.is_empty());
    let (status, search, sort, after) = (param("status"), param("q"), param("sort"), param("after"));
    let data = Resource::new(
        move || (status(), search(), sort(), after()),
        |(status, search, sort, after)| load_operator_overview(status, search, sort, after),
    );
    view! {
        <Title text="Operator dashboard" />
        <crate::components::OperatorNav current=paths::OPERATOR />
        <h1>"Connections"</h1>
        <Suspense fallback=|| view! { <p class="muted">"Loading connections…"</p> }>
            {move || Suspend::new(async move {
                crate::components::loaded(data.await, |overview| {
                    view! { <Dashboard overview status=status() search=search() sort=sort() /> }.into_any()
                })
            })}
        </Suspense>
        <Trends />
    }
}

fn expiring_class(n: i64) -> &'static str {
    if n > 0 {
        "notice warn"
    } else {
        "muted"
    }
}

fn expiring_text(n: i64) -> String {
    match n {
        0 => "No refresh token ends within 7 days.".to_string(),
        1 => "1 refresh token ends within 7 days and has not been rotated yet; its merchant is emailed a warning."
            .to_string(),
        n => format!(
            "{n} refresh tokens end within 7 days and have not been rotated yet; their merchants are emailed a warning."
        ),
    }
}

/// The charts below the table.
#[component]
fn Trends() -> impl IntoView {
    let trends = Resource::new(|| (), |_| crate::operator_api::load_trends());
    view! {
        <section class="trends" aria-labelledby="trends-title">
            <h2 id="trends-title">"Trends"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading trends…"</p> }>
                {move || Suspend::new(async move {
                    crate::components::loaded(trends.await, |trends| {
                        view! {
                            <p class=expiring_class(trends.expiring_soon) data-count="expiring_soon">
                                {expiring_text(trends.expiring_soon)}
                            </p>
                            {trends.charts.into_iter().map(|chart| view! { <crate::charts::BarChart chart /> }).collect_view()}
                        }
                        .into_any()
                    })
                })}
            </Suspense>
        </section>
    }
}

/// A link to this dashboard with the given view, so views can be shared.
fn view_href(status: Option<&str>, search: Option<&str>, sort: Option<&str>, after: Option<&str>) -> String {
    let mut pairs = Vec::new();
    for (key, value) in [("status", status), ("q", search), ("sort", sort), ("after", after)] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            let encoded: String = url_encode(value);
            pairs.push(format!("{key}={encoded}"));
        }
    }
    if pairs.is_empty() {
        paths::OPERATOR.to_string()
    } else {
        format!("{}?{}", paths::OPERATOR, pairs.join("&"))
    }
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
fn Dashboard(
    overview: OperatorOverview,
    status: Option<String>,
    search: Option<String>,
    sort: Option<String>,
) -> impl IntoView {
    let counts = overview.counts;
    let needs_total: i64 = counts.needs_reconnect.iter().map(|(_, n)| n).sum();
    let filter_link = {
        let (search, sort) = (search.clone(), sort.clone());
        move |value: Option<&str>| view_href(value, search.as_deref(), sort.as_deref(), None)
    };
    let next_href = overview
        .next
        .as_deref()
        .map(|next| view_href(status.as_deref(), search.as_deref(), sort.as_deref(), Some(next)));
    let current_status = status.clone().unwrap_or_default();
    let current_sort = sort.clone().unwrap_or_else(|| "refresh_expiry".to_string());
    view! {
        <section class="counts" aria-label="Connections by status">
            <a class="count" href=filter_link(Some("connected")) data-count="connected">
                <strong>{counts.connected}</strong><span>"Connected"</span>
            </a>
            <a class="count warn" href=filter_link(Some("needs_reconnect")) data-count="needs_reconnect">
                <strong>{needs_total}</strong><span>"Need reconnection"</span>
                <small>
                    {counts.needs_reconnect.iter().map(|(reason, n)| format!("{reason}: {n}")).collect::<Vec<_>>().join(" · ")}
                </small>
            </a>
            <a class="count" href=filter_link(Some("not_connected")) data-count="not_connected">
                <strong>{counts.not_connected}</strong><span>"Not connected"</span>
            </a>
            <a class="count" href=filter_link(Some("disconnected")) data-count="disconnected">
                <strong>{counts.disconnected}</strong><span>"Disconnected"</span>
            </a>
        </section>
        <form class="filters" method="get" action=paths::OPERATOR>
            <label>
                "Status"
                <select name="status">
                    {[("", "All"), ("connected", "Connected"), ("needs_reconnect", "Needs reconnection"),
                      ("not_connected", "Not connected"), ("disconnected", "Disconnected")]
                        .into_iter()
                        .map(|(value, label)| view! { <option value=value selected=current_status == value>{label}</option> })
                        .collect_view()}
                </select>
            </label>
            <label class="grow">
                "Search"
                <input type="search" name="q" placeholder="Email, business name or account ID" value=search.clone().unwrap_or_default() />
            </label>
            <label>
                "Sort"
                <select name="sort">
                    <option value="refresh_expiry" selected=current_sort == "refresh_expiry">"Refresh token expiry"</option>
                    <option value="activity" selected=current_sort == "activity">"Last activity"</option>
                </select>
            </label>
            <button type="submit" class="button">"Apply"</button>
            <a class="button secondary" href=paths::OPERATOR>"Reset"</a>
        </form>
        {if overview.lines.is_empty() {
            view! { <p class="card muted">"No merchants match this view."</p> }.into_any()
        } else {
            view! { <ConnectionsTable lines=overview.lines /> }.into_any()
        }}
        <nav class="pager" aria-label="Pages">
            {next_href.map(|href| view! { <a class="button secondary" href=href rel="next">"Next 50 →"</a> })}
        </nav>
    }
}

#[component]
fn ConnectionsTable(lines: Vec<LineView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data">
                <thead>
                    <tr>
                        <th>"Merchant"</th>
                        <th>"Airwallex account"</th>
                        <th>"Status"</th>
                        <th>"Connected since"</th>
                        <th>"Last refresh"</th>
                        <th>"Access token expires"</th>
                        <th>"Refresh token expires in"</th>
                        <th>"Last error"</th>
                    </tr>
                </thead>
                <tbody>
                    {lines
                        .into_iter()
                        .map(|line| {
                            let soon = line.refresh_expires_in.is_some_and(|s| s < SOON_SECONDS);
                            let merchant = match line.connection_id {
                                Some(id) => view! { <a href=paths::operator_connection(id)>{line.email.clone()}</a> }.into_any(),
                                None => view! { <span>{line.email.clone()}</span> }.into_any(),
                            };
                            view! {
                                <tr>
                                    <td>
                                        {merchant}
                                        {(!line.email_verified).then(|| view! {
                                            " " <span class="badge warn" data-unverified="">"unverified"</span>
                                        })}
                                        {line.external_id.clone().map(|id| {
                                            let shown = id.clone();
                                            view! {
                                                <br /><small class="muted" data-external-id=id>"External id: " {shown}</small>
                                            }
                                        })}
                                        {(!line.tags.is_empty()).then(|| view! {
                                            <br /><small class="muted tags">{line.tags.join(", ")}</small>
                                        })}
                                    </td>
                                    <td>
                                        {line.business_name.clone().unwrap_or_default()}
                                        <br />
                                        <small class="muted">{line.account_id.clone().unwrap_or_default()}</small>
                                    </td>
                                    <td>
                                        <span class=status_class(&line.status)>{status_label(&line.status)}</span>
                                        {line.status_reason.clone().map(|r| view! { <br /><small class="muted">{r}</small> })}
                                    </td>
                                    <td>{line.connected_since.clone().unwrap_or_default()}</td>
                                    <td>
                                        {line.last_refresh.clone().unwrap_or_default()}
                                        {line.last_refresh_result.clone().map(|r| view! { <br /><small class="muted">{r}</small> })}
                                    </td>
                                    <td>{line.access_expires.clone().unwrap_or_default()}</td>
                                    <td class:soon=soon>{line.refresh_expires_in.map(countdown).unwrap_or_default()}</td>
                                    <td><small>{line.last_error.clone().unwrap_or_default()}</small></td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
