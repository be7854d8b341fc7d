use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{OperatorNav, PostOutcome, QueryNotice};
use crate::dto::ApiKeyView;
use crate::operator_api::load_api_keys;
use crate::paths::{self, Notice};

const NOTICES: &[Notice] = &[Notice::KeyRevoked];
const SCOPES: [(&str, &str); 2] = [
    (
        "connections:read",
        "connections:read — list merchants' connections and read one",
    ),
    (
        "tokens:read",
        "tokens:read — get a merchant's access token (every read is recorded)",
    ),
];

#[component]
pub fn OperatorApiKeysPage() -> impl IntoView {
    let keys = Resource::new(|| (), |_| load_api_keys());
    view! {
        <Title text="API keys" />
        <OperatorNav current=paths::OPERATOR_API_KEYS />
        <h1>"API keys"</h1>
        <p class="muted">
            "Service keys let the platform's backend use the connections: "
            <code>"Authorization: Bearer awx_pk_…"</code>
            ". The API is described at "
            <a href="/api/platform/v1/openapi.json">"/api/platform/v1/openapi.json"</a>"."
        </p>
        <QueryNotice notices=NOTICES />
        <PostOutcome />
        <section class="card" aria-labelledby="new-key">
            <h2 id="new-key">"Create a key"</h2>
            <form class="stack" method="post" action=paths::OPERATOR_API_KEYS>
                <label>
                    "Name"
                    <input type="text" name="name" required maxlength="100" placeholder="billing backend" />
                </label>
                <fieldset>
                    <legend>"Scopes"</legend>
                    {SCOPES
                        .iter()
                        .map(|(scope, label)| view! {
                            <label class="check">
                                <input type="checkbox" name="scope" value=*scope />
                                {*label}
                            </label>
                        })
                        .collect_view()}
                </fieldset>
                <button type="submit" class="button">"Create key"</button>
            </form>
        </section>
        <Suspense fallback=|| view! { <p class="muted">"Loading keys…"</p> }>
            {move || Suspend::new(async move {
                match keys.await {
                    Ok(keys) => view! { <KeyTable keys /> }.into_any(),
                    Err(error) => view! { <p class="notice bad" role="alert">{crate::pages::error_text(&error)}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn KeyTable(keys: Vec<ApiKeyView>) -> impl IntoView {
    if keys.is_empty() {
        return view! { <p class="muted">"No keys yet."</p> }.into_any();
    }
    view! {
        <table class="data">
            <caption>"Service keys"</caption>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Key id"</th>
                    <th scope="col">"Scopes"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Last used"</th>
                    <th scope="col">"Status"</th>
                </tr>
            </thead>
            <tbody>
                {keys
                    .into_iter()
                    .map(|key| {
                        let status = match &key.revoked {
                            Some(at) => view! { <span class="badge none">"Revoked " {at.clone()}</span> }.into_any(),
                            None => view! {
                                <form method="post" action=paths::operator_api_key_revoke(&key.id)>
                                    <button type="submit" class="button small danger" aria-label=format!("Revoke {}", key.name)>
                                        "Revoke"
                                    </button>
                                </form>
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
