use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::api::load_connection;
use crate::components::{Detail, QueryNotice};
use crate::dto::{AccountView, ConnectionState, ConnectionView};
use crate::paths::{self, Notice};

const NOTICES: &[Notice] = &[
    Notice::Connected,
    Notice::Disconnected,
    Notice::Welcome,
    Notice::EmailsOn,
    Notice::EmailsOff,
    Notice::SecondFactorOff,
    Notice::VerificationSent,
    Notice::VerificationTooSoon,
    Notice::EmailVerified,
    Notice::PasswordChanged,
];

#[component]
pub fn ConnectionPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| load_connection());
    view! {
        <Title text="Your Airwallex connection" />
        <h1>"Your Airwallex connection"</h1>
        <QueryNotice notices=NOTICES />
        <Suspense fallback=|| view! { <p class="muted">"Loading your connection…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(view) => view! { <ConnectionDetails view /> }.into_any(),
                    Err(error) => view! {
                        <section class="card">
                            <p class="notice bad" role="alert">{crate::pages::error_text(&error)}</p>
                            <a class="button" href=paths::login_then(&paths::LocalPath::trusted(paths::CONNECTION), None)>"Log in"</a>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

/// The button that (re)connects the merchant's existing Airwallex account.
fn connect_existing(label: &'static str, class: &'static str) -> impl IntoView {
    view! {
        <form method="post" action=paths::OAUTH_START>
            <input type="hidden" name="mode" value="existing" />
            <button type="submit" class=class>{label}</button>
        </form>
    }
}

fn connect_buttons(primary: &'static str) -> impl IntoView {
    view! {
        <div class="actions">
            {connect_existing(primary, "button")}
            <form method="post" action=paths::OAUTH_START>
                <input type="hidden" name="mode" value="signup" />
                <button type="submit" class="button secondary">"Create an Airwallex account"</button>
            </form>
        </div>
    }
}

#[component]
fn ConnectionDetails(view: ConnectionView) -> impl IntoView {
    let query = use_query_map();
    let confirming = move || query.with(|q| q.get("confirm")).as_deref() == Some("disconnect");
    let ConnectionView {
        state,
        account,
        account_stale,
        connected_at,
        last_refresh_at,
        emails_on,
        back_to,
        email_verified,
        email,
    } = view;
    let status = match &state {
        ConnectionState::Connected => {
            view! { <span class="badge ok" data-status="connected">"Connected"</span> }.into_any()
        }
        ConnectionState::NeedsReconnect { .. } => {
            view! { <span class="badge warn" data-status="needs_reconnect">"Needs reconnection"</span> }.into_any()
        }
        ConnectionState::NotConnected => {
            view! { <span class="badge none" data-status="not_connected">"Not connected"</span> }.into_any()
        }
        ConnectionState::Disconnected => {
            view! { <span class="badge none" data-status="disconnected">"Disconnected"</span> }.into_any()
        }
    };
    let body = match state.clone() {
        ConnectionState::NotConnected => view! {
            <p>"Connect your Airwallex account so we can show your business details here."</p>
            {connect_buttons("Connect Airwallex")}
        }
        .into_any(),
        ConnectionState::Disconnected => view! {
            <p>"You disconnected Airwallex. Connect again at any time; your history is kept."</p>
            {connect_buttons("Connect Airwallex")}
        }
        .into_any(),
        ConnectionState::NeedsReconnect { reason } => view! {
            <p class="notice warn" role="alert">{reason}</p>
            <p>"Reconnect to restore access. Your connection history is kept."</p>
            <div class="actions">{connect_existing("Reconnect Airwallex", "button")}</div>
        }
        .into_any(),
        ConnectionState::Connected => view! {
            <Show
                when=confirming
                fallback=|| view! {
                    <div class="actions">
                        {connect_existing("Reconnect", "button secondary")}
                        <a class="button danger" href=format!("{}?confirm=disconnect", paths::CONNECTION)>"Disconnect"</a>
                    </div>
                }
            >
                <div class="notice warn confirm" role="alertdialog" aria-labelledby="confirm-title">
                    <p id="confirm-title"><strong>"Disconnect Airwallex?"</strong></p>
                    <p>"We will delete the access Airwallex gave us. You can connect again later."</p>
                    <div class="actions">
                        <form method="post" action=paths::DISCONNECT>
                            <input type="hidden" name="confirm" value="yes" />
                            <button type="submit" class="button danger">"Yes, disconnect"</button>
                        </form>
                        <a class="button secondary" href=paths::CONNECTION>"Cancel"</a>
                    </div>
                </div>
            </Show>
        }
        .into_any(),
    };
    view! {
        {back_to.map(|back| view! {
            <p class="back-to-platform"><a class="button secondary" data-back href=back.href>{back.label}</a></p>
        })}
        {(!email_verified).then(|| view! { <VerifyEmail email=email.clone() /> })}
        <section class="card connection" aria-labelledby="status-title">
            <h2 id="status-title">"Status: " {status}</h2>
            {body}
        </section>
        {account.map(|account| view! { <AccountCard account stale=account_stale /> })}
        {(connected_at.is_some() || last_refresh_at.is_some()).then(|| view! {
            <section class="card timeline-summary">
                <dl class="details">
                    <Detail label="Connected" value=connected_at />
                    <Detail label="Last refreshed" value=last_refresh_at />
                </dl>
            </section>
        })}
        <EmailChoice on=emails_on />
        <section class="card" aria-labelledby="account-settings-title">
            <h2 id="account-settings-title">"Your account"</h2>
            <p>"Your password, a second factor at log-in (a code from an authenticator app), or leaving awx-onboard."</p>
            <div class="actions">
                <a class="button secondary" rel="external" href=paths::CONNECTION_SECOND_FACTOR>"Manage your second factor"</a>
                <a class="button secondary" rel="external" href=paths::CONNECTION_ACCOUNT>"Password and account"</a>
            </div>
        </section>
    }
}

/// The address waits for its verification link: until it is used we send nothing else.
#[component]
fn VerifyEmail(email: String) -> impl IntoView {
    view! {
        <section class="notice warn verify" role="status" data-email-verified="no">
            <p>
                <strong>"Confirm your email address."</strong>
                " We sent a link to " {email}
                ". Until you use it, we send no other email (not even when your connection needs you)."
            </p>
            <form method="post" action=paths::CONNECTION_VERIFY_EMAIL>
                <button type="submit" class="button small secondary">"Send the link again"</button>
            </form>
        </section>
    }
}

/// Whether we email the merchant when the connection needs them, and the switch.
#[component]
fn EmailChoice(on: bool) -> impl IntoView {
    let (state, action, value) = if on {
        (
            "On: we email you when your connection needs you (for example when it must be reconnected).",
            "Turn emails off",
            "off",
        )
    } else {
        (
            "Off: we do not email you about your connection. Check this page yourself from time to time.",
            "Turn emails on",
            "on",
        )
    };
    view! {
        <section class="card emails" aria-labelledby="emails-title">
            <h2 id="emails-title">"Emails about your connection"</h2>
            <p data-emails=value_of(on)>{state}</p>
            <form method="post" action=paths::CONNECTION_EMAILS>
                <input type="hidden" name="emails" value=value />
                <button type="submit" class="button secondary">{action}</button>
            </form>
        </section>
    }
}

fn value_of(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

#[component]
fn AccountCard(account: AccountView, stale: bool) -> impl IntoView {
    let entity = account.legal_entity_type.map(|e| match e.as_str() {
        "BUSINESS" => "Business".to_string(),
        "INDIVIDUAL" => "Individual".to_string(),
        other => other.to_string(),
    });
    view! {
        <section class="card account" aria-labelledby="account-title">
            <h2 id="account-title">"Airwallex account"</h2>
            {stale.then(|| view! {
                <p class="notice warn" role="status">"Airwallex is not reachable right now; these details may be out of date."</p>
            })}
            <dl class="details">
                <Detail label="Business name" value=account.business_name />
                <Detail label="Trading name" value=account.trading_name />
                <Detail label="Account ID" value=account.account_id />
                <Detail label="Account status" value=account.status />
                <Detail label="Legal entity" value=entity />
                <Detail label="Contact email" value=account.email />
                <Detail label="Country" value=account.country />
                <Detail label="Created" value=account.created />
            </dl>
        </section>
    }
}
