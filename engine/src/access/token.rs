//! Credentials handed to people once: API keys, session cookies, CSRF tokens, invitation
//! tokens. Each is 256 random bits; the store keeps only the SHA-256 digest, so a copy of the
//! database does not let anyone sign in.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// What every API key starts with, so a leaked key is recognisable (and secret scanners can
/// match it).
pub const API_KEY_PREFIX: &str = "hfk_";
/// What every invitation token starts with.
pub const INVITATION_PREFIX: &str = "hfi_";
/// How many leading characters of a key are stored and shown, for recognising it in a list.
pub const SHOWN_CHARS: usize = 12;

/// 256 random bits, base64url without padding.
pub fn random() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A new API key.
pub fn new_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", random())
}

/// A new invitation token.
pub fn new_invitation() -> String {
    format!("{INVITATION_PREFIX}{}", random())
}

/// The part of a key that is stored and shown.
pub fn shown_prefix(key: &str) -> String {
    key.chars().take(SHOWN_CHARS).collect()
}

/// Hex SHA-256: how the store finds a credential without holding it.
pub fn digest(credential: &str) -> String {
    Sha256::digest(credential.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_digested() {
        let key = new_api_key();
        assert!(key.starts_with(API_KEY_PREFIX));
        assert_eq!(key.len(), API_KEY_PREFIX.len() + 43);
        assert_ne!(key, new_api_key());
        assert_eq!(shown_prefix(&key).len(), SHOWN_CHARS);
        assert_eq!(digest(&key).len(), 64);
        assert_eq!(digest(&key), digest(&key));
    }
}
