//! Webhook authentication. Every comparison of a secret is constant-time, and a failure says
//! what was wrong without revealing anything about the expected value.

use crate::flow::WebhookAuth;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far a Standard Webhooks timestamp may be from now.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a request was refused. Rendered in the 401 body; never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing {0} header")]
    Missing(String),
    #[error("invalid {0}")]
    Invalid(String),
    #[error("webhook-timestamp is more than {TOLERANCE_SECONDS} seconds from the server's time")]
    Expired,
}

/// Checks `headers`/`body` against the flow's configured authentication.
pub fn verify(
    auth: &WebhookAuth,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    match auth {
        WebhookAuth::None => Ok(()),
        WebhookAuth::Header { header, value } => {
            let got = header_str(headers, header)?;
            if secrets_equal(got.as_bytes(), value.as_bytes()) {
                Ok(())
            } else {
                Err(AuthError::Invalid(format!("{header} token")))
            }
        }
        WebhookAuth::Bearer { token } => {
            let got = header_str(headers, "authorization")?;
            let presented = strip_scheme(got, "bearer").ok_or_else(|| {
                AuthError::Invalid("authorization scheme (expected Bearer)".into())
            })?;
            if secrets_equal(presented.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(AuthError::Invalid("bearer token".into()))
            }
        }
        WebhookAuth::Basic { username, password } => {
            let got = header_str(headers, "authorization")?;
            let encoded = strip_scheme(got, "basic").ok_or_else(|| {
                AuthError::Invalid("authorization scheme (expected Basic)".into())
            })?;
            let decoded = STANDARD
                .decode(encoded.trim())
                .map_err(|_| AuthError::Invalid("basic credentials encoding".into()))?;
            let (user, pass) = match decoded.iter().position(|&b| b == b':') {
                Some(i) => (&decoded[..i], &decoded[i + 1..]),
                None => return Err(AuthError::Invalid("basic credentials".into())),
            };
            // Both halves are always compared, so timing does not reveal which one was wrong.
            let ok =
                secrets_equal(user, username.as_bytes()) & secrets_equal(pass, password.as_bytes());
            if ok {
                Ok(())
            } else {
                Err(AuthError::Invalid("basic credentials".into()))
            }
        }
        WebhookAuth::StandardWebhooks { secret } => {
            verify_standard_webhooks(secret, headers, body, now_unix)
        }
    }
}

/// Standard Webhooks: HMAC-SHA256 over `id.timestamp.body`, several `v1,` signatures allowed,
/// timestamps within [`TOLERANCE_SECONDS`].
pub fn verify_standard_webhooks(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<(), AuthError> {
    let id = header_str(headers, "webhook-id")?;
    let timestamp = header_str(headers, "webhook-timestamp")?;
    let signatures = header_str(headers, "webhook-signature")?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| AuthError::Invalid("webhook-timestamp".into()))?;
    if !within_tolerance(now_unix, ts) {
        return Err(AuthError::Expired);
    }
    let expected = sign(secret, id, ts, body)
        .ok_or_else(|| AuthError::Invalid("signing secret configuration".into()))?;
    let mut matched = false;
    for entry in signatures.split_whitespace() {
        if let Some(sig) = entry.strip_prefix("v1,")
            && let Ok(sig) = STANDARD.decode(sig)
        {
            matched |= bool::from(sig.ct_eq(&expected));
        }
    }
    if matched {
        Ok(())
    } else {
        Err(AuthError::Invalid("webhook-signature".into()))
    }
}

/// Whether `ts` is at most [`TOLERANCE_SECONDS`] from `now_unix`. Any `i64` may arrive in the
/// header, so the distance is computed without overflow: one that does not fit is too far.
fn within_tolerance(now_unix: i64, ts: i64) -> bool {
    now_unix
        .checked_sub(ts)
        .and_then(i64::checked_abs)
        .is_some_and(|distance| distance <= TOLERANCE_SECONDS)
}

/// The raw HMAC of a Standard Webhooks message; `None` when the secret is not valid base64.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<Vec<u8>> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac.finalize().into_bytes().to_vec())
}

/// Compares two secrets in constant time, including their lengths (both are hashed first).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, AuthError> {
    headers
        .get(name)
        .ok_or_else(|| AuthError::Missing(name.to_ascii_lowercase()))?
        .to_str()
        .map_err(|_| AuthError::Invalid(format!("{} header encoding", name.to_ascii_lowercase())))
}

