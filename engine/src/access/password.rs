//! Password hashing: argon2id with the crate's recommended parameters, stored as a PHC string
//! (algorithm, parameters and salt travel with the hash, so they can be raised later). Hashing is
//! CPU-heavy on purpose: callers run it on a blocking thread.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shortest password accepted, in characters (NIST SP 800-63B asks for at least 8; 12 resists
/// offline guessing far better at no cost to a password manager).
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in bytes: long passphrases are fine, megabytes to hash are not.
pub const MAX_BYTES: usize = 1024;

/// Why a password is refused, as a sentence for the `password:` field of a 400.
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_CHARS {
        return Err(format!("must be at least {MIN_CHARS} characters"));
    }
    if password.len() > MAX_BYTES {
        return Err(format!("must be at most {MAX_BYTES} bytes"));
    }
    Ok(())
}

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes encode");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// True when `password` matches `phc`. A malformed stored hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    if password.len() > MAX_BYTES {
        return false;
    }
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash of a random password, verified against when the email is unknown, so a sign-in
/// takes as long for an unknown email as for a wrong password (no user enumeration by timing).
/// Hashing is the slow part: the server builds it once at start-up, on a blocking thread, and
/// keeps it.
pub fn decoy_hash() -> String {
    hash(&format!("{:x}", rand::random::<u128>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_argon2id_parameters() {
        let phc = hash("correct horse battery staple");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery staple", &phc));
        assert!(!verify("correct horse battery stapl", &phc));
        assert!(!verify("anything", "not a phc string"));
        assert_ne!(phc, hash("correct horse battery staple"), "salted");
    }

    /// An unknown email is verified against the decoy: it must cost what a real account's
    /// hash costs (same algorithm and parameters) and match nothing guessable.
    #[test]
    fn the_decoy_costs_what_a_real_hash_costs() {
        let decoy = decoy_hash();
        let real = hash("correct horse battery staple");
        let (decoy, real) = (
            PasswordHash::new(&decoy).unwrap(),
            PasswordHash::new(&real).unwrap(),
        );
        assert_eq!(decoy.algorithm, real.algorithm);
        assert_eq!(decoy.version, real.version);
        assert_eq!(decoy.params, real.params);
        assert!(!verify("", &decoy.to_string()));
        assert_ne!(
            decoy_hash(),
            decoy_hash(),
            "a fresh random password each time"
        );
    }

    #[test]
    fn strength_has_a_minimum_and_a_generous_maximum() {
        assert!(check_strength("short").is_err());
        assert!(check_strength("twelve chars").is_ok());
        assert!(check_strength(&"x".repeat(64)).is_ok());
        assert!(check_strength(&"x".repeat(MAX_BYTES + 1)).is_err());
    }
}
