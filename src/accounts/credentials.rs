//! What a person types: an email address, parsed and normalised, and a password, checked
//! against a policy with a real list of common passwords and never printed.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use super::AccountError;

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The 10,000 most common passwords of a published breach corpus (and longer variants),
/// lower case, read once.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// Reads the common-password list now (at start-up) rather than at the first sign-up.
pub(super) fn load_common_passwords() {
    LazyLock::force(&COMMON_PASSWORDS);
}

/// Whether `lower` (a lower-cased password) is a common password, or one with digits and
/// symbols stuck to its ends (`Password@123`, `!!dragon2024!!`).
fn is_common(lower: &str) -> bool {
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    COMMON_PASSWORDS.contains(lower) || (core.chars().count() >= 4 && COMMON_PASSWORDS.contains(core))
}

/// An email address, trimmed and lower-cased, checked for a plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Email, AccountError> {
        let email = input.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
            && match email.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        if valid {
            Ok(Email(email))
        } else {
            Err(AccountError::InvalidEmail)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed. Prints as `[redacted]`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Password {
        Password(value.into())
    }

    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Checks a new password against the policy: 12 to 256 characters, not a common
/// password, not the email, not one repeated character.
pub fn check_new_password(password: &Password, email: &Email) -> Result<(), AccountError> {
    let text = password.expose();
    let chars = text.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooLong);
    }
    let lower = text.to_lowercase();
    let local = email.as_str().split('@').next().unwrap_or_default();
    let first = lower.chars().next().unwrap_or_default();
    if is_common(&lower)
        || lower.chars().all(|c| c == first)
        || lower == email.as_str()
        || (local.len() >= 4 && lower.contains(local) && chars < local.len() + 6)
    {
        return Err(AccountError::PasswordTooCommon);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ana@Example.COM ").unwrap().as_str(), "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "a b@example.com",
            "ana@example..com",
            "<a>@x.com",
        ] {
            assert_eq!(Email::parse(bad), Err(AccountError::InvalidEmail), "{bad:?}");
        }
    }

    #[test]
    fn the_password_policy_refuses_short_common_and_obvious_passwords() {
        let email = Email::parse("ana.lima@example.com").unwrap();
        let check = |p: &str| check_new_password(&Password::new(p), &email);
        assert_eq!(check("short"), Err(AccountError::PasswordTooShort));
        assert_eq!(check("elevenchars"), Err(AccountError::PasswordTooShort));
        assert_eq!(check(&"x".repeat(257)), Err(AccountError::PasswordTooLong));
        assert_eq!(check("password1234"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("QWERTY123456"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("aaaaaaaaaaaaaaa"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("ana.lima@example.com"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("ana.lima1234"), Err(AccountError::PasswordTooCommon));
        assert_eq!(check("correct horse battery staple"), Ok(()));
        assert_eq!(check("harbour-coffee-2026!"), Ok(()));
    }

    #[test]
    fn the_common_password_list_is_a_real_one() {
        assert!(COMMON_PASSWORDS.len() >= 10_000, "{}", COMMON_PASSWORDS.len());
        let email = Email::parse("ana.lima@example.com").unwrap();
        let check = |p: &str| check_new_password(&Password::new(p), &email);
        for common in [
            "Password@123",
            "PASSWORD1234",
            "!!sunshine!!2024",
            "Dragon2026!!!",
            "qwertyuiop12",
        ] {
            assert_eq!(check(common), Err(AccountError::PasswordTooCommon), "{common}");
        }
        let message = AccountError::PasswordTooCommon.to_string();
        assert!(
            message.contains("too common") && message.contains("phrase"),
            "{message}"
        );
    }

    #[test]
    fn passwords_do_not_print() {
        assert_eq!(format!("{:?}", Password::new("hunter2hunter2")), "Password([redacted])");
    }
}
