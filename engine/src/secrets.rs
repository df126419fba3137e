//! Secrets: write-only values encrypted at rest, handed to a step only when its flow grants the
//! name, and redacted from everything recorded (inputs, outputs, errors, logs).

use crate::store::{Actor, DynStore, Scope, SecretInfo, StoreError};
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// What replaces a secret value in anything recorded.
pub const REDACTED: &str = "**REDACTED**";
/// Values shorter than this are not scrubbed from free text (too likely to hit innocent text);
/// they are still never rendered into recorded inputs.
const MIN_SCRUB_LEN: usize = 4;

/// Encrypts and decrypts secret values with the server's key.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl SecretBox {
    /// The key from `HOOKFLOW_SECRET_KEY` (base64, 32 bytes), else from `<data dir>/secret.key`,
    /// generated on first start with mode 0600.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<SecretBox> {
        let key = match configured {
            Some(text) => STANDARD
                .decode(text.trim())
                .context("HOOKFLOW_SECRET_KEY is not base64")?,
            None => {
                let path = data_dir.join("secret.key");
                match std::fs::read_to_string(&path) {
                    Ok(text) => STANDARD
                        .decode(text.trim())
                        .with_context(|| format!("{} is not base64", path.display()))?,
                    Err(_) => {
                        use rand::Rng;
                        let key: [u8; 32] = rand::rng().random();
                        crate::files::write_private(&path, &STANDARD.encode(key))?;
                        key.to_vec()
                    }
                }
            }
        };
        anyhow::ensure!(
            key.len() == 32,
            "the secret key must be 32 bytes (base64-encoded), got {}",
            key.len()
        );
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    /// `(nonce, ciphertext)`, both base64; the name is bound as associated data.
    pub fn seal(&self, name: &str, value: &str) -> (String, String) {
        use rand::Rng;
        let nonce: [u8; 12] = rand::rng().random();
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        (STANDARD.encode(nonce), STANDARD.encode(sealed))
    }

    /// The plaintext, or an error when the key or data do not match.
    pub fn open(&self, name: &str, nonce: &str, sealed: &str) -> Result<String, String> {
        let nonce = STANDARD
            .decode(nonce)
            .map_err(|_| "corrupt nonce".to_string())?;
        let sealed = STANDARD
            .decode(sealed)
            .map_err(|_| "corrupt ciphertext".to_string())?;
        if nonce.len() != 12 {
            return Err("corrupt nonce".into());
        }
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| format!("secret {name} cannot be decrypted with this server's key"))?;
        String::from_utf8(plain).map_err(|_| "secret is not UTF-8".to_string())
    }
}

/// Secrets service over the store.
pub struct Secrets {
    store: DynStore,
    sbox: std::sync::Arc<SecretBox>,
}

impl Secrets {
    pub fn new(store: DynStore, sbox: std::sync::Arc<SecretBox>) -> Secrets {
        Secrets { store, sbox }
    }

    /// Sets a secret; returns true when it was created (not replaced).
    pub async fn put(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let (nonce, sealed) = self.sbox.seal(name, value);
        self.store
            .put_secret(actor, scope, name, &nonce, &sealed)
            .await
    }

    /// Names and times, never values.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<SecretInfo>, StoreError> {
        self.store.list_secrets(scope).await
    }

    /// Deletes a secret; false when there was none.
    pub async fn delete(
        &self,
        actor: &Actor,
        scope: &Scope,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.store.delete_secret(actor, scope, name).await
    }

    /// Decrypted values of `names` that exist (missing names are simply absent).
    pub async fn resolve(
        &self,
        scope: &Scope,
        names: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let mut values = HashMap::new();
        for (name, nonce, sealed) in self.store.get_secrets(scope, names).await? {
            match self.sbox.open(&name, &nonce, &sealed) {
                Ok(value) => {
                    values.insert(name, value);
                }
                Err(error) => tracing::error!(secret = %name, %error, "secret unreadable"),
            }
        }
        Ok(values)
    }
}

/// Replaces every occurrence of a secret value inside strings of `value`.
pub fn redact_value(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(s) => redact_text(s, secrets),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_value(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| redact_value(v, secrets)),
        _ => {}
    }
}

/// Replaces every occurrence of a secret value in `text`.
pub fn redact_text(text: &mut String, secrets: &[&str]) {
    for secret in secrets.iter().filter(|s| s.len() >= MIN_SCRUB_LEN) {
        if text.contains(secret) {
            *text = text.replace(secret, REDACTED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_binds_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let sbox = SecretBox::load(None, dir.path()).unwrap();
        let (nonce, sealed) = sbox.seal("SLACK", "xoxb-1");
        assert_eq!(sbox.open("SLACK", &nonce, &sealed).unwrap(), "xoxb-1");
        assert!(sbox.open("OTHER", &nonce, &sealed).is_err());
        // The key file is reused on the next start.
        let again = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(again.open("SLACK", &nonce, &sealed).unwrap(), "xoxb-1");
        assert!(SecretBox::load(Some("c2hvcnQ="), dir.path()).is_err());
    }

    #[test]
    fn redaction_reaches_nested_strings() {
        let mut v =
            serde_json::json!({"a": "token xoxb-secret here", "b": ["xoxb-secret"], "c": 1});
        redact_value(&mut v, &["xoxb-secret", "ab"]);
        assert_eq!(
            v,
            serde_json::json!({"a": "token **REDACTED** here", "b": ["**REDACTED**"], "c": 1})
        );
    }
}