fn strip_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const VECTORS: &str = include_str!("../../../tests/fixtures/standard-webhooks-vectors.json");

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn public_standard_webhooks_vectors() {
        let doc: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        for v in doc["vectors"].as_array().unwrap() {
            let ts = v["timestamp"].as_i64().unwrap();
            let h = headers(&[
                ("webhook-id", v["msgId"].as_str().unwrap().to_string()),
                ("webhook-timestamp", ts.to_string()),
                (
                    "webhook-signature",
                    v["signature"].as_str().unwrap().to_string(),
                ),
            ]);
            let result = verify_standard_webhooks(
                v["secret"].as_str().unwrap(),
                &h,
                v["payload"].as_str().unwrap().as_bytes(),
                ts,
            );
            assert_eq!(result.is_ok(), v["valid"].as_bool().unwrap(), "vector {v}");
        }
    }

    #[test]
    fn several_signatures_and_tolerance() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = STANDARD.encode(sign(secret, "msg_1", 1000, b"{}").unwrap());
        let h = headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", "1000".into()),
            ("webhook-signature", format!("v1,AAAA v2,zzz v1,{sig}")),
        ]);
        assert_eq!(
            verify_standard_webhooks(secret, &h, b"{}", 1000 + 299),
            Ok(())
        );
        assert_eq!(
            verify_standard_webhooks(secret, &h, b"{}", 1000 + 301),
            Err(AuthError::Expired)
        );
        assert_eq!(
            verify_standard_webhooks(secret, &h, b"{}", 1000 - 301),
            Err(AuthError::Expired)
        );
        assert!(
            verify_standard_webhooks(secret, &h, b"{ }", 1000).is_err(),
            "body is signed byte for byte"
        );
    }

    /// Finding: a `webhook-timestamp` near `i64::MIN`/`i64::MAX` overflowed `now - ts` (a panic
    /// in debug builds, a wrapped distance in release).
    #[test]
    fn timestamps_at_the_ends_of_i64_are_expired_not_overflowed() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let far = [
            i64::MIN,
            i64::MIN + 1,
            i64::MIN + TOLERANCE_SECONDS,
            i64::MIN / 2,
            -1,
            i64::MAX / 2,
            i64::MAX - TOLERANCE_SECONDS,
            i64::MAX - 1,
            i64::MAX,
        ];
        for now in [1_700_000_000, 0, -1, i64::MIN, i64::MAX] {
            for ts in far {
                let within = now.checked_sub(ts).is_some_and(|d| d.unsigned_abs() <= 300);
                let sig = STANDARD.encode(sign(secret, "msg_1", ts, b"{}").unwrap());
                let h = headers(&[
                    ("webhook-id", "msg_1".into()),
                    ("webhook-timestamp", ts.to_string()),
                    ("webhook-signature", format!("v1,{sig}")),
                ]);
                let result = verify_standard_webhooks(secret, &h, b"{}", now);
                if within {
                    assert_eq!(result, Ok(()), "now {now}, timestamp {ts}");
                } else {
                    assert_eq!(result, Err(AuthError::Expired), "now {now}, timestamp {ts}");
                    assert!(
                        result
                            .unwrap_err()
                            .to_string()
                            .contains("from the server's time")
                    );
                }
            }
        }
        // The edges of the window still hold at the ends of the range.
        assert!(within_tolerance(i64::MAX, i64::MAX - TOLERANCE_SECONDS));
        assert!(!within_tolerance(
            i64::MAX,
            i64::MAX - TOLERANCE_SECONDS - 1
        ));
        assert!(within_tolerance(i64::MIN, i64::MIN + TOLERANCE_SECONDS));
        assert!(!within_tolerance(i64::MIN, i64::MAX));
        assert!(!within_tolerance(i64::MAX, i64::MIN));
    }

    #[test]
    fn header_bearer_basic() {
        let auth = WebhookAuth::Header {
            header: "X-Gitlab-Event-Streaming-Token".into(),
            value: "tok".into(),
        };
        assert!(
            verify(
                &auth,
                &headers(&[("x-gitlab-event-streaming-token", "tok".into())]),
                b"",
                0
            )
            .is_ok()
        );
        assert_eq!(
            verify(
                &auth,
                &headers(&[("x-gitlab-event-streaming-token", "tok2".into())]),
                b"",
                0
            ),
            Err(AuthError::Invalid(
                "X-Gitlab-Event-Streaming-Token token".into()
            ))
        );
        assert_eq!(
            verify(&auth, &HeaderMap::new(), b"", 0),
            Err(AuthError::Missing("x-gitlab-event-streaming-token".into()))
        );

        let bearer = WebhookAuth::Bearer {
            token: "abc".into(),
        };
        assert!(
            verify(
                &bearer,
                &headers(&[("authorization", "Bearer abc".into())]),
                b"",
                0
            )
            .is_ok()
        );
        assert!(
            verify(
                &bearer,
                &headers(&[("authorization", "bearer abc".into())]),
                b"",
                0
            )
            .is_ok()
        );
        assert!(
            verify(
                &bearer,
                &headers(&[("authorization", "Bearer abd".into())]),
                b"",
                0
            )
            .is_err()
        );
        assert!(
            verify(
                &bearer,
                &headers(&[("authorization", "Basic abc".into())]),
                b"",
                0
            )
            .is_err()
        );

        let basic = WebhookAuth::Basic {
            username: "u".into(),
            password: "p:w".into(),
        };
        let good = format!("Basic {}", STANDARD.encode("u:p:w"));
        assert!(verify(&basic, &headers(&[("authorization", good)]), b"", 0).is_ok());
        let bad = format!("Basic {}", STANDARD.encode("u:pw"));
        assert!(verify(&basic, &headers(&[("authorization", bad)]), b"", 0).is_err());
    }

    #[test]
    fn constant_time_equality_handles_lengths() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
    }
}
