//! Webhook intake: body framing (JSON, batches, JSON lines) under each content type, and the
//! deduplication key of the event and of every batch element. The first byte picks the content
//! type; the `webhook-id` header is fixed.
#![no_main]

use hookflow::trigger::{Parsed, element_key, event_key, parse_body, parse_webhook};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/json"),
    Some("application/x-ndjson"),
    Some("application/jsonl; charset=utf-8"),
    Some("text/plain"),
    Some("application/cloudevents+json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/html"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_static("msg_fuzz"));
    if let Ok(id) = parse_body(content_type, body) {
        let key = event_key(id, &headers);
        assert!(!key.is_empty());
    }
    match parse_webhook(content_type, body, 64) {
        Ok(Parsed::Single(id)) => {
            let _ = event_key(id, &headers);
        }
        Ok(Parsed::Batch(elements)) => {
            assert!(!elements.is_empty() && elements.len() <= 64);
            for (index, element) in elements.into_iter().enumerate() {
                assert!(serde_json::from_str::<serde_json::Value>(element.text).is_ok());
                let _ = element_key(element.id, &headers, index);
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
