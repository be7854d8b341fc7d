//! The simulator's HTML: Airwallex's consent screen and the merchant's connected-apps page.

use super::accounts::SimAccount;
use super::authorize_request::{AuthorizeParams, ValidAuthorize};
use super::state::SimConnection;
use crate::html::escape as esc;
use crate::time::rfc3339;

const STYLE: &str = "body{margin:0;font-family:system-ui,sans-serif;background:#f4f5f8;color:#14171f}\
header{background:#14171f;color:#fff;padding:14px 24px;font-weight:700;letter-spacing:.02em}\
header span{color:#ff8e3c}header .muted{color:#c3c8d4}main{max-width:560px;margin:32px auto;padding:0 16px}\
.card{background:#fff;border:1px solid #e3e6ee;border-radius:12px;padding:28px}\
h1{font-size:1.4rem;margin:0 0 12px}.muted{color:#5b6272}.sim{font-size:.8rem;color:#9a5b00;background:#fff4e0;\
padding:6px 10px;border-radius:6px;display:inline-block;margin-bottom:16px}\
label.choice{display:flex;gap:10px;align-items:flex-start;border:1px solid #e3e6ee;border-radius:8px;padding:10px 12px;margin:8px 0}\
ul.scopes{padding-left:20px}.actions{display:flex;gap:12px;margin-top:20px}\
button{font:inherit;font-weight:600;border-radius:8px;padding:10px 18px;cursor:pointer;border:1px solid #14171f}\
button.primary{background:#14171f;color:#fff}button.secondary{background:#fff;color:#14171f}\
input[type=text],input[type=email]{font:inherit;padding:8px;border:1px solid #cfd3dc;border-radius:6px;width:100%;box-sizing:border-box}\
.field{display:block;margin:6px 0 6px 28px}.error{background:#fdecea;color:#b42318;padding:10px 12px;border-radius:8px}\
.ok{background:#e6f6ef;color:#0b6e4b;padding:10px 12px;border-radius:8px}table{width:100%;border-collapse:collapse}\
td,th{text-align:left;padding:8px;border-bottom:1px solid #e3e6ee}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Airwallex (simulated)</title><style>{STYLE}</style></head>\
         <body><header>air<span>wallex</span> <small class=\"muted\">simulator</small></header>\
         <main>{body}</main></body></html>",
        title = esc(title)
    )
}

pub fn index() -> String {
    layout(
        "Simulator",
        "<div class=\"card\"><h1>Simulated Airwallex</h1>\
         <p class=\"muted\">A stand-in for Airwallex's OAuth and account APIs, for development and tests.</p>\
         <p><a href=\"/merchant/apps\">Manage connected apps as a merchant</a></p></div>",
    )
}

pub fn error(message: &str) -> String {
    layout(
        "Authorization error",
        &format!(
            "<div class=\"card\"><h1>Something is wrong with this request</h1><p class=\"error\">{}</p>\
             <p class=\"muted\">Go back to the app you came from and try again.</p></div>",
            esc(message)
        ),
    )
}

fn hidden(name: &str, value: Option<&str>) -> String {
    match value {
        Some(value) => format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(value)),
        None => String::new(),
    }
}

fn scope_text(scope: &str) -> &'static str {
    match scope {
        "account_details:read" | "r:awx_action:settings.account_details_view" => {
            "View your account details (business name, address, contact, status)"
        }
        _ => "Other access",
    }
}

pub fn consent(params: &AuthorizeParams, valid: &ValidAuthorize, accounts: &[SimAccount]) -> String {
    consent_page(params, valid, accounts, None)
}

pub fn consent_with_error(
    params: &AuthorizeParams,
    valid: &ValidAuthorize,
    accounts: &[SimAccount],
    error: &str,
) -> String {
    consent_page(params, valid, accounts, Some(error))
}

