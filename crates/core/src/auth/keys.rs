//! Virtual keys as strings: how they are made and how they are recognised. A key is
//! `sk-sb-` followed by 32 random bytes in URL-safe base64 (256 bits, so a fast hash is safe to
//! store: there is nothing to brute-force). Only its SHA-256 is stored; the first characters
//! stay visible so people can tell their keys apart.

use base64::Engine;
use sha2::{Digest, Sha256};
use switchboard_types::Secret;

/// Every virtual key starts with this.
pub const KEY_PREFIX: &str = "sk-sb-";
/// How many leading characters of a key are stored and shown (`sk-sb-` + 8).
pub const VISIBLE_CHARS: usize = 14;

/// Lowercase hex SHA-256 of a whole key: what the store indexes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub String);

/// A key just made: the secret is shown to its owner once and never stored.
#[derive(Debug)]
pub struct NewSecret {
    pub secret: Secret,
    pub prefix: String,
    pub hash: KeyHash,
}

/// Makes a new random key.
pub fn generate() -> NewSecret {
    let bytes: [u8; 32] = rand::random();
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    NewSecret {
        prefix: secret[..VISIBLE_CHARS].to_owned(),
        hash: hash(&secret),
        secret: Secret(secret),
    }
}

/// The stored form of a presented key. Runs on every request with a virtual key: the table
/// encoder (`encode_to_slice`) costs a fraction of `hex::encode`'s per-char iterator.
pub fn hash(key: &str) -> KeyHash {
    let digest = Sha256::digest(key.as_bytes());
    let mut text = [0u8; 64];
    if hex::encode_to_slice(digest, &mut text).is_err() {
        // Cannot happen (32 bytes always make 64 hex digits); fall back to the slow path.
        return KeyHash(hex::encode(digest));
    }
    KeyHash(String::from_utf8_lossy(&text).into_owned())
}

/// Whether a presented credential has the shape of a virtual key (cheap; no lookup).
pub fn is_virtual_key(presented: &str) -> bool {
    presented.starts_with(KEY_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_hash_to_their_stored_form() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret.expose(), b.secret.expose());
        assert!(a.secret.expose().starts_with(KEY_PREFIX));
        // 6 for the prefix + 43 for 32 bytes of unpadded base64.
        assert_eq!(a.secret.expose().len(), 49);
        assert!(a.secret.expose().starts_with(&a.prefix));
        assert_eq!(a.prefix.len(), VISIBLE_CHARS);
        assert_eq!(hash(a.secret.expose()), a.hash);
        assert_eq!(a.hash.0.len(), 64);
        assert!(is_virtual_key(a.secret.expose()));
        assert!(!is_virtual_key("sk-admin"));
        // The stored form is lowercase hex SHA-256 (FIPS 180-2 test vector).
        assert_eq!(
            hash("abc").0,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
