//! What a connect session's fields may be: the platform's ids and tags, the origins it
//! may return to (and a return URL checked against them), and the outcome added to it.

use url::Url;

use super::{invalid, ConnectSessions, SessionError, Tags};
use super::{MAX_EXTERNAL_ID_CHARS, MAX_RETURN_URL_CHARS, MAX_TAGS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS};
use crate::urls::is_loopback_http;

/// Checks an external id: 1 to 200 printable ASCII characters.
pub fn check_external_id(external_id: &str) -> Result<(), SessionError> {
    if external_id.is_empty() || external_id.len() > MAX_EXTERNAL_ID_CHARS {
        return Err(invalid(
            "external_id",
            format!("must be 1 to {MAX_EXTERNAL_ID_CHARS} characters"),
        ));
    }
    if !external_id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(invalid("external_id", "must be printable ASCII characters only"));
    }
    Ok(())
}

/// Checks tags: at most 10 pairs, keys 1 to 64 characters, values at most 255.
pub fn check_tags(tags: &Tags) -> Result<(), SessionError> {
    if tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (key, value) in tags {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS || key.chars().any(char::is_control) {
            return Err(invalid(
                "tags",
                format!("each key must be 1 to {MAX_TAG_KEY_CHARS} characters, without control characters"),
            ));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS || value.chars().any(char::is_control) {
            return Err(invalid(
                "tags",
                format!("each value must be at most {MAX_TAG_VALUE_CHARS} characters, without control characters"),
            ));
        }
    }
    Ok(())
}

/// The merchant's tags as stored (a JSON object), `{}` when none.
pub fn tags_from_text(text: Option<&str>) -> Tags {
    text.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default()
}

/// An origin as `PLATFORM_RETURN_ORIGINS` lists it: `https://host[:port]`, or `http` on
/// loopback; no path, query, fragment or user info. Returns its normal form.
pub fn parse_return_origin(text: &str) -> Result<String, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{text:?} must not carry user info"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must be an origin only (scheme, host and port)"));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_http(&url) => {}
        _ => return Err(format!("{text:?} must be https (http only on loopback)")),
    }
    Ok(url.origin().ascii_serialization())
}

/// `return_url` with the session's outcome added to its query (its own parameters kept).
pub fn return_to(return_url: &str, session_id: &str, status: &str, reason: Option<&str>) -> String {
    let Ok(mut url) = Url::parse(return_url) else {
        return return_url.to_string();
    };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("connect_session", session_id);
        query.append_pair("status", status);
        if let Some(reason) = reason {
            query.append_pair("reason", reason);
        }
    }
    url.to_string()
}

impl ConnectSessions {
    /// Checks a return URL against `PLATFORM_RETURN_ORIGINS`: the same scheme, host and
    /// port as one of them, and no user info.
    pub fn check_return_url(&self, text: &str) -> Result<Url, SessionError> {
        if self.settings.return_origins.is_empty() {
            return Err(SessionError::ReturnUrl(
                "no return origin is configured (PLATFORM_RETURN_ORIGINS)".into(),
            ));
        }
        if text.len() > MAX_RETURN_URL_CHARS {
            return Err(SessionError::ReturnUrl(format!(
                "must be at most {MAX_RETURN_URL_CHARS} characters"
            )));
        }
        let url = Url::parse(text).map_err(|_| SessionError::ReturnUrl("is not an absolute URL".into()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(SessionError::ReturnUrl("must be an https URL".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SessionError::ReturnUrl("must not carry user info".into()));
        }
        let origin = url.origin().ascii_serialization();
        if !self.settings.return_origins.contains(&origin) {
            return Err(SessionError::ReturnUrl(format!(
                "its origin {origin} is not listed in PLATFORM_RETURN_ORIGINS"
            )));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::connect_sessions::SessionLink;

    #[test]
    fn return_origins_are_origins_over_https_or_loopback_http() {
        assert_eq!(
            parse_return_origin("https://platform.example").as_deref(),
            Ok("https://platform.example")
        );
        assert_eq!(
            parse_return_origin("https://platform.example:443/").as_deref(),
            Ok("https://platform.example")
        );
        assert_eq!(
            parse_return_origin("http://127.0.0.1:4000").as_deref(),
            Ok("http://127.0.0.1:4000")
        );
        for bad in [
            "http://platform.example",
            "https://platform.example/app",
            "https://u:p@platform.example",
            "javascript:alert(1)",
            "platform.example",
        ] {
            assert!(parse_return_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_outcome_is_added_to_the_return_url_keeping_its_own_query() {
        assert_eq!(
            return_to(
                "https://p.example/back?tab=2#top",
                "cs_1",
                "failed",
                Some("account_mismatch")
            ),
            "https://p.example/back?tab=2&connect_session=cs_1&status=failed&reason=account_mismatch#top"
        );
    }

    #[test]
    fn external_ids_and_tags_are_bounded() {
        assert!(check_external_id("user-42").is_ok());
        assert!(check_external_id(&"x".repeat(200)).is_ok());
        for bad in [String::new(), "x".repeat(201), "tab\there".into(), "é".into()] {
            assert!(check_external_id(&bad).is_err(), "{bad:?}");
        }
        let many: Tags = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(check_tags(&many).is_err());
        assert!(check_tags(&Tags::from([("".into(), "v".into())])).is_err());
        assert!(check_tags(&Tags::from([("k".repeat(65), "v".into())])).is_err());
        assert!(check_tags(&Tags::from([("k".into(), "v".repeat(256))])).is_err());
        assert!(check_tags(&Tags::from([("plan".into(), "gold".into())])).is_ok());
    }

    #[test]
    fn links_do_not_print() {
        assert_eq!(
            format!("{:?}", SessionLink("https://x/connect/secret".into())),
            "SessionLink([redacted])"
        );
    }
}