fn consent_page(
    params: &AuthorizeParams,
    valid: &ValidAuthorize,
    accounts: &[SimAccount],
    error: Option<&str>,
) -> String {
    let mut body = String::new();
    body.push_str(
        "<div class=\"card\"><span class=\"sim\">Simulated sign-in: pick the account you are signed in as</span>",
    );
    body.push_str(&format!(
        "<h1><strong>{}</strong> wants to access your Airwallex account</h1>",
        esc(&valid.app_name)
    ));
    if let Some(error) = error {
        body.push_str(&format!("<p class=\"error\" role=\"alert\">{}</p>", esc(error)));
    }
    body.push_str("<p class=\"muted\">It will be able to:</p><ul class=\"scopes\">");
    for scope in &valid.scopes {
        body.push_str(&format!(
            "<li>{} <small class=\"muted\">({})</small></li>",
            scope_text(scope),
            esc(scope)
        ));
    }
    body.push_str("</ul><form method=\"post\" action=\"/oauth/authorize\">");
    for (name, value) in [
        ("response_type", params.response_type.as_deref()),
        ("client_id", params.client_id.as_deref()),
        ("redirect_uri", params.redirect_uri.as_deref()),
        ("scope", params.scope.as_deref()),
        ("state", params.state.as_deref()),
        ("code_challenge", params.code_challenge.as_deref()),
        ("code_challenge_method", params.code_challenge_method.as_deref()),
        ("sign_up", params.sign_up.as_deref()),
    ] {
        body.push_str(&hidden(name, value));
    }
    body.push_str("<fieldset style=\"border:0;padding:0\"><legend><strong>Account</strong></legend>");
    for (index, account) in accounts.iter().enumerate() {
        body.push_str(&format!(
            "<label class=\"choice\"><input type=\"radio\" name=\"account\" value=\"{id}\"{checked}>\
             <span><strong>{name}</strong><br><small class=\"muted\">{email} · {id}</small></span></label>",
            id = esc(&account.id),
            checked = if index == 0 && !params.sign_up() {
                " checked"
            } else {
                ""
            },
            name = esc(&account.business_name),
            email = esc(&account.email),
        ));
    }
    if params.sign_up() {
        body.push_str(
            "<label class=\"choice\"><input type=\"radio\" name=\"account\" value=\"new\" checked>\
             <span><strong>Create a new Airwallex account</strong></span></label>\
             <label class=\"field\">Business name <input type=\"text\" name=\"new_business_name\" autocomplete=\"organization\"></label>\
             <label class=\"field\">Email <input type=\"email\" name=\"new_email\" autocomplete=\"email\"></label>",
        );
    }
    body.push_str(
        "</fieldset><div class=\"actions\">\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"authorize\">Authorize</button>\
         <button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"decline\">Decline</button>\
         </div></form></div>",
    );
    layout("Authorize", &body)
}

pub fn choose_account(accounts: &[SimAccount]) -> String {
    let mut body = String::from(
        "<div class=\"card\"><span class=\"sim\">Simulated sign-in</span><h1>Which account are you?</h1><ul>",
    );
    for account in accounts {
        body.push_str(&format!(
            "<li><a href=\"/merchant/apps?account={id}\">{name}</a> <small class=\"muted\">{id}</small></li>",
            id = esc(&account.id),
            name = esc(&account.business_name)
        ));
    }
    body.push_str("</ul></div>");
    layout("Connected apps", &body)
}

pub fn connected_apps(account: &SimAccount, apps: &[(SimConnection, String)], disconnected: bool) -> String {
    let mut body = format!(
        "<div class=\"card\"><span class=\"sim\">Signed in as {}</span><h1>Connected apps</h1>",
        esc(&account.business_name)
    );
    if disconnected {
        body.push_str("<p class=\"ok\" role=\"status\">The app was disconnected. Its access has been revoked.</p>");
    }
    if apps.is_empty() {
        body.push_str("<p class=\"muted\">No apps are connected to this account.</p>");
    } else {
        body.push_str("<table><thead><tr><th>App</th><th>Access</th><th>Connected</th><th></th></tr></thead><tbody>");
        for (connection, app_name) in apps {
            body.push_str(&format!(
                "<tr><td><strong>{app}</strong></td><td>{scopes}</td><td>{since}</td><td>\
                 <form method=\"post\" action=\"/merchant/apps/disconnect\">\
                 <input type=\"hidden\" name=\"connection_id\" value=\"{id}\">\
                 <button class=\"secondary\" type=\"submit\" aria-label=\"Disconnect {app}\">Disconnect</button></form></td></tr>",
                app = esc(app_name),
                scopes = esc(&connection.scopes.join(" ")),
                since = esc(&rfc3339(connection.created_at)),
                id = esc(&connection.id),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</div>");
    layout("Connected apps", &body)
}
