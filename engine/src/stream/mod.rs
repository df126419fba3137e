//! Event streaming: the engine's audit events go out to destinations the admin configures,
//! signed with Standard Webhooks headers and the destination's fixed verification token,
//! retried on a schedule with jitter, paused by a circuit breaker when a receiver keeps failing,
//! and never lost (outbox rows are written with the audit event, in one transaction).

pub mod client;
mod delivery;
mod destinations;

pub use delivery::{RetryPolicy, parse_retry_after, run as run_worker};
pub use destinations::LocalIntake;
pub use destinations::{
    DestinationError, DestinationInput, DestinationView, Destinations, HOP_HEADER, MAX_HOPS,
    TOKEN_HEADER,
};

use crate::trigger::verify::sign;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The Standard Webhooks `webhook-signature` value: one `v1,` entry per active secret.
pub fn signature_header(secrets: &[String], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| sign(s, msg_id, timestamp, body))
        .map(|mac| format!("v1,{}", STANDARD.encode(mac)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fresh `whsec_` signing secret (24 random bytes).
pub fn new_signing_secret() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::verify::verify_standard_webhooks;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn signatures_verify_with_either_secret() {
        let old = new_signing_secret();
        let new = new_signing_secret();
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 1000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static("msg_1"));
        h.insert("webhook-timestamp", HeaderValue::from_static("1000"));
        h.insert("webhook-signature", HeaderValue::from_str(&header).unwrap());
        assert!(verify_standard_webhooks(&old, &h, b"{}", 1000).is_ok());
        assert!(verify_standard_webhooks(&new, &h, b"{}", 1000).is_ok());
    }
}
