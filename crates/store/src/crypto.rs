//! Encryption of secrets at rest (provider API keys): AES-256-GCM with a key the operator keeps
//! outside the database, in `SWITCHBOARD_SECRET_KEY` (base64 of 32 random bytes, e.g. from
//! `openssl rand -base64 32`). A stored value is `v1:` + base64(nonce (12 bytes) || ciphertext
//! with its tag); the version prefix leaves room for another scheme or key rotation later.
//! Errors never include the key or the plaintext.

use crate::error::StoreError;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

/// The environment variable holding the key.
pub const SECRET_KEY_ENV: &str = "SWITCHBOARD_SECRET_KEY";

/// The prefix of values encrypted by this version of the scheme.
const V1: &str = "v1:";
const NONCE_LEN: usize = 12;

/// Encrypts and decrypts stored secrets with one AES-256-GCM key.
#[derive(Clone)]
pub struct SecretCipher {
    cipher: Aes256Gcm,
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCipher(*****)")
    }
}

impl SecretCipher {
    /// A cipher with this key.
    pub fn from_key(key: &[u8; 32]) -> SecretCipher {
        SecretCipher {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A cipher from the base64 text of a 32-byte key.
    pub fn from_base64(text: &str) -> Result<SecretCipher, StoreError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| {
            StoreError::Crypto(format!(
                "{SECRET_KEY_ENV} is not valid base64: use the output of `openssl rand -base64 32`"
            ))
        })?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            StoreError::Crypto(format!(
                "{SECRET_KEY_ENV} must be 32 bytes in base64 (it decodes to {} bytes): use the \
                 output of `openssl rand -base64 32`",
                bytes.len()
            ))
        })?;
        Ok(SecretCipher::from_key(&key))
    }

    /// The cipher configured by `SWITCHBOARD_SECRET_KEY`, `None` when the variable is unset or
    /// empty (stored provider keys are then refused), an error when it is set but unusable.
    pub fn from_env() -> Result<Option<SecretCipher>, StoreError> {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => SecretCipher::from_base64(&text).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(StoreError::Crypto(format!(
                "{SECRET_KEY_ENV} is not valid base64: use the output of `openssl rand -base64 32`"
            ))),
        }
    }

    /// Encrypts `plaintext` with a fresh random nonce.
    pub fn encrypt(&self, plaintext: &str) -> Result<String, StoreError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce_bytes), plaintext.as_bytes())
            .map_err(|_| StoreError::Crypto("encrypting a secret failed".to_owned()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce_bytes);
        blob.extend_from_slice(&ciphertext);
        Ok(format!("{V1}{}", STANDARD.encode(blob)))
    }

    /// Decrypts a value made by [`SecretCipher::encrypt`]; a wrong key or a damaged value is an
    /// error that says so.
    pub fn decrypt(&self, stored: &str) -> Result<String, StoreError> {
        let encoded = stored.strip_prefix(V1).ok_or_else(|| {
            StoreError::Crypto("stored secret has an unknown format (expected `v1:`)".to_owned())
        })?;
        let blob = STANDARD
            .decode(encoded)
            .map_err(|_| StoreError::Crypto("stored secret is not valid base64".to_owned()))?;
        let truncated = || StoreError::Crypto("stored secret is truncated".to_owned());
        if blob.len() <= NONCE_LEN {
            return Err(truncated());
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| truncated())?;
        let plaintext = self
            .cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| {
                StoreError::Crypto(format!(
                    "cannot decrypt a stored secret: {SECRET_KEY_ENV} is not the key it was \
                     stored with, or the value was damaged"
                ))
            })?;
        String::from_utf8(plaintext)
            .map_err(|_| StoreError::Crypto("decrypted secret is not UTF-8 text".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn round_trip_and_fresh_nonces() {
        let cipher = SecretCipher::from_key(&[7; 32]);
        let a = cipher.encrypt("sk-live-123").unwrap();
        let b = cipher.encrypt("sk-live-123").unwrap();
        assert!(a.starts_with("v1:"));
        assert_ne!(a, b, "each encryption uses a new nonce");
        assert!(!a.contains("sk-live"));
        assert_eq!(cipher.decrypt(&a).unwrap(), "sk-live-123");
    }

    #[test]
    fn wrong_key_and_bad_values_are_clear_errors() {
        let stored = SecretCipher::from_key(&[1; 32]).encrypt("secret").unwrap();
        let other = SecretCipher::from_key(&[2; 32]);
        let err = other.decrypt(&stored).unwrap_err().to_string();
        assert!(err.contains("SWITCHBOARD_SECRET_KEY"), "{err}");
        assert!(other.decrypt("v2:abc").is_err());
        assert!(other.decrypt("v1:!!!").is_err());
        assert!(other.decrypt("v1:AAAA").is_err());
    }

    #[test]
    fn keys_from_base64_are_checked() {
        let good = STANDARD.encode([9u8; 32]);
        assert!(SecretCipher::from_base64(&good).is_ok());
        let short = STANDARD.encode([9u8; 16]);
        let err = SecretCipher::from_base64(&short).unwrap_err().to_string();
        assert!(err.contains("16 bytes") && !err.contains(&short), "{err}");
        let err = SecretCipher::from_base64("not base64 ***")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("***"), "{err}");
        assert_eq!(
            format!("{:?}", SecretCipher::from_key(&[3; 32])),
            "SecretCipher(*****)"
        );
    }
}
