//! A browser-like client over real HTTP: its own cookie jar, no automatic redirects; it
//! signs up, logs in (with the second factor when asked), and goes through Airwallex's
//! consent on the simulator. And reading what pages and redirects carry.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;

use app::paths;

use super::factors::FACTORS;
use super::PASSWORD;

/// A browser: its own cookie jar, no automatic redirects, `Origin` set like a browser's.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

/// Where a redirect points.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// `response` sends the browser to the log-in page (`303` to `/login…`): whoever asked is
/// not signed in. `what` names the request.
#[track_caller]
pub fn assert_to_log_in(response: &reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{what}");
    let to = location(response);
    assert!(to.starts_with("/login"), "{what}: to {to}");
}

/// The query parameters of a URL or a path.
pub fn query(url: &str) -> HashMap<String, String> {
    let absolute = if url.starts_with('/') {
        format!("http://x{url}")
    } else {
        url.to_string()
    };
    url::Url::parse(&absolute)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
            base: base.to_string(),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with('/') {
            format!("{}{path_or_url}", self.base)
        } else {
            path_or_url.to_string()
        }
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        self.http.get(self.url(path_or_url)).send().await.expect("GET")
    }

    /// A form post from one of this app's pages.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("origin", &self.base)
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    pub async fn page(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("a page")
    }

    /// The sign-up form sent with `email` and `password`; whatever the answer.
    pub async fn sign_up_with(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(paths::SIGNUP, &[("email", email), ("password", password)])
            .await
    }

    pub async fn sign_up(&self, email: &str) {
        let response = self.sign_up_with(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} signs up");
        assert_eq!(location(&response), "/connection?notice=welcome");
    }

    /// The log-in form sent with `email` and `password`, and nothing after it (no second
    /// factor); whatever the answer.
    pub async fn log_in_with(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(paths::LOGIN, &[("email", email), ("password", password)])
            .await
    }

    /// Logs in with the password, and with the second factor when one is asked for (an
    /// operator enrols the first time, as a person would: with the key the page shows);
    /// returns the answer that ends the log-in.
    pub async fn log_in(&self, email: &str) -> reqwest::Response {
        let response = self.log_in_with(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} logs in");
        if location(&response) != crate::second_factor::SECOND_FACTOR {
            return response;
        }
        self.give_second_factor(email).await
    }

    /// On the second-factor page: enrols (keeping the key and the recovery codes for the
    /// next log-ins of `email` on this app) or enters a code; returns the final answer.
    pub async fn give_second_factor(&self, email: &str) -> reqwest::Response {
        let page = self.get(crate::second_factor::SECOND_FACTOR).await;
        // A log-in that no longer waits for its code redirects to the log-in page.
        assert_eq!(page.status(), StatusCode::OK, "{email}: the second-factor page");
        let page = page.text().await.expect("a page");
        let factor_key = format!("{}|{email}", self.base);
        if let Some(secret) = attribute(&page, "data-secret") {
            let secret = awx_onboard::accounts::second_factor::base32_decode(&secret).expect("a base32 key");
            let code = FACTORS.code_for(&factor_key, &secret);
            let response = self.post(crate::second_factor::SECOND_FACTOR, &[("code", &code)]).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} enrols");
            assert_eq!(location(&response), crate::second_factor::RECOVERY_CODES);
            let codes = self.page(crate::second_factor::RECOVERY_CODES).await;
            FACTORS.keep_recovery(&factor_key, all_attributes(&codes, "data-recovery-code"));
            return response;
        }
        let code = FACTORS.next_code(&factor_key);
        let response = self.post(crate::second_factor::SECOND_FACTOR, &[("code", &code)]).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{email} gives a second factor"
        );
        response
    }

    /// A second-factor code of `email` (enrolled by this browser's app in this process) not
    /// given before, as the person's authenticator app shows it.
    pub fn fresh_code(&self, email: &str) -> String {
        FACTORS.next_code(&format!("{}|{email}", self.base))
    }

    /// Starts the flow; returns the authorize URL the app sent the browser to.
    pub async fn start(&self, mode: &str) -> String {
        let response = self.post(paths::OAUTH_START, &[("mode", mode)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "the flow starts");
        location(&response)
    }

    /// Decides on the simulator's consent page for `account`; returns the callback URL
    /// the simulator redirected to.
    pub async fn consent(&self, authorize_url: &str, decision: &str, account: &str) -> String {
        let mut form: Vec<(String, String)> = query(authorize_url).into_iter().collect();
        form.push(("decision".into(), decision.into()));
        form.push(("account".into(), account.into()));
        let action = authorize_url.split('?').next().expect("a URL");
        let response = self.http.post(action).form(&form).send().await.expect("consent");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "the simulator redirects back");
        location(&response)
    }

    /// Follows the callback; returns where the app sent the browser.
    pub async fn callback(&self, callback_url: &str) -> String {
        let response = self.get(callback_url).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "callback answers with a redirect"
        );
        location(&response)
    }

    /// Starts the flow and authorizes `account` on the simulator's consent page; returns the
    /// callback URL, not followed yet.
    pub async fn authorized_callback(&self, account: &str) -> String {
        self.consent(&self.start("existing").await, "authorize", account).await
    }

    /// The whole consent: start, authorize `account` on the simulator, come back connected.
    pub async fn connect_airwallex(&self, account: &str) {
        let callback = self.authorized_callback(account).await;
        assert_eq!(self.callback(&callback).await, "/connection?notice=connected");
    }

    /// Uses a connect link as a merchant does: its landing page, its button, then
    /// `decision` for `account` on the simulator's consent page; returns where the callback
    /// sent the browser (the platform's return URL, with the outcome).
    pub async fn use_connect_link(&self, link: &str, decision: &str, account: &str) -> String {
        assert_eq!(
            self.get(link).await.status(),
            StatusCode::OK,
            "the landing page answers"
        );
        let path = link.strip_prefix(&self.base).expect("a link under PUBLIC_URL");
        let response = self.post(path, &[]).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "the link's button starts the flow"
        );
        let callback = self.consent(&location(&response), decision, account).await;
        self.callback(&callback).await
    }

    /// The value of the session cookie (`name=value`), for load generators.
    pub async fn session_cookie_after(&self, response: &reqwest::Response) -> String {
        response.headers()["set-cookie"]
            .to_str()
            .expect("a cookie header")
            .split(';')
            .next()
            .expect("a cookie")
            .to_string()
    }
}

/// The app's own styled page (its stylesheet linked) in `response`, answered with `status`:
/// its HTML.
pub async fn styled_page(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let html = response.text().await.expect("a page");
    assert!(html.contains("/pkg/awx-onboard.css"), "the app's styled page: {html}");
    html
}

/// The value of the first `name="…"` attribute in `html`.
pub fn attribute(html: &str, name: &str) -> Option<String> {
    all_attributes(html, name).into_iter().next()
}

/// Every value of `name="…"` attributes in `html`, in order.
pub fn all_attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!("{name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| html[at + needle.len()..].chars().take_while(|c| *c != '"').collect())
        .collect()
}
