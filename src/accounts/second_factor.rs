//! A second factor: TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one step of
//! drift either way), each code accepted once, and ten single-use recovery codes.
//!
//! The secret (160 random bits) is stored AES-256-GCM encrypted under
//! `TOKEN_ENCRYPTION_KEY`, bound to its account, like the tokens; recovery codes only as
//! SHA-256. An enrolment is confirmed by a first code; until then the same secret is shown
//! again (a reload does not invalidate what the operator's app has scanned). A code is taken
//! once: `last_step` moves forward in one conditional write, so two requests with the same
//! code (a replay, or a double submit) let exactly one in.

use std::fmt::Write;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::crypto::{associated_data, TokenCipher};
use crate::db::Database;
use crate::time::Clock;

/// Seconds per TOTP step.
pub const STEP_SECONDS: i64 = 30;
pub const RECOVERY_CODES: usize = 10;
/// What authenticator apps show the account under.
pub const ISSUER: &str = "awx-onboard";

/// The HOTP value (RFC 4226) of `secret` at `counter`, six digits.
pub fn hotp(secret: &[u8], counter: u64) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let value = (u32::from(hash[offset]) & 0x7f) << 24
        | u32::from(hash[offset + 1]) << 16
        | u32::from(hash[offset + 2]) << 8
        | u32::from(hash[offset + 3]);
    format!("{:06}", value % 1_000_000)
}

/// The TOTP code of `secret` at unix time `now`.
pub fn code_at(secret: &[u8], now: i64) -> String {
    hotp(secret, (now / STEP_SECONDS) as u64)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, without padding (what authenticator apps take).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The inverse of [`base32`] (case and spaces ignored); `None` for anything else.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = BASE32.iter().position(|b| *b as char == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(normalize_recovery(code).as_bytes()))
}

/// A recovery code as typed: lower case, without spaces or dashes.
fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn display_aad(account_id: i64) -> Vec<u8> {
    associated_data("second_factors", account_id, "recovery_codes_shown")
}

fn secret_aad(account_id: i64) -> Vec<u8> {
    associated_data("second_factors", account_id, "secret")
}

/// An enrolment in progress, to show: the secret as text and as a QR code.
pub struct Enrolment {
    /// Base32, for typing into a password manager.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub uri: String,
    /// The QR code, drawn as SVG.
    pub qr_svg: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment([redacted])")
    }
}

/// Where an account's second factor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorStatus {
    None,
    Enrolling,
    On,
}

/// Which second factor a verified code was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorUsed {
    /// A TOTP code.
    Code,
    /// One of the single-use recovery codes.
    RecoveryCode,
}

#[derive(Clone)]
pub struct SecondFactors {
    db: Database,
    clock: Clock,
    cipher: Arc<TokenCipher>,
}

impl std::fmt::Debug for SecondFactors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondFactors").finish_non_exhaustive()
    }
}

impl SecondFactors {
    pub fn new(db: Database, clock: Clock, cipher: Arc<TokenCipher>) -> SecondFactors {
        SecondFactors { db, clock, cipher }
    }

