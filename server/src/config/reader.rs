//! Reading variables: each bad value becomes one [`ConfigProblem`] naming its variable, and
//! reading goes on, so that every problem is reported at once.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use secrecy::SecretBox;
use url::Url;

/// One problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: &'static str,
    pub problem: String,
}

/// Every problem found; the server prints them all and stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.0 {
            writeln!(f, "  {}: {}", p.variable, p.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The message for one variable, if it had a problem.
    pub fn problem_with(&self, variable: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|p| p.variable == variable)
            .map(|p| p.problem.as_str())
    }
}

/// The variables, read through a lookup, with the problems found so far.
pub(super) struct Reader<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
    pub(super) problems: Vec<ConfigProblem>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Reader<'a> {
        Reader {
            get,
            problems: Vec::new(),
        }
    }

    /// The variable's value; unset and empty-after-trimming both count as absent.
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    pub(super) fn fail(&mut self, variable: &'static str, problem: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable,
            problem: problem.into(),
        });
    }

    pub(super) fn url(&mut self, name: &'static str, default: Option<&str>) -> Option<Url> {
        let value = self.raw(name).or_else(|| default.map(str::to_string))?;
        match Url::parse(&value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            Ok(_) => {
                self.fail(name, format!("must be an http or https URL with a host, got {value:?}"));
                None
            }
            Err(error) => {
                self.fail(name, format!("is not a valid URL ({error}): {value:?}"));
                None
            }
        }
    }

    pub(super) fn seconds(&mut self, name: &'static str, default: u64, max: u64) -> Duration {
        match self.raw(name) {
            None => Duration::from_secs(default),
            Some(value) => match value.parse::<u64>() {
                Ok(n) if n <= max => Duration::from_secs(n),
                Ok(_) => {
                    self.fail(name, format!("must be at most {max} seconds, got {value}"));
                    Duration::from_secs(default)
                }
                Err(_) => {
                    self.fail(name, format!("must be a whole number of seconds, got {value:?}"));
                    Duration::from_secs(default)
                }
            },
        }
    }

    /// A whole number from 1 to `max`.
    pub(super) fn count(&mut self, name: &'static str, default: i64, max: i64) -> i64 {
        match self.raw(name) {
            None => default,
            Some(value) => match value.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    self.fail(name, format!("must be a whole number from 1 to {max}, got {value:?}"));
                    default
                }
            },
        }
    }

    /// `true` or `false` (also `1`/`0`, `yes`/`no`).
    pub(super) fn flag(&mut self, name: &'static str, default: bool) -> bool {
        match self.raw(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(value) => match value.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    self.fail(name, format!("must be true or false, got {value:?}"));
                    default
                }
            },
        }
    }

    pub(super) fn key(&mut self, name: &'static str, value: &str) -> Option<SecretBox<[u8; 32]>> {
        match base64::engine::general_purpose::STANDARD.decode(value) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                Some(SecretBox::new(Box::new(key)))
            }
            Ok(bytes) => {
                self.fail(
                    name,
                    format!("must be base64 of exactly 32 bytes, got {} bytes", bytes.len()),
                );
                None
            }
            Err(_) => {
                self.fail(name, "must be base64 of 32 bytes (try: openssl rand -base64 32)");
                None
            }
        }
    }
}
