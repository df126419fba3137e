//! Webhook intake: everything between the raw HTTP request and the durable event, independent of
//! the HTTP framework. Authentication lives in [`verify`]; parsing and event identity here.

pub mod verify;

use http::HeaderMap;
use serde_json::{Map, Value};

/// Why a webhook body was refused (answered as 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("expected a JSON body, but content-type is {0:?}")]
    NotJsonContentType(String),
    #[error("body is empty; a JSON value is required")]
    Empty,
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
}

/// Parses a webhook body as JSON. Accepts JSON labelled as `application/json`, any `+json` type,
/// `text/plain` or `application/x-www-form-urlencoded` (GitLab's audit streaming sends JSON with
/// that label), or with no content type at all.
pub fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<BodyId, BodyError> {
    if let Some(ct) = content_type {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let acceptable = essence.is_empty()
            || essence == "application/json"
            || essence.ends_with("+json")
            || essence == "text/plain"
            || essence == "application/x-www-form-urlencoded";
        if !acceptable {
            return Err(BodyError::NotJsonContentType(essence));
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    serde_json::from_slice(body).map_err(|e| BodyError::InvalidJson(e.to_string()))
}

/// The top-level `id` of a JSON body, found in the same pass that checks the body is JSON —
/// without building a tree of the whole document (intake's hottest allocation otherwise).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BodyId(pub Option<String>);

impl<'de> serde::Deserialize<'de> for BodyId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BodyIdVisitor)
    }
}

struct BodyIdVisitor;

impl<'de> serde::de::Visitor<'de> for BodyIdVisitor {
    type Value = BodyId;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<BodyId, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "id" && id.is_none() {
                id = match map.next_value::<Value>()? {
                    Value::String(s) if !s.is_empty() => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
            } else {
                map.next_value::<Checked>()?;
            }
        }
        Ok(BodyId(id))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<BodyId, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(BodyId(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }

    fn visit_unit<E>(self) -> Result<BodyId, E> {
        Ok(BodyId(None))
    }
}

/// A JSON value checked as strictly as the run will parse it (`serde_json::Value`: nesting at
/// most 128 deep, strings valid Unicode, no lone surrogates) without building it. `IgnoredAny`
/// would skip both checks, and intake would accept events that can never run.
struct Checked;

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_key::<Checked>()?.is_some() {
            map.next_value::<Checked>()?;
        }
        Ok(Checked)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
}

/// Longest sender-supplied event id kept for deduplication.
const MAX_EVENT_KEY: usize = 256;

/// The id used to deduplicate deliveries: the body's `id` (Activepieces, GitLab, CloudEvents),
/// else the `webhook-id` header (Standard Webhooks), else a fresh id (never deduplicated).
pub fn event_key(body_id: BodyId, headers: &HeaderMap) -> String {
    let from_body = body_id.0;
    let from_header = || {
        headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match from_body.or_else(from_header) {
        Some(key) if key.len() <= MAX_EVENT_KEY => key,
        _ => crate::store::new_id(),
    }
}

/// The header that carries a flow's fixed token, if its authentication uses one.
pub fn secret_header(auth: &crate::flow::WebhookAuth) -> Option<&str> {
    match auth {
        crate::flow::WebhookAuth::Header { header, .. } => Some(header),
        _ => None,
    }
}

/// Headers kept with the event (and visible to templates as `trigger.headers`), with credentials
/// removed: `authorization` and the flow's token header never reach storage or traces.
pub fn kept_headers(headers: &HeaderMap, secret_header: Option<&str>) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        if name == "authorization"
            || name == "cookie"
            || secret_header.is_some_and(|h| h.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if let Ok(v) = value.to_str() {
            map.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// Regression (hardening I): whatever intake accepts, the run can parse.
    #[test]
    fn refuses_bodies_the_run_could_never_parse() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        for body in [
            deep.as_str(),
            r#"{"a":"\ud800"}"#,
            r#"{"a":["x", {"b": "\udfff"}]}"#,
            &format!(r#"{{"id": "x", "deep": {}}}"#, deep),
        ] {
            assert!(
                serde_json::from_str::<Value>(body).is_err(),
                "the run refuses it"
            );
            assert!(
                matches!(
                    parse_body(None, body.as_bytes()),
                    Err(BodyError::InvalidJson(_))
                ),
                "{}",
                &body[..body.len().min(40)]
            );
        }
        let fine = r#"{"id": 7, "a": [[["\ud83d\ude00"]]], "b": {"c": null}}"#;
        assert_eq!(
            parse_body(None, fine.as_bytes()),
            Ok(BodyId(Some("7".into())))
        );
    }

    #[test]
    fn accepts_json_under_form_label_and_refuses_others() {
        let body = br#"{"id":"1"}"#;
        assert!(parse_body(Some("application/x-www-form-urlencoded"), body).is_ok());
        assert!(parse_body(Some("application/json; charset=utf-8"), body).is_ok());
        assert!(parse_body(Some("application/cloudevents+json"), body).is_ok());
        assert!(parse_body(None, body).is_ok());
        assert_eq!(
            parse_body(Some("text/xml"), body),
            Err(BodyError::NotJsonContentType("text/xml".into()))
        );
        assert_eq!(parse_body(None, b"  "), Err(BodyError::Empty));
        let err = parse_body(None, b"{\"a\":").unwrap_err();
        assert!(err.to_string().contains("EOF while parsing"), "{err}");
    }

    #[test]
    fn event_key_prefers_body_id_then_header() {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static("msg_1"));
        let id = |text: &str| parse_body(None, text.as_bytes()).unwrap();
        assert_eq!(
            event_key(id(r#"{"a": {"id": "inner"}, "id": "evt"}"#), &h),
            "evt"
        );
        assert_eq!(event_key(id(r#"{"id": 7}"#), &h), "7");
        assert_eq!(event_key(id(r#"{"x": [1, {"id": 2}]}"#), &h), "msg_1");
        assert_eq!(event_key(id(r#"[{"id": "not top level"}]"#), &h), "msg_1");
        assert_eq!(event_key(id(r#""text""#), &h), "msg_1");
        let a = event_key(id("{}"), &HeaderMap::new());
        let b = event_key(id("{}"), &HeaderMap::new());
        assert_ne!(a, b);
    }

    #[test]
    fn credentials_are_not_kept() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        h.insert("x-token", HeaderValue::from_static("secret"));
        h.insert(
            "x-gitlab-audit-event-type",
            HeaderValue::from_static("user_created"),
        );
        let kept = kept_headers(&h, Some("X-Token"));
        assert_eq!(
            kept,
            serde_json::json!({"x-gitlab-audit-event-type": "user_created"})
        );
    }
}