    pub async fn status(&self, account_id: i64) -> Result<FactorStatus, sqlx::Error> {
        let confirmed: Option<Option<i64>> =
            sqlx::query_scalar("SELECT confirmed_at FROM second_factors WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(self.db.pool())
                .await?;
        Ok(match confirmed {
            None => FactorStatus::None,
            Some(None) => FactorStatus::Enrolling,
            Some(Some(_)) => FactorStatus::On,
        })
    }

    async fn secret(&self, account_id: i64) -> Result<Option<(Vec<u8>, Option<i64>)>, sqlx::Error> {
        let row = sqlx::query("SELECT secret, key_id, confirmed_at FROM second_factors WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: Vec<u8> = row.try_get("secret")?;
        let key_id: String = row.try_get("key_id")?;
        let secret = self
            .cipher
            .decrypt(&key_id, &sealed, &secret_aad(account_id))
            .map_err(|_| sqlx::Error::Decode("a second-factor secret could not be decrypted".into()))?;
        Ok(Some((secret, row.try_get("confirmed_at")?)))
    }

    /// Starts (or shows again) the enrolment of `account_id`, whose app lists it as `label`.
    /// `None` when a second factor is already on.
    pub async fn enrolment(&self, account_id: i64, label: &str) -> Result<Option<Enrolment>, sqlx::Error> {
        let secret = match self.secret(account_id).await? {
            Some((_, Some(_))) => return Ok(None),
            Some((secret, None)) => secret,
            None => {
                let mut secret = vec![0u8; 20];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
                sqlx::query(
                    "INSERT INTO second_factors (account_id, secret, key_id, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account_id) DO NOTHING",
                )
                .bind(account_id)
                .bind(self.cipher.encrypt(&secret, &secret_aad(account_id)))
                .bind(self.cipher.current_key_id())
                .bind(self.clock.now())
                .execute(self.db.pool())
                .await?;
                // Two first views at once: the stored one is the one.
                match self.secret(account_id).await? {
                    Some((stored, None)) => stored,
                    _ => return Ok(None),
                }
            }
        };
        let text = base32(&secret);
        let label: String = url::form_urlencoded::byte_serialize(format!("{ISSUER}:{label}").as_bytes()).collect();
        let uri = format!(
            "otpauth://totp/{}?secret={text}&issuer={ISSUER}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
            label.replace('+', "%20")
        );
        let qr_svg = qrcode::QrCode::new(uri.as_bytes())
            .map(|qr| {
                qr.render::<qrcode::render::svg::Color>()
                    .min_dimensions(200, 200)
                    .quiet_zone(true)
                    .build()
            })
            .unwrap_or_default();
        Ok(Some(Enrolment {
            secret: text,
            uri,
            qr_svg,
        }))
    }

    /// The step `code` belongs to (this one or one either side), if it is this secret's.
    fn step_of(&self, secret: &[u8], code: &str) -> Option<i64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Real time, whatever the app's clock says: the code comes from the person's phone.
        let now = Clock::system().now() / STEP_SECONDS;
        (now - 1..=now + 1)
            .rev()
            .find(|step| crate::secret::constant_time_eq(hotp(secret, *step as u64).as_bytes(), code.as_bytes()))
    }

    /// Confirms an enrolment with a first code: the factor is on, and the recovery codes
    /// are returned (to show once). `None` when the code is not right.
    pub async fn confirm(&self, account_id: i64, code: &str) -> Result<Option<Vec<String>>, sqlx::Error> {
        let Some((secret, None)) = self.secret(account_id).await? else {
            return Ok(None);
        };
        let Some(step) = self.step_of(&secret, code) else {
            return Ok(None);
        };
        let mut tx = self.db.begin().await?;
        let confirmed = sqlx::query(
            "UPDATE second_factors SET confirmed_at = $1, last_step = $2 WHERE account_id = $3 AND confirmed_at IS NULL",
        )
        .bind(self.clock.now())
        .bind(step)
        .bind(account_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if confirmed != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            let raw = crate::secret::random_urlsafe(8).to_lowercase().replace(['-', '_'], "x");
            let mut shown = String::new();
            let _ = write!(shown, "{}-{}", &raw[..5], &raw[5..10]);
            sqlx::query("INSERT INTO recovery_codes (account_id, code_hash) VALUES ($1, $2)")
                .bind(account_id)
                .bind(code_hash(&shown))
                .execute(&mut *tx)
                .await?;
            codes.push(shown);
        }
        tx.commit().await?;
        Ok(Some(codes))
    }

    /// Checks a code (or a recovery code) of an account whose second factor is on; each is
    /// accepted once.
    pub async fn verify(&self, account_id: i64, code: &str) -> Result<Option<FactorUsed>, sqlx::Error> {
        let Some((secret, Some(_))) = self.secret(account_id).await? else {
            return Ok(None);
        };
        if let Some(step) = self.step_of(&secret, code) {
            let _gate = self.db.write_gate().await;
            let taken =
                sqlx::query("UPDATE second_factors SET last_step = $1 WHERE account_id = $2 AND last_step < $1")
                    .bind(step)
                    .bind(account_id)
                    .execute(self.db.pool())
                    .await?
                    .rows_affected();
            return Ok((taken == 1).then_some(FactorUsed::Code));
        }
        if normalize_recovery(code).len() != 10 {
            return Ok(None);
        }
        let _gate = self.db.write_gate().await;
        let used = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE account_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(self.clock.now())
        .bind(account_id)
        .bind(code_hash(code))
        .execute(self.db.pool())
        .await?
        .rows_affected();
        Ok((used == 1).then_some(FactorUsed::RecoveryCode))
    }

    /// New recovery codes sealed for the one page that shows them (kept in the session
    /// meanwhile: encrypted like the tokens, so the sessions table never holds them readable).
    pub fn seal_for_display(&self, account_id: i64, codes: &[String]) -> String {
        self.cipher.seal_text(&codes.join("\n"), &display_aad(account_id))
    }

    /// The codes sealed by [`seal_for_display`](Self::seal_for_display) for this account.
    pub fn open_for_display(&self, account_id: i64, sealed: &str) -> Option<Vec<String>> {
        let plain = self.cipher.open_text(sealed, &display_aad(account_id))?;
        Some(plain.lines().map(str::to_string).collect())
    }

    /// Recovery codes not used yet.
    pub async fn recovery_codes_left(&self, account_id: i64) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL")
            .bind(account_id)
            .fetch_one(self.db.pool())
            .await
    }

    /// Removes the account's second factor and recovery codes (it enrols again at the next
    /// log-in). Returns whether there was one.
    pub async fn reset(&self, account_id: i64) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        let removed = sqlx::query("DELETE FROM second_factors WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_rfc_6238s() {
        // RFC 6238, appendix B (SHA-1), the last six of its eight digits.
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(code_at(secret, time), code, "{time}");
        }
    }

    #[test]
    fn base32_round_trips_and_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let secret = [7u8, 200, 3, 99, 250, 1, 0, 45, 66, 190];
        assert_eq!(base32_decode(&base32(&secret)).unwrap(), secret);
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(base32_decode("not base32!").is_none());
    }

    #[test]
    fn recovery_codes_are_read_as_typed() {
        assert_eq!(code_hash("ABCDE-12345"), code_hash("abcde 12345"));
        assert_ne!(code_hash("abcde-12345"), code_hash("abcde-12346"));
    }
}
