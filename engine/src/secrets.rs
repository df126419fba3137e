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
/// Values shorter than this are not scrubbed from inside longer text (too likely to hit innocent
/// text); a string or key equal to one is still redacted, and they are never rendered into
/// recorded inputs.
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

pub use crate::flow::model::SEALED_CREDENTIAL;

/// A sealed trigger credential that does not open for this flow with this server's key: sealed
/// for another flow or field, by another key, or altered.
#[derive(Debug, thiserror::Error)]
#[error(
    "trigger.auth.{field}: the encrypted credential does not belong to this flow or cannot be \
     decrypted with this server's key"
)]
pub struct UnreadableCredential {
    /// The `trigger.auth` field that holds it.
    pub field: &'static str,
}

/// Literal webhook credentials of flow definitions (`trigger.auth`), sealed in the stored
/// definition and opened only where a webhook is verified. The flow id and the field are the
/// associated data, so a sealed value copied into another flow or field does not open there;
/// the prefix keeps these apart from secret names, which cannot hold `:`.
impl SecretBox {
    fn credential_aad(flow_id: &str, field: &str) -> String {
        format!("flow-credential:{flow_id}:trigger.auth.{field}")
    }

    /// Seals the literal credential of `definition` for `flow_id` in place; a sealed one or a
    /// `{{secrets.NAME}}` reference stays. `keep` is the sealed text the save came with (from
    /// [`SecretBox::open_credential`]): when it still holds the same value it is kept, so an
    /// unchanged credential is stored unchanged. Returns true when it sealed something.
    pub fn seal_credential(
        &self,
        flow_id: &str,
        definition: &mut Value,
        keep: Option<&str>,
    ) -> bool {
        let Some((field, value)) = crate::flow::model::literal_credential_mut(definition) else {
            return false;
        };
        if value.starts_with(SEALED_CREDENTIAL) {
            return false;
        }
        let aad = Self::credential_aad(flow_id, field);
        if let Some(kept) = keep
            && self.open_sealed(&aad, kept).as_deref() == Some(value.as_str())
        {
            *value = kept.to_string();
        } else {
            let (nonce, sealed) = self.seal(&aad, value);
            *value = format!("{SEALED_CREDENTIAL}{nonce}:{sealed}");
        }
        true
    }

    /// Opens a sealed credential of `definition` in place and returns the sealed text it held
    /// (`None` for a literal, a reference or no credential).
    pub fn open_credential(
        &self,
        flow_id: &str,
        definition: &mut Value,
    ) -> Result<Option<String>, UnreadableCredential> {
        let Some((field, value)) = crate::flow::model::literal_credential_mut(definition) else {
            return Ok(None);
        };
        if !value.starts_with(SEALED_CREDENTIAL) {
            return Ok(None);
        }
        let plain = self
            .open_sealed(&Self::credential_aad(flow_id, field), value)
            .ok_or(UnreadableCredential { field })?;
        Ok(Some(std::mem::replace(value, plain)))
    }

