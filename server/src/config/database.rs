//! What is stored and how it is sealed: `DATABASE_URL` and the token encryption key
//! (`TOKEN_ENCRYPTION_KEY`, `TOKEN_ENCRYPTION_RETIRED_KEYS`, `TOKEN_ENCRYPTION_KEY_FILE`).

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::reader::Reader;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/awx-onboard.db";
pub const DEFAULT_KEY_FILE: &str = "data/token-encryption.key";

/// Where the token encryption key comes from.
pub enum TokenKeySource {
    /// `TOKEN_ENCRYPTION_KEY` (and optional retired keys that still decrypt).
    Given {
        current: SecretBox<[u8; 32]>,
        retired: Vec<SecretBox<[u8; 32]>>,
    },
    /// `sim` mode without a key: a key file created once with mode 0600.
    SimKeyFile(PathBuf),
}

impl fmt::Debug for TokenKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKeySource::Given { retired, .. } => {
                write!(f, "Given {{ current: [redacted], retired: {} keys }}", retired.len())
            }
            TokenKeySource::SimKeyFile(path) => write!(f, "SimKeyFile({})", path.display()),
        }
    }
}

pub(super) fn database_url(r: &mut Reader) -> SecretString {
    let url = r
        .raw("DATABASE_URL")
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
    if awx_onboard::db::Engine::from_url(&url).is_none() {
        r.fail(
            "DATABASE_URL",
            format!(
                "must start with sqlite: or postgres://, got {:?}",
                awx_onboard::db::redact_url(&url)
            ),
        );
    }
    SecretString::from(url)
}

/// For log lines: a database URL without its password.
pub fn shown(url: &SecretString) -> String {
    awx_onboard::db::redact_url(url.expose_secret())
}

pub(super) fn token_key(r: &mut Reader, is_sim: bool) -> Option<TokenKeySource> {
    match r.raw("TOKEN_ENCRYPTION_KEY") {
        Some(value) => {
            let current = r.key("TOKEN_ENCRYPTION_KEY", &value);
            let retired: Vec<_> = r
                .raw("TOKEN_ENCRYPTION_RETIRED_KEYS")
                .unwrap_or_default()
                .split(',')
                .filter(|k| !k.trim().is_empty())
                .filter_map(|k| r.key("TOKEN_ENCRYPTION_RETIRED_KEYS", k.trim()))
                .collect();
            current.map(|current| TokenKeySource::Given { current, retired })
        }
        None if is_sim => Some(TokenKeySource::SimKeyFile(PathBuf::from(
            r.raw("TOKEN_ENCRYPTION_KEY_FILE")
                .unwrap_or_else(|| DEFAULT_KEY_FILE.to_string()),
        ))),
        None => {
            r.fail(
                "TOKEN_ENCRYPTION_KEY",
                "is required when AIRWALLEX_ENV is demo or prod (base64 of 32 bytes: openssl rand -base64 32)",
            );
            None
        }
    }
}
