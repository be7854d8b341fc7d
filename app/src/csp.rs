//! The Content-Security-Policy: this origin's scripts (the hydration script carries a
//! per-response nonce), styles and images; forms may post here and be redirected on to
//! Airwallex's authorize page.

/// The origin of the Airwallex authorize page, provided as context by the server.
#[derive(Clone, Debug)]
pub struct AuthorizeOrigin(pub String);

pub fn policy(nonce: Option<&str>, authorize_origin: &str) -> String {
    let script_nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{script_nonce} 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         frame-ancestors 'none'; form-action 'self' {authorize_origin}"
    )
}

/// Sets the policy, with the nonce Leptos put on this response's inline scripts.
pub fn set_for_this_response() {
    use leptos::prelude::use_context;
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let origin = use_context::<AuthorizeOrigin>().map(|o| o.0).unwrap_or_default();
    let nonce = leptos::nonce::use_nonce().map(|n| n.to_string());
    if let Ok(value) = http::HeaderValue::from_str(&policy(nonce.as_deref(), &origin)) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_allows_only_self_the_nonce_and_the_authorize_origin() {
        let policy = policy(Some("abc123"), "https://demo.airwallex.com");
        assert!(policy.contains("script-src 'self' 'nonce-abc123' 'wasm-unsafe-eval'"));
        assert!(policy.contains("form-action 'self' https://demo.airwallex.com"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn without_a_nonce_no_inline_script_is_allowed() {
        let policy = policy(None, "http://127.0.0.1:3100");
        assert!(policy.contains("script-src 'self' 'wasm-unsafe-eval'"));
    }
}
