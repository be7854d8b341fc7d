use leptos::prelude::*;

use crate::components::{
    loaded, Checkboxes, DataTable, FormCard, OperatorHeading, PostButton, PostOutcome, QueryNotice,
};
use crate::dto::ApiKeyView;
use crate::operator_api::load_api_keys;
use crate::paths::{self, Notice};

const NOTICES: &[Notice] = &[Notice::KeyRevoked];
const SCOPES: [(&str, &str); 4] = [
    (
        "connections:read",
        "connections:read — list merchants' connections and read one",
    ),
    (
        "tokens:read",
        "tokens:read — get a merchant's access token (every read is recorded)",
    ),
    (
        "connect:write",
        "connect:write — create connect links for the platform's own merchants, and disconnect them",
    ),
    (
        "airwallex:proxy",
        "airwallex:proxy — call Airwallex on a merchant's behalf through awx-onboard (every call is recorded)",
    ),
];

#[component]
pub fn OperatorApiKeysPage() -> impl IntoView {
    let keys = Resource::new(|| (), |_| load_api_keys());
    view! {
        <OperatorHeading title="API keys" current=paths::OPERATOR_API_KEYS />
        <p class="muted">
            "Service keys let the platform's backend use the connections: "
            <code>"Authorization: Bearer awx_pk_…"</code>
            ". The API is described at "
            <a href="/api/platform/v1/openapi.json">"/api/platform/v1/openapi.json"</a>"."
        </p>
        <p class="muted">
            "What the keys did: "
            <a rel="external" href=paths::OPERATOR_TOKEN_READS_CSV>"every token read (CSV)"</a>
            ", "
            <a rel="external" href=paths::OPERATOR_PROXY_CALLS_CSV>"every call through the Airwallex proxy (CSV)"</a>
            "."
        </p>
        <QueryNotice notices=NOTICES />
        <PostOutcome />
        <FormCard id="new-key" heading="Create a key" action=paths::OPERATOR_API_KEYS submit="Create key">
            <label>
                "Name"
                <input type="text" name="name" required maxlength="100" placeholder="billing backend" />
            </label>
            <Checkboxes legend="Scopes" name="scope" options=&SCOPES />
            <label>
                "Expires in (days; empty for no end)"
                <input type="number" name="expires_in_days" min="1" max="3650" step="1" inputmode="numeric" />
            </label>
            <p class="muted">
                "Keys that can read tokens or call Airwallex are announced by email to every other operator."
            </p>
        </FormCard>
        <ConnectLinkForm external_id=String::new() return_url=String::new() />
        <Suspense fallback=|| view! { <p class="muted">"Loading keys…"</p> }>
            {move || Suspend::new(async move { loaded(keys.await, |keys| view! { <KeyTable keys /> }.into_any()) })}
        </Suspense>
    }
}

#[component]
fn KeyTable(keys: Vec<ApiKeyView>) -> impl IntoView {
    let rows = keys
        .into_iter()
        .map(|key| {
            let status = match &key.revoked {
                Some(at) => view! { <span class="badge none">"Revoked " {at.clone()}</span> }.into_any(),
                None if key.expired => view! { <span class="badge bad">"Expired"</span> }.into_any(),
                None => view! {
                    <PostButton
                        action=paths::operator_api_key_revoke(&key.id)
                        label="Revoke"
                        tone="danger"
                        name=format!("Revoke {}", key.name)
                    />
                }
                .into_any(),
            };
            view! {
                <tr data-key=key.id.clone()>
                    <td>{key.name.clone()}</td>
                    <td><code>{key.id.clone()}</code></td>
                    <td>{key.scopes.join(", ")}</td>
                    <td>{key.created_at}<br /><small class="muted">{key.created_by}</small></td>
                    <td>{key.last_used.unwrap_or_else(|| "never".into())}</td>
                    <td>{key.expires.unwrap_or_else(|| "no end".into())}</td>
                    <td>{status}</td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <DataTable
            caption="Service keys"
            columns=&["Name", "Key id", "Scopes", "Created", "Last used", "Expires", "Status"]
            empty="No keys yet."
            rows
        />
    }
}

/// Creates a connect link for one of the platform's merchants (by its external id), shown
/// once on the API keys page, for support to send by hand.
#[component]
pub fn ConnectLinkForm(external_id: String, return_url: String) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="new-link">
            <h2 id="new-link">"Create a connect link"</h2>
            <p class="muted">
                "For a merchant of the platform who asks support for a way to (re)connect: a one-use link, \
                 shown once. A new external id creates the merchant (give an email then)."
            </p>
            <form class="stack" method="post" action=paths::OPERATOR_CONNECT_LINKS>
                <label>
                    "External id"
                    <input type="text" name="external_id" required maxlength="200" value=external_id />
                </label>
                <label>
                    "Email (for a new external id)"
                    <input type="email" name="email" maxlength="254" />
                </label>
                <label>
                    "Return URL (its origin must be in PLATFORM_RETURN_ORIGINS)"
                    <input type="url" name="return_url" required maxlength="2048" value=return_url />
                </label>
                <button type="submit" class="button">"Create link"</button>
            </form>
        </section>
    }
}
