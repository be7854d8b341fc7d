//! The second factors test browsers enrolled, as the people's phones would hold them.

use std::collections::HashMap;

/// Second factors that test browsers enrolled, by app and email: what the person's phone
/// would hold. Each code is given once, as the server requires: the current step's, the
/// next one's, then recovery codes.
pub(super) struct Factors(std::sync::Mutex<HashMap<String, Factor>>);

struct Factor {
    secret: Vec<u8>,
    last_step: i64,
    recovery: Vec<String>,
}

pub(super) static FACTORS: std::sync::LazyLock<Factors> =
    std::sync::LazyLock::new(|| Factors(std::sync::Mutex::new(HashMap::new())));

impl Factors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Factor>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_step() -> i64 {
        awx_onboard::time::Clock::system().now() / awx_onboard::accounts::second_factor::STEP_SECONDS
    }

    /// The enrolment's first code (and the key kept).
    pub(super) fn code_for(&self, key: &str, secret: &[u8]) -> String {
        let step = Self::now_step();
        self.lock().insert(
            key.to_string(),
            Factor {
                secret: secret.to_vec(),
                last_step: step,
                recovery: Vec::new(),
            },
        );
        awx_onboard::accounts::second_factor::hotp(secret, step as u64)
    }

    pub(super) fn keep_recovery(&self, key: &str, codes: Vec<String>) {
        if let Some(factor) = self.lock().get_mut(key) {
            factor.recovery = codes;
        }
    }

    /// A code not given before: this step's or the next's, else a recovery code.
    pub(super) fn next_code(&self, key: &str) -> String {
        let mut factors = self.lock();
        let factor = factors
            .get_mut(key)
            .unwrap_or_else(|| panic!("no second factor enrolled for {key} in this process"));
        let step = Self::now_step().max(factor.last_step + 1);
        if step <= Self::now_step() + 1 {
            factor.last_step = step;
            return awx_onboard::accounts::second_factor::hotp(&factor.secret, step as u64);
        }
        factor.recovery.pop().expect("a recovery code left")
    }
}