    fn open_sealed(&self, aad: &str, text: &str) -> Option<String> {
        let (nonce, sealed) = text.strip_prefix(SEALED_CREDENTIAL)?.split_once(':')?;
        self.open(aad, nonce, sealed).ok()
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

/// Everything [`redact_value`] / [`redact_text`] search for, built once from the secret values
/// a step holds, so a large output is searched without re-deriving the encodings per string.
///
/// For each secret value `v`:
/// - a string or object key that *is* `v` is replaced whatever `v`'s length;
/// - from [`MIN_SCRUB_LEN`] bytes on, `v` is also replaced inside longer text;
/// - from [`MIN_ENCODED_LEN`] bytes on, so are its upper- and lower-case forms, its hex (lower
///   and upper case) and its base64 in the standard and URL-safe alphabets, with and without
///   padding. Base64 of `v` embedded in a longer encoded text (`user:v` in a Basic
///   `Authorization` header) is found at each of the three byte alignments: the characters that
///   encode only bytes of `v` are replaced, so at most a few bits at the edges remain.
///
/// Needles are searched longest first, so a whole encoding is replaced before any part of it.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every secret value, for whole-string matches.
    exact: Vec<String>,
    /// Substrings to replace, longest first, without duplicates.
    needles: Vec<String>,
}

/// Secrets shorter than this (in bytes) are not searched in their encoded or case-changed forms:
/// the upper-case form or hex of a short value would match ordinary text far too often. Real
/// tokens and passwords are longer; a shorter secret is still replaced where it appears as is
/// (from [`MIN_SCRUB_LEN`]) and wherever a whole string or key equals it.
pub const MIN_ENCODED_LEN: usize = 8;

/// Shortest base64 fragment searched for a secret embedded at an unaligned offset (two groups).
const MIN_BASE64_CORE: usize = 8;

impl Redactor {
    /// The redactor for `secrets` (the values a step was granted).
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        let mut exact = Vec::new();
        let mut needles = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            exact.push(secret.to_string());
            if secret.len() < MIN_SCRUB_LEN {
                continue;
            }
            needles.push(secret.to_string());
            if secret.len() < MIN_ENCODED_LEN {
                continue;
            }
            let bytes = secret.as_bytes();
            needles.push(secret.to_uppercase());
            needles.push(secret.to_lowercase());
            let hex = hex_lower(bytes);
            needles.push(hex.to_ascii_uppercase());
            needles.push(hex);
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                needles.push(engine.encode(bytes));
            }
            // Embedded in a longer encoding, `v` starts at byte offset 0, 1 or 2 of a 3-byte
            // group; encode it behind that many filler bytes and keep the whole groups of `v`.
            for shift in 0..3 {
                let mut shifted = vec![0u8; shift];
                shifted.extend_from_slice(bytes);
                let first_group = shift.div_ceil(3);
                let end_group = shifted.len() / 3;
                if end_group <= first_group {
                    continue;
                }
                for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    let encoded = engine.encode(&shifted);
                    let core = &encoded[first_group * 4..end_group * 4];
                    if core.len() >= MIN_BASE64_CORE {
                        needles.push(core.to_string());
                    }
                }
            }
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        exact.sort();
        exact.dedup();
        Redactor { exact, needles }
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// Replaces every secret (and encoding of one) in the strings and object keys of `value`.
    pub fn redact_value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => self.redact_text(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => {
                map.values_mut().for_each(|v| self.redact_value(v));
                if map.keys().any(|k| self.finds(k)) {
                    let old = std::mem::take(map);
                    for (mut key, v) in old {
                        self.redact_text(&mut key);
                        // Two keys may redact to the same text; keep both entries.
                        if map.contains_key(&key) {
                            let base = key.clone();
                            let mut n = 2;
                            while map.contains_key(&key) {
                                key = format!("{base} ({n})");
                                n += 1;
                            }
                        }
                        map.insert(key, v);
                    }
                }
            }
            _ => {}
        }
    }

    /// Replaces every secret (and encoding of one) in `text`.
    pub fn redact_text(&self, text: &mut String) {
        if self.exact.iter().any(|s| s == text) {
            *text = REDACTED.to_string();
            return;
        }
        for needle in &self.needles {
            if needle.len() <= text.len() && text.contains(needle.as_str()) {
                *text = text.replace(needle.as_str(), REDACTED);
            }
        }
    }

    /// Whether `text` holds anything [`Redactor::redact_text`] would replace.
    fn finds(&self, text: &str) -> bool {
        self.exact.iter().any(|s| s == text)
            || self
                .needles
                .iter()
                .any(|n| n.len() <= text.len() && text.contains(n.as_str()))
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Replaces every occurrence of a secret value (and its encodings, see [`Redactor`]) inside the
/// strings and object keys of `value`. Build a [`Redactor`] once to redact several values.
pub fn redact_value(value: &mut Value, secrets: &[&str]) {
    Redactor::new(secrets).redact_value(value);
}

/// Replaces every occurrence of a secret value (and its encodings, see [`Redactor`]) in `text`.
pub fn redact_text(text: &mut String, secrets: &[&str]) {
    Redactor::new(secrets).redact_text(text);
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
    fn trigger_credentials_are_sealed_for_one_flow_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let sbox = SecretBox::load(None, dir.path()).unwrap();
        let plain = serde_json::json!({"trigger": {"type": "webhook",
            "auth": {"type": "bearer", "token": "tok-literal-1"}}});
        let mut stored = plain.clone();
        assert!(sbox.seal_credential("f1", &mut stored, None));
        let sealed = stored["trigger"]["auth"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(sealed.starts_with(SEALED_CREDENTIAL), "{sealed}");
        assert!(!stored.to_string().contains("tok-literal-1"));
        // Idempotent: sealing again changes nothing.
        assert!(!sbox.seal_credential("f1", &mut stored, None));
        assert_eq!(stored["trigger"]["auth"]["token"], sealed.as_str());

        let mut opened = stored.clone();
        assert_eq!(
            sbox.open_credential("f1", &mut opened).unwrap(),
            Some(sealed.clone())
        );
        assert_eq!(opened, plain);
        // The same value sealed again reuses the text it came with; another value does not.
        let mut again = plain.clone();
        sbox.seal_credential("f1", &mut again, Some(&sealed));
        assert_eq!(again, stored);
        let mut changed = serde_json::json!({"trigger": {"type": "webhook",
            "auth": {"type": "bearer", "token": "tok-literal-2"}}});
        sbox.seal_credential("f1", &mut changed, Some(&sealed));
        assert_ne!(changed["trigger"]["auth"]["token"], sealed.as_str());

        // Moved to another flow, or to another field of the same flow, it does not open.
        assert_eq!(
            sbox.open_credential("f2", &mut stored.clone())
                .unwrap_err()
                .field,
            "token"
        );
        let mut moved = serde_json::json!({"trigger": {"type": "webhook",
            "auth": {"type": "header", "header": "X-T", "value": sealed}}});
        assert!(sbox.open_credential("f1", &mut moved).is_err());
        // Another key does not open it either.
        let other = SecretBox::load(Some(&STANDARD.encode([7u8; 32])), dir.path()).unwrap();
        assert!(other.open_credential("f1", &mut stored.clone()).is_err());

        // References and flows without a credential are left alone.
        let reference = serde_json::json!({"trigger": {"type": "webhook",
            "auth": {"type": "bearer", "token": "{{secrets.HOOK}}"}}});
        let mut kept = reference.clone();
        assert!(!sbox.seal_credential("f1", &mut kept, None));
        assert_eq!(sbox.open_credential("f1", &mut kept).unwrap(), None);
        assert_eq!(kept, reference);
        let mut none = serde_json::json!({"trigger": {"type": "webhook"}});
        assert!(!sbox.seal_credential("f1", &mut none, None));
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

    /// Finding: `{(.): 1}` in a jq step wrote the secret as an object key in clear.
    #[test]
    fn redaction_covers_object_keys() {
        let mut v = serde_json::json!({
            "xoxb-secret": 1,
            "nested": [{"Bearer xoxb-secret": {"xoxb-secret": "xoxb-secret"}}],
            "kept": "plain",
        });
        redact_value(&mut v, &["xoxb-secret"]);
        assert_eq!(
            v,
            serde_json::json!({
                "**REDACTED**": 1,
                "nested": [{"Bearer **REDACTED**": {"**REDACTED**": "**REDACTED**"}}],
                "kept": "plain",
            })
        );
        // Keys that redact to the same text keep both entries, in order.
        let mut v =
            serde_json::json!({"a-xoxb-secret": 1, "a-XOXB-SECRET": 2, "a-**REDACTED**": 3});
        redact_value(&mut v, &["xoxb-secret"]);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["a-**REDACTED**", "a-**REDACTED** (2)", "a-**REDACTED** (3)"]
        );
    }

    /// Finding: a secret written base64-, hex- or case-encoded was recorded in clear.
    #[test]
    fn redaction_covers_common_encodings() {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        // Bytes whose base64 differs between the alphabets and needs padding.
        let secret = "tok-s3cr3t~~>?value";
        let encodings = [
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            hex_lower(secret.as_bytes()),
            hex_lower(secret.as_bytes()).to_uppercase(),
            secret.to_uppercase(),
            secret.to_lowercase(),
            secret.to_string(),
        ];
        assert_ne!(encodings[0], encodings[2], "the alphabets differ here");
        assert!(encodings[0].ends_with('='), "padded");
        let redactor = Redactor::new([secret]);
        for encoded in &encodings {
            let mut text = format!("before {encoded} after");
            redactor.redact_text(&mut text);
            assert_eq!(text, "before **REDACTED** after", "{encoded}");
            let mut key = serde_json::json!({ encoded.as_str(): true });
            redactor.redact_value(&mut key);
            assert_eq!(key, serde_json::json!({"**REDACTED**": true}), "{encoded}");
        }
        // Embedded in a longer encoding at every byte alignment (a Basic auth header): what is
        // left of the encoded text cannot give back more than the few bits at the edges.
        for prefix in ["", "u:", "us:", "user:", "a much longer prefix "] {
            for suffix in ["", "!", "!!", "!!!"] {
                for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
                    let mut text = engine.encode(format!("{prefix}{secret}{suffix}"));
                    redactor.redact_text(&mut text);
                    assert!(text.contains(REDACTED), "{prefix}|{suffix}: {text}");
                    let left = text.replace(REDACTED, "");
                    let around = engine.encode(prefix).len() + engine.encode(suffix).len();
                    assert!(left.len() <= around + 8, "{prefix}|{suffix}: {text}");
                }
            }
        }
    }

    #[test]
    fn short_secrets_are_redacted_only_where_they_cannot_be_innocent() {
        let redactor = Redactor::new(["ab", "abcdef", ""]);
        let mut v = serde_json::json!({
            "ab": "ab",
            "x": "a cab in abcdef",
            "upper": "ABCDEF",
            "b64": STANDARD.encode("abcdef"),
            "hex": hex_lower(b"abcdef"),
        });
        redactor.redact_value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "**REDACTED**": "**REDACTED**",
                "x": "a cab in **REDACTED**",
                // Shorter than MIN_ENCODED_LEN: encodings and case forms are left alone.
                "upper": "ABCDEF",
                "b64": STANDARD.encode("abcdef"),
                "hex": hex_lower(b"abcdef"),
            })
        );
        // The empty secret matches nothing.
        let mut empty = String::new();
        redactor.redact_text(&mut empty);
        assert_eq!(empty, "");
        assert!(Redactor::new(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn redacting_a_mebibyte_output_stays_fast() {
        let secrets = ["tok-s3cr3t-value-1", "another-secret-2", "xoxb-123456789"];
        let redactor = Redactor::new(secrets);
        let line = format!("{} {} ", "x".repeat(100), STANDARD.encode(secrets[1]));
        let mut v = serde_json::json!({
            "big": line.repeat((1 << 20) / line.len()),
            "many": (0..10_000).map(|i| format!("item {i}")).collect::<Vec<_>>(),
        });
        let started = std::time::Instant::now();
        redactor.redact_value(&mut v);
        let took = started.elapsed();
        assert!(!v.to_string().contains(&STANDARD.encode(secrets[1])));
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    }
}
