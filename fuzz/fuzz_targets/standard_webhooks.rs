//! Standard Webhooks verification with sender-controlled headers. Input lines: secret,
//! `webhook-id`, `webhook-timestamp`, `webhook-signature`, then the body. Whatever the headers
//! say, verification answers; and a message signed with the secret always verifies.
#![no_main]

use hookflow::trigger::verify::{sign, verify_standard_webhooks};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_767_225_600;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(5, |b| *b == b'\n');
    let (Some(secret), Some(id), Some(timestamp), Some(signature)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let Ok(secret) = std::str::from_utf8(secret) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("webhook-id", id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signature),
    ] {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    let _ = verify_standard_webhooks(secret, &headers, body, NOW);

    // The signer's side: signed now, with this id, it must verify.
    let Ok(id) = std::str::from_utf8(id) else {
        return;
    };
    let Ok(id_value) = HeaderValue::from_str(id) else {
        return;
    };
    // What a sender can put in the header: visible ASCII (`HeaderValue` also takes bytes over
    // 0x7f, which the verifier refuses as an encoding error), without surrounding blanks.
    if id.is_empty() || id != id.trim() || !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return;
    }
    if let Some(mac) = sign(secret, id, NOW, body) {
        use base64::Engine as _;
        let mut signed = HeaderMap::new();
        signed.insert("webhook-id", id_value);
        signed.insert("webhook-timestamp", HeaderValue::from(NOW));
        let value = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        signed.insert("webhook-signature", HeaderValue::from_str(&value).unwrap());
        verify_standard_webhooks(secret, &signed, body, NOW).expect("a signed message verifies");
    }
});
