//! Encryption at rest for tokens: AES-256-GCM with a random 96-bit nonce, associated
//! data binding each ciphertext to its row and field, and a key id stored beside it so
//! keys can rotate (retired keys still decrypt; new writes use the current key).

use std::fmt;
use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("no key with id {0} is configured (was TOKEN_ENCRYPTION_KEY rotated without keeping the old key?)")]
    UnknownKey(String),
    #[error("a stored ciphertext failed authentication (wrong key, row or field)")]
    Tampered,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// Encrypts with the current key, decrypts with any configured key.
pub struct TokenCipher {
    current: Key,
    retired: Vec<Key>,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCipher")
            .field("current_key_id", &self.current.id)
            .field(
                "retired_key_ids",
                &self.retired.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The public id of a key: 8 hex digits of a hash, safe to store and log.
pub fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"awx-onboard token key id\0")
        .chain_update(key)
        .finalize();
    hex::encode(&digest[..4])
}

fn make_key(bytes: &[u8; 32]) -> Key {
    Key {
        id: key_id(bytes),
        cipher: Aes256Gcm::new(bytes.into()),
    }
}

/// What a ciphertext is bound to: decrypting it anywhere else fails.
pub fn associated_data(table: &str, row_id: i64, field: &str) -> Vec<u8> {
    format!("awx-onboard:v1:{table}:{row_id}:{field}").into_bytes()
}

impl TokenCipher {
    pub fn new(current: &[u8; 32], retired: &[[u8; 32]]) -> TokenCipher {
        TokenCipher {
            current: make_key(current),
            retired: retired.iter().map(make_key).collect(),
        }
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// `nonce || ciphertext || tag` under the current key.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .current
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption of a short message cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn decrypt(&self, key_id: &str, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|k| k.id == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_string()))?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Tampered);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        key.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| CryptoError::Tampered)
    }

    /// Decrypts text written by [`TokenCipher::encrypt`].
    pub fn decrypt_string(&self, key_id: &str, blob: &[u8], aad: &[u8]) -> Result<String, CryptoError> {
        let bytes = self.decrypt(key_id, blob, aad)?;
        String::from_utf8(bytes).map_err(|_| CryptoError::Tampered)
    }

    /// Text sealed into one string (`<key id>.<base64>`), for values kept in text columns
    /// or sessions until they are used once (recovery codes to show, an invitation link to
    /// send).
    pub fn seal_text(&self, plaintext: &str, aad: &[u8]) -> String {
        use base64::Engine;
        let sealed = self.encrypt(plaintext.as_bytes(), aad);
        format!(
            "{}.{}",
            self.current_key_id(),
            base64::engine::general_purpose::STANDARD.encode(sealed)
        )
    }

    /// Text sealed by [`seal_text`](Self::seal_text) with the same `aad`.
    pub fn open_text(&self, sealed: &str, aad: &[u8]) -> Option<String> {
        use base64::Engine;
        let (key_id, blob) = sealed.split_once('.')?;
        let blob = base64::engine::general_purpose::STANDARD.decode(blob).ok()?;
        self.decrypt_string(key_id, &blob, aad).ok()
    }
}

/// Reads a base64 key file, or creates one with 32 random bytes and mode 0600.
pub fn load_or_create_key_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use rand::RngCore;
    if path.exists() {
        let text = std::fs::read_to_string(path)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "the key file is not base64"))?;
        return bytes
            .try_into()
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "the key file does not hold 32 bytes"));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(base64::engine::general_purpose::STANDARD.encode(key).as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [7; 32];
    const B: [u8; 32] = [9; 32];

    #[test]
    fn round_trips_and_never_repeats_a_nonce() {
        let cipher = TokenCipher::new(&A, &[]);
        let aad = associated_data("connections", 1, "refresh_token");
        let one = cipher.encrypt(b"awx_rt_secret", &aad);
        let two = cipher.encrypt(b"awx_rt_secret", &aad);
        assert_ne!(one, two);
        assert!(!one.windows(13).any(|w| w == b"awx_rt_secret"));
        assert_eq!(
            cipher.decrypt(cipher.current_key_id(), &one, &aad).unwrap(),
            b"awx_rt_secret"
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_or_field_does_not_decrypt() {
        let cipher = TokenCipher::new(&A, &[]);
        let blob = cipher.encrypt(b"token", &associated_data("connections", 1, "access_token"));
        let id = cipher.current_key_id();
        assert_eq!(
            cipher.decrypt(id, &blob, &associated_data("connections", 2, "access_token")),
            Err(CryptoError::Tampered)
        );
        assert_eq!(
            cipher.decrypt(id, &blob, &associated_data("connections", 1, "refresh_token")),
            Err(CryptoError::Tampered)
        );
        let mut flipped = blob.clone();
        flipped[20] ^= 1;
        assert_eq!(
            cipher.decrypt(id, &flipped, &associated_data("connections", 1, "access_token")),
            Err(CryptoError::Tampered)
        );
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable_and_writes_with_the_new_key() {
        let aad = associated_data("connections", 5, "refresh_token");
        let old = TokenCipher::new(&A, &[]);
        let old_blob = old.encrypt(b"old", &aad);
        let rotated = TokenCipher::new(&B, &[A]);
        assert_ne!(rotated.current_key_id(), old.current_key_id());
        assert_eq!(rotated.decrypt(old.current_key_id(), &old_blob, &aad).unwrap(), b"old");
        let new_blob = rotated.encrypt(b"new", &aad);
        assert_eq!(
            rotated.decrypt(rotated.current_key_id(), &new_blob, &aad).unwrap(),
            b"new"
        );
        // Without the retired key the old ciphertext is unreadable, with a clear error.
        let forgot = TokenCipher::new(&B, &[]);
        assert!(matches!(
            forgot.decrypt(old.current_key_id(), &old_blob, &aad),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn debug_output_shows_key_ids_only() {
        let shown = format!("{:?}", TokenCipher::new(&A, &[B]));
        assert!(shown.contains(&key_id(&A)));
        assert!(!shown.contains("7, 7"));
    }

    #[test]
    fn key_files_are_created_once_with_owner_only_permissions() {
        let dir = std::env::temp_dir().join(format!("awx-key-{}", crate::secret::random_urlsafe(6)));
        let path = dir.join("sub/token.key");
        let first = load_or_create_key_file(&path).unwrap();
        let second = load_or_create_key_file(&path).unwrap();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
