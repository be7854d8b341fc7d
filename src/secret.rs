//! Secrets that must never reach a log line, an error message, HTML or `Debug` output.
//!
//! One type per kind of OAuth secret, so that a code cannot be passed where a verifier is
//! expected (as in oauth2-rs). Each prints as `Name([redacted])` and is read only through
//! [`expose`](AccessToken::expose), at the one place that must send it.

use rand::RngCore;

macro_rules! secret_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> $name {
                $name(value.into())
            }

            /// The raw value, for the one place that must send it (an HTTP header or body).
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map($name)
            }
        }
    };
}

secret_string!(
    /// The one-time code Airwallex sends to the redirect URI after consent.
    AuthorizationCode
);
secret_string!(
    /// The PKCE verifier kept on the server between the start of an authorization and its callback.
    PkceCodeVerifier
);
secret_string!(
    /// A 5-minute Airwallex access token (`Authorization: Bearer …`).
    AccessToken
);
secret_string!(
    /// A rotating Airwallex refresh token.
    RefreshToken
);

/// `bytes` random bytes from the operating system's CSPRNG, URL-safe base64 without padding.
pub fn random_urlsafe(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Compares two byte strings in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let refresh = RefreshToken::new("rt_live_secret_value");
        assert_eq!(format!("{refresh:?}"), "RefreshToken([redacted])");
        assert!(!format!("{:?}", Some(&refresh)).contains("secret"));
        assert_eq!(refresh.expose(), "rt_live_secret_value");
        assert_eq!(format!("{:?}", AccessToken::new("at_x")), "AccessToken([redacted])");
        assert_eq!(
            format!("{:?}", AuthorizationCode::new("code_x")),
            "AuthorizationCode([redacted])"
        );
        assert_eq!(
            format!("{:?}", PkceCodeVerifier::new("verifier_x")),
            "PkceCodeVerifier([redacted])"
        );
    }

    #[test]
    fn random_values_are_long_and_distinct() {
        let a = random_urlsafe(32);
        let b = random_urlsafe(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
